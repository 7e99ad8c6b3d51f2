"""The engine in its own process (``TINYLLM_ENGINE_PROCESS=true``), through real servers and the official
``openai`` client: the same tokens as the engine thread, constraints built again on the engine side, a
client that leaves, a full queue, and an engine process that dies. The SIGTERM drain with the engine process
is in tests/server/test_cli.py."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from reasoning.step_check import false_steps
from server.settings import DEFAULT_MODEL_DIR
from tests.server.support import API_KEY, MODEL, LiveServer, run_server, sse_events
from tests.server.test_concurrency import alone_and_together

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "ok": {"type": "boolean"}},
    "required": ["name", "ok"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def thread_server(server_checkpoint: Path) -> Iterator[LiveServer]:
    with run_server(server_checkpoint, quantize="none") as live:
        yield live


@pytest.fixture(scope="module")
def process_server(server_checkpoint: Path) -> Iterator[LiveServer]:
    with run_server(server_checkpoint, quantize="none", engine_process=True) as live:
        yield live


@pytest.fixture(scope="module")
def shipped_process_server() -> Iterator[LiveServer]:
    """The shipped checkpoint: slow enough (a few ms a token) that a long request is still running when a
    test acts on it; the tiny random checkpoint finishes 900 tokens in a fraction of a second."""
    with run_server(DEFAULT_MODEL_DIR, quantize="int8", engine_process=True) as live:
        yield live


def sdk(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.v1, api_key=API_KEY, max_retries=0, timeout=120)


# Greedy, seeded sampling with every filter, n=3 with logprobs, penalties and bias, a JSON schema.
CHAT_REQUESTS = [
    dict(max_tokens=24, temperature=0.9, top_p=0.9, seed=5, extra_body={"top_k": 40, "min_p": 0.05}),
    dict(max_tokens=16, n=3, seed=11, temperature=1.5, logprobs=True, top_logprobs=3),
    dict(
        max_tokens=24, seed=3, presence_penalty=1.5, frequency_penalty=0.5, logit_bias={"17": 5, "30": -100}
    ),
    dict(
        max_tokens=80,
        seed=2,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}},
    ),
]


def answers(live: LiveServer) -> list:
    client = sdk(live)
    ask = [{"role": "user", "content": "你好, tell me about apples"}]
    out = [client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=24, temperature=0)]
    out += [client.chat.completions.create(model=MODEL, messages=ask, **kwargs) for kwargs in CHAT_REQUESTS]
    return [[rounded(c.model_dump()) for c in r.choices] for r in out]


def rounded(value):
    """Logprobs to 4 places: a reduction run on another thread team may differ in the last bit of a float32
    (measured: one top logprob of a prefill, -4.7739325 against -4.7739320); tokens and text never do."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def test_the_same_tokens_as_the_engine_thread(thread_server: LiveServer, process_server: LiveServer):
    expected, got = answers(thread_server), answers(process_server)
    assert got == expected
    document = json.loads(got[-1][0]["message"]["content"])  # the grammar was rebuilt on the engine side
    jsonschema.validate(document, SCHEMA)
    sampled = {tuple(t["token"] for t in c["logprobs"]["content"]) for c in got[2]}
    assert len(sampled) > 1  # n=3: each sequence has its own random stream


def test_simultaneous_streams_get_their_own_tokens(process_server: LiveServer):
    expected, results = alone_and_together(process_server, 16)
    assert [finish for _, finish in results] == ["length"] * 16
    assert [text for text, _ in results] == expected
    assert process_server.metric("tinyllm_batch_size_count") > 0  # steps reported from the engine process
    assert process_server.wait_for_metric("tinyllm_requests_running", 0) == 0


def test_a_stream_disconnect_cancels_in_the_engine_process(shipped_process_server: LiveServer):
    live = shipped_process_server
    # 8 sequences of 480 tokens: seconds of work, so the engine is still decoding when the client leaves.
    body = {"model": MODEL, "prompt": "Once", "max_tokens": 480, "n": 8, "ignore_eos": True, "stream": True}
    generated_before = live.metric("tinyllm_generation_tokens_total")
    with live.client() as c:
        with c.stream("POST", "/v1/completions", json=body) as r:
            events = sse_events(r.iter_lines())  # kept: a collected line iterator closes the response
            next(events)
            assert live.metric("tinyllm_sequences_running") == 8
        # Leaving the block closes the connection mid-stream: the cancel crosses to the engine process.
    assert live.wait_for_metric("tinyllm_requests_running", 0) == 0
    assert live.metric("tinyllm_kv_slots_used") == 0
    generated = live.metric("tinyllm_generation_tokens_total") - generated_before
    assert 0 < generated < 8 * 480


def test_bad_input_is_refused_before_it_reaches_the_engine(process_server: LiveServer):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(process_server).completions.create(model=MODEL, prompt="x " * 2000, max_tokens=10)
    assert caught.value.body["param"] in ("prompt", "max_tokens")


def test_a_full_queue_is_503_with_retry_after():
    with run_server(DEFAULT_MODEL_DIR, engine_process=True, max_batch=1, max_queue=1) as live:
        long = {"model": MODEL, "prompt": "a", "max_tokens": 900, "ignore_eos": True}
        with live.client() as c, c.stream("POST", "/v1/completions", json={**long, "stream": True}) as r:
            events = sse_events(r.iter_lines())
            next(events)  # running: the one slot is taken
            waiting = threading.Thread(target=lambda: live.client().post("/v1/completions", json=long))
            waiting.start()
            assert live.wait_for_metric("tinyllm_requests_waiting", 1) == 1
            refused = live.client().post("/v1/completions", json=long)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] and refused.json()["error"]["code"] == "server_overloaded"
        waiting.join(timeout=120)


def test_a_dead_engine_process_ends_streams_and_fails_readiness():
    with run_server(DEFAULT_MODEL_DIR, engine_process=True) as live:
        engine = live.app.state.tinyllm.engine
        assert httpx.get(live.base_url + "/ready").status_code == 200
        assert httpx.get(live.base_url + "/health").status_code == 200
        body = {"model": MODEL, "prompt": "a", "max_tokens": 900, "ignore_eos": True, "stream": True}
        with live.client() as c, c.stream("POST", "/v1/completions", json=body) as r:
            events = sse_events(r.iter_lines())
            next(events)
            os.kill(engine.pid, signal.SIGKILL)
            rest = list(events)
        assert any("error" in e for e in rest if e != "[DONE]")  # ended with an error, not hung
        deadline = time.monotonic() + 10
        while httpx.get(live.base_url + "/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(live.base_url + "/ready").status_code == 503
        # Liveness fails too: a dead engine never comes back, so the orchestrator must restart the server.
        health = httpx.get(live.base_url + "/health")
        assert health.status_code == 503 and health.json()["error"]["code"] == "engine_dead"
        refused = live.client().post("/v1/completions", json={**body, "stream": False})
        assert refused.status_code == 503 and "retry-after" in refused.headers


def test_the_calculator_guide_is_rebuilt_on_the_engine_side(shipped_process_server: LiveServer):
    done = sdk(shipped_process_server).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "计算：47*38-19"}],
        seed=7,
        extra_body={"self_consistency": {"samples": 3, "return_chains": True}},
    )
    result = done.model_extra["self_consistency"]
    assert result["arithmetic"] == "calculator"
    for chain in result["chains"]:
        assert false_steps(chain["reasoning_content"]) == [], chain["reasoning_content"]
    assert done.choices[0].message.content and "1767" in done.choices[0].message.content
