"""Reasoning mode through a real server (uvicorn on loopback) and the official OpenAI SDK.

The tiny random-weight checkpoint checks the response shape and accounting. Its chains are noise, so the
requests nudge it (logit_bias on ``</think>`` and the digits, penalties against repeats) into closing its
chains and writing numbers: the votes then have answers to count. The shipped checkpoint, when present,
answers a real question (``test_the_shipped_checkpoint_reasons``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from model.tokenizer import Tokenizer
from reasoning.answers import extract_answer
from reasoning.chain_check import check_chain
from reasoning.vote import vote
from server.settings import DEFAULT_MODEL_DIR
from tests.server.support import API_KEY, MODEL, LiveServer, run_server, sse_events

QUESTION = "计算：12*(3+4)-10"
MESSAGES = [{"role": "user", "content": QUESTION}]
SLOTS = 8  # run_server's max_batch
CAP = 6  # max_self_consistency_samples on this module's server


@pytest.fixture(scope="module")
def server(server_checkpoint: Path):
    with run_server(
        server_checkpoint,
        max_self_consistency_samples=CAP,
        reasoning_samples_medium=5,
        reasoning_samples_high=9,
    ) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="module")
def nudge(server_tokenizer: Tokenizer) -> dict[str, Any]:
    """Sampling that makes the random model close its chains and write digits (see the module doc)."""
    bias = {str(server_tokenizer.think_end_id): 5.0}
    bias.update({str(server_tokenizer.token_id(str(d))): 2.0 for d in range(10)})
    return {
        "temperature": 1.0,
        "presence_penalty": 2.0,
        "frequency_penalty": 2.0,
        "logit_bias": bias,
        "max_tokens": 24,
    }


def chat(server: LiveServer, **body: Any) -> Any:
    with server.client() as c:
        return c.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, **body})


def test_the_vote_shape_and_the_winner(server: LiveServer, nudge: dict):
    r = chat(
        server, seed=3, self_consistency={"samples": 5, "return_chains": True, "calculator": True}, **nudge
    )
    assert r.status_code == 200, r.text
    body = r.json()
    sc, message = body["self_consistency"], body["choices"][0]["message"]
    assert sc["samples"] == 5 and len(sc["chains"]) == 5
    assert sum(v["count"] for v in sc["votes"]) == 5
    assert sc["agreement"] == pytest.approx(sc["votes"][0]["count"] / 5 if sc["answer"] is not None else 0.0)
    # The server's vote is the library's checked vote over the samples' final texts and their chains' steps.
    answers = [extract_answer(c["content"]) if c["content"] else None for c in sc["chains"]]
    checks = [
        check_chain(QUESTION, c["reasoning_content"], a) for c, a in zip(sc["chains"], answers, strict=True)
    ]
    assert [c["false_steps"] for c in sc["chains"]] == [check.false_steps for check in checks]
    assert [c["ungrounded"] for c in sc["chains"]] == [check.ungrounded for check in checks]
    expected = vote(answers, eligible=[check.ok for check in checks])
    assert [v["checked"] for v in sc["votes"] if v["answer"] is not None] == expected.checked
    assert expected.answer is not None, "the nudge should make at least one sample answer"
    assert (sc["answer"], sc["winner_index"]) == (expected.answer, expected.winner_index)
    winner = sc["chains"][sc["winner_index"]]
    assert (
        message["content"] == winner["content"]
        and message["reasoning_content"] == winner["reasoning_content"]
    )
    assert body["choices"][0]["finish_reason"] == winner["finish_reason"]
    assert sc["calculator"]["expression"] == "12*(3+4)-10" and sc["calculator"]["value"] == "74"
    assert sc["calculator"]["agrees"] == (expected.key == "74")
    usage = body["usage"]
    assert usage["completion_tokens"] == sum(c["completion_tokens"] for c in sc["chains"])
    assert usage["completion_tokens_details"]["reasoning_tokens"] == sum(
        c["reasoning_tokens"] for c in sc["chains"]
    )
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] <= usage["completion_tokens"]


def test_usage_counts_every_sampled_token(server: LiveServer, nudge: dict, server_tokenizer: Tokenizer):
    """The same k samples through /v1/completions (same prompt ids, seeds s+i, same sampling), which
    reports every token: both requests must count the same tokens, and the chains must be those texts."""
    k = 4
    r = chat(server, seed=11, self_consistency={"samples": k, "return_chains": True}, **nudge).json()
    prompt = server_tokenizer.encode_chat(MESSAGES, reasoning=True)
    assert r["usage"]["prompt_tokens"] == len(prompt)
    with server.client() as c:
        plain = c.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": prompt, "n": k, "seed": 11, "logprobs": 0, **nudge},
        ).json()
    assert r["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]
    for chain, choice in zip(r["self_consistency"]["chains"], plain["choices"], strict=True):
        tokens = choice["logprobs"]["tokens"]
        reasoning = tokens.index("</think>") + 1 if "</think>" in tokens else len(tokens)
        assert (chain["completion_tokens"], chain["reasoning_tokens"]) == (len(tokens), reasoning)
        assert chain["reasoning_content"] in choice["text"] and chain["content"] in choice["text"]
    details = r["usage"]["completion_tokens_details"]
    assert details["reasoning_tokens"] == sum(c["reasoning_tokens"] for c in r["self_consistency"]["chains"])


def test_stream_order(server: LiveServer, nudge: dict):
    body = dict(
        seed=3,
        self_consistency={"samples": 5, "return_chains": True},
        stream=True,
        stream_options={"include_usage": True},
        **nudge,
    )
    with (
        server.client() as c,
        c.stream("POST", "/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, **body}) as r,
    ):
        events = list(sse_events(r.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    kinds = []
    for ch in chunks:
        if not ch["choices"]:
            kinds.append("usage")
            continue
        delta, finish = ch["choices"][0]["delta"], ch["choices"][0]["finish_reason"]
        kinds.append(
            "final"
            if finish
            else "role"
            if "role" in delta
            else "reasoning"
            if "reasoning_content" in delta
            else "content"
            if "content" in delta
            else "?"
        )
        assert ("self_consistency" in ch) == (kinds[-1] == "final")
    assert kinds[0] == "role" and kinds[-3:] == ["content", "final", "usage"]
    assert set(kinds[1:-3]) == {"reasoning"}
    sc = chunks[-2]["self_consistency"]
    assert sum(v["count"] for v in sc["votes"]) == 5
    # Reasoning deltas are the primary sample's chain; content is the winner's final text.
    streamed = "".join(
        ch["choices"][0]["delta"]["reasoning_content"]
        for ch, k in zip(chunks, kinds, strict=True)
        if k == "reasoning"
    )
    assert streamed == sc["chains"][0]["reasoning_content"]
    assert chunks[-3]["choices"][0]["delta"]["content"] == sc["chains"][sc["winner_index"]]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == sum(c["completion_tokens"] for c in sc["chains"])
    # Same seed, same samples: the stream and the plain response agree.
    plain = chat(server, seed=3, self_consistency={"samples": 5}, **nudge).json()
    assert plain["self_consistency"]["votes"] == sc["votes"]
    assert plain["choices"][0]["message"]["content"] == chunks[-3]["choices"][0]["delta"]["content"]


def test_openai_sdk(client: openai.OpenAI, nudge: dict):
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, reasoning_effort="medium", seed=5, max_tokens=16
    )
    sc = r.model_extra["self_consistency"]
    assert sc["samples"] == 5 and sum(v["count"] for v in sc["votes"]) == 5
    assert isinstance(r.choices[0].message.model_extra["reasoning_content"], str)
    assert r.usage.completion_tokens_details.reasoning_tokens <= r.usage.completion_tokens
    assert r.usage.completion_tokens <= 5 * 16
    high = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, reasoning_effort="high", max_tokens=4
    )
    assert high.model_extra["self_consistency"]["samples"] == CAP  # 9 configured, clamped to the cap

    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        seed=5,
        stream_options={"include_usage": True},
        extra_body={"self_consistency": {"samples": 3, "return_chains": True}},
        **nudge,
    )
    chunks = list(stream)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices
    )
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1
    sc = final[0].model_extra["self_consistency"]
    assert sc["samples"] == 3 and reasoning == sc["chains"][0]["reasoning_content"]
    assert chunks[-1].usage.completion_tokens == sum(c["completion_tokens"] for c in sc["chains"])


def test_k_over_the_cap_is_a_400_naming_the_parameter(client: openai.OpenAI):
    for k in (CAP + 1, SLOTS + 1):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_body={"self_consistency": {"samples": k}}
            )
        assert err.value.body["param"] == "self_consistency.samples"
        assert err.value.body["code"] == "invalid_value"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, reasoning_effort="low", n=2)
    assert err.value.body["param"] == "n"


def test_votes_are_metrics(server: LiveServer):
    count = server.metric("tinyllm_self_consistency_samples_count")
    total = server.metric("tinyllm_self_consistency_samples_sum")
    agreement = server.metric("tinyllm_self_consistency_agreement_count")
    r = chat(server, self_consistency={"samples": 4}, max_tokens=4)
    assert r.status_code == 200
    assert server.metric("tinyllm_self_consistency_samples_count") == count + 1
    assert server.metric("tinyllm_self_consistency_samples_sum") == total + 4
    assert server.metric("tinyllm_self_consistency_agreement_count") == agreement + 1


def test_a_disconnect_cancels_every_sample(server: LiveServer):
    steps_before = server.metric("tinyllm_batch_size_count")
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "self_consistency": {"samples": 4},
        "max_tokens": 900,
        "ignore_eos": True,
        "temperature": 1.0,
    }
    with server.client() as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            events = sse_events(r.iter_lines())  # keep a reference: a dropped generator closes the stream
            assert next(events)["choices"][0]["delta"] == {"role": "assistant"}
            assert server.wait_for_metric("tinyllm_kv_slots_used", 4) == 4  # one request, four forked slots
        # Leaving the block closes the connection mid-stream.
    assert server.wait_for_metric("tinyllm_requests_running", 0) == 0
    assert server.metric("tinyllm_kv_slots_used") == 0
    # Decode steps taken: far fewer than the 900 the samples needed to finish on their own.
    assert server.metric("tinyllm_batch_size_count") - steps_before < 800


def test_the_shipped_checkpoint_thinks_by_default_and_answers_plainly_when_told():
    """Its generation_config.json says reasoning_effort "low": a request that names no effort gets the chain
    in reasoning_content and the answer in content; "none" asks for the answer alone; a request a vote
    cannot serve (n > 1) gets plain answers instead of a 400 for a mode it never asked for."""
    question = [{"role": "user", "content": "计算：12*(3+4)-10"}]
    with run_server(Path(DEFAULT_MODEL_DIR), quantize="int8", max_batch=8) as live:
        client = openai.OpenAI(base_url=live.v1, api_key=API_KEY, max_retries=0)
        default = client.chat.completions.create(model=MODEL, messages=question, seed=0)
        plain = client.chat.completions.create(model=MODEL, messages=question, reasoning_effort="none")
        two = client.chat.completions.create(model=MODEL, messages=question, n=2, max_tokens=16)
    message = default.choices[0].message
    sc = default.model_extra["self_consistency"]
    assert sc["samples"] == 1 and message.model_extra["reasoning_content"]
    assert "</think>" not in message.content and extract_answer(message.content) == sc["answer"]
    assert "self_consistency" not in (plain.model_extra or {})
    assert not (plain.choices[0].message.model_extra or {}).get("reasoning_content")
    assert plain.choices[0].message.content
    assert len(two.choices) == 2 and "self_consistency" not in (two.model_extra or {})
