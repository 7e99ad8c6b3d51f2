"""The prefix cache through a real server and the official ``openai`` client, on the shipped checkpoint with
the default settings: a repeated conversation and a conversation's next turn report the prompt tokens they
took from the cache (``usage.prompt_tokens_details.cached_tokens``, as OpenAI reports it) and answer what a
server without the cache answers; /metrics counts them."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from server.settings import DEFAULT_MODEL_DIR
from tests.server.support import API_KEY, MODEL, LiveServer, run_server

CACHED = "tinyllm_prompt_tokens_cached_total"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[LiveServer, LiveServer]]:
    with run_server(DEFAULT_MODEL_DIR, quantize="int8") as cached:
        with run_server(DEFAULT_MODEL_DIR, quantize="int8", prefix_cache_entries=0) as off:
            yield cached, off


def _client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0, timeout=120)


def _ask(server: LiveServer, messages: list[dict], **extra):
    return _client(server).chat.completions.create(model=MODEL, messages=messages, **extra)


def test_a_repeated_conversation_computes_only_its_last_prompt_token(servers) -> None:
    cached, off = servers
    messages = [
        {"role": "system", "content": "You are a patient tutor; check every step twice."},
        {"role": "user", "content": "计算：(15+9)*4-18"},
    ]
    before = cached.metric(CACHED)
    first, again = _ask(cached, messages), _ask(cached, messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    assert cached.metric(CACHED) == before + again.usage.prompt_tokens - 1
    reference = _ask(off, messages)
    assert reference.usage.prompt_tokens_details.cached_tokens == 0
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.choices[0].message.content == reference.choices[0].message.content


def test_the_next_turn_of_a_conversation_reuses_the_first_turn_and_its_reply(servers) -> None:
    cached, off = servers
    plain = {"reasoning_effort": "none", "temperature": 0, "max_tokens": 60}
    turn = [{"role": "user", "content": "Work out 7 x (6 + 5) and show it."}]
    reply = _ask(cached, turn, **plain)
    follow = [
        *turn,
        {"role": "assistant", "content": reply.choices[0].message.content},
        {"role": "user", "content": "Now add 9 to that."},
    ]
    second = _ask(cached, follow, **plain)
    # The first turn's prompt, and at least part of the reply as the template writes it back.
    assert second.usage.prompt_tokens_details.cached_tokens > reply.usage.prompt_tokens
    assert second.choices[0].message.content == _ask(off, follow, **plain).choices[0].message.content
