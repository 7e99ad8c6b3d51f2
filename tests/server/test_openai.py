"""The official OpenAI Python SDK against a real server (sync and async, streaming and not)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from model.tokenizer import Tokenizer
from tests.server.support import API_KEY, MODEL, LiveServer, keys_file, run_server

LIMITED_KEY = "sk-one-request-per-minute"
MESSAGES = [{"role": "user", "content": "Count the apples: 3*(4+5)-2"}]
FIXED = {"extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def server(server_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    keys = keys_file(tmp_path_factory.mktemp("keys"), [{"key": LIMITED_KEY, "name": "limited", "rpm": 1}])
    # The default quantization (int8) on this module, float32 on the others.
    with run_server(server_checkpoint, api_keys_file=keys, quantize="int8") as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0)


def test_chat_completion_and_usage_match_the_tokenizer(client: openai.OpenAI, server_tokenizer: Tokenizer):
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10, seed=1, **FIXED)
    assert r.object == "chat.completion" and r.model == MODEL
    assert r.system_fingerprint and r.system_fingerprint.startswith("tinyllm-")
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.role == "assistant"
    assert r.usage.prompt_tokens == len(server_tokenizer.encode_chat(MESSAGES))
    assert r.usage.completion_tokens == 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + 10


def test_streaming_with_usage(client: openai.OpenAI, server_tokenizer: Tokenizer):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=15,
        stream=True,
        seed=2,
        stream_options={"include_usage": True},
        **FIXED,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 15
    assert chunks[-1].usage.prompt_tokens == len(server_tokenizer.encode_chat(MESSAGES))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    again = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=15, seed=2, **FIXED)
    assert text == again.choices[0].message.content


def test_seed_reproducibility(client: openai.OpenAI):
    def sample(seed: int) -> str:
        r = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=20, seed=seed, temperature=1.0, **FIXED
        )
        return r.choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3, 4)}) > 1


def test_n_choices(client: openai.OpenAI):
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, n=3, temperature=1.0, seed=9, **FIXED
    )
    assert [c.index for c in r.choices] == [0, 1, 2] and r.usage.completion_tokens == 24
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, n=3, temperature=1.0, seed=9, stream=True, **FIXED
    )
    texts, finished = ["", "", ""], set()
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1, 2}
    assert texts == [c.message.content for c in r.choices]  # the same seeds give the same three answers


def test_stop_sequences(client: openai.OpenAI):
    def text(**kw) -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=30, temperature=1.0, **FIXED, **kw
        )

    seed = next(s for s in range(100) if len(text(seed=s).choices[0].message.content.strip()) >= 10)
    full = text(seed=seed).choices[0].message.content
    stop = full[4:7]
    r = text(seed=seed, stop=stop)
    assert r.choices[0].message.content == full[: full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_logprobs(client: openai.OpenAI):
    r = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=5, logprobs=True, top_logprobs=2, **FIXED
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 5 and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


def test_errors_are_typed(server: LiveServer, client: openai.OpenAI):
    bad_key = openai.OpenAI(base_url=server.v1, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad_key.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert auth.value.code == "invalid_api_key"

    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "apple " * 1500}])
    assert too_long.value.code == "context_length_exceeded" and too_long.value.param == "messages"

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL

    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=[
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "if": {}}}}
            ],
        )
    assert tools.value.param == "tools[0].function.parameters.if"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={"best_guess": 1})
    assert unknown.value.code == "unknown_parameter" and unknown.value.param == "best_guess"


def test_rate_limit_error_after_the_bucket_empties(server: LiveServer):
    limited = openai.OpenAI(base_url=server.v1, api_key=LIMITED_KEY, max_retries=0)
    limited.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as info:
        limited.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert info.value.code == "rate_limit_exceeded"
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_legacy_completions(client: openai.OpenAI):
    r = client.completions.create(model=MODEL, prompt="the quick brown", max_tokens=6, **FIXED)
    assert r.object == "text_completion" and r.usage.completion_tokens == 6
    chunks = list(client.completions.create(model=MODEL, prompt="你好", max_tokens=6, stream=True, **FIXED))
    assert chunks[-1].choices[0].finish_reason == "length"


def test_async_client_streams_concurrently(server: LiveServer):
    async def run() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0)

        async def one(seed: int) -> str:
            stream = await aclient.chat.completions.create(
                model=MODEL, messages=MESSAGES, max_tokens=12, seed=seed, stream=True, **FIXED
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        plain = await aclient.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=12, seed=0, **FIXED
        )
        streamed = await asyncio.gather(*(one(s) for s in range(4)))
        await aclient.close()
        return [plain.choices[0].message.content, *streamed]

    results = asyncio.run(run())
    assert len(results) == 5 and all(isinstance(t, str) for t in results)


def test_chinese_streams_never_carry_a_replacement_character(client: openai.OpenAI):
    messages = [{"role": "user", "content": "你好世界，今天天气很好。我们一起学习计算：答案是多少？"}]
    deltas = []
    for seed in range(6):
        stream = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=60, seed=seed, temperature=1.0, stream=True, **FIXED
        )
        deltas += [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas and any(any("\u4e00" <= ch <= "\u9fff" for ch in d) for d in deltas)
    assert not [d for d in deltas if "\ufffd" in d]
