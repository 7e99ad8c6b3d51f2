"""Concurrency against a real server: many simultaneous streams, and clients that leave mid-generation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.server.support import API_KEY, MODEL, LiveServer, run_server, sse_events

STREAMS = 32


@pytest.fixture(scope="module")
def server(server_checkpoint: Path):
    # 8 slots for 32 streams: most of them wait in the queue first. float32, so outputs do not depend on
    # which requests share a batch (int8 dynamic quantization scales activations per batch).
    with run_server(server_checkpoint, max_batch=8, max_queue=64, quantize="none") as live:
        yield live


def body(i: int, **extra) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"request {i}: 你好 apples {i * 7}"}],
        "max_tokens": 16,
        "ignore_eos": True,
        "temperature": 1.0,
        "seed": 100 + i,
        **extra,
    }


def alone_and_together(server: LiveServer, count: int) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Each request's text sent alone, one after another; then (text, finish reason) of all of them streamed
    at once."""
    with server.client() as c:
        alone = [
            c.post("/v1/chat/completions", json=body(i)).json()["choices"][0]["message"]["content"]
            for i in range(count)
        ]

    async def stream(client: httpx.AsyncClient, i: int) -> tuple[str, str | None]:
        text, finish = "", None
        async with client.stream("POST", "/v1/chat/completions", json=body(i, stream=True)) as r:
            assert r.status_code == 200
            lines = [line async for line in r.aiter_lines()]
        for event in sse_events(iter(lines)):
            if event != "[DONE]" and event["choices"]:
                text += event["choices"][0]["delta"].get("content", "")
                finish = event["choices"][0]["finish_reason"] or finish
        return text, finish

    async def run_all() -> list[tuple[str, str | None]]:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as client:
            return await asyncio.gather(*(stream(client, i) for i in range(count)))

    return alone, asyncio.run(run_all())


def test_simultaneous_streams_complete_with_independent_outputs(server: LiveServer):
    steps_before = server.metric("tinyllm_batch_size_count")
    expected, results = alone_and_together(server, STREAMS)
    assert [finish for _, finish in results] == ["length"] * STREAMS
    assert [text for text, _ in results] == expected  # each stream is its own request, unaffected by others
    assert len(set(expected)) > STREAMS // 2
    # Decode steps ran batched, never above the slot count.
    metrics = server.metrics()
    steps = metrics["tinyllm_batch_size_count"] - steps_before
    assert steps > 0
    assert metrics['tinyllm_batch_size_bucket{le="4.0"}'] < metrics["tinyllm_batch_size_count"]
    assert metrics['tinyllm_batch_size_bucket{le="8.0"}'] == metrics["tinyllm_batch_size_count"]
    assert server.wait_for_metric("tinyllm_requests_running", 0) == 0


def test_int8_outputs_do_not_depend_on_other_requests(server_checkpoint: Path):
    # int8 is the default precision: what users run must give each request the tokens it gets alone.
    with run_server(server_checkpoint, max_batch=8, max_queue=64, quantize="int8") as live:
        expected, results = alone_and_together(live, 12)
    assert [finish for _, finish in results] == ["length"] * 12
    assert [text for text, _ in results] == expected


def test_a_stream_disconnect_frees_the_slot(server: LiveServer):
    generated_before = server.metric("tinyllm_generation_tokens_total")
    with server.client() as c:
        with c.stream("POST", "/v1/chat/completions", json=body(0, stream=True, max_tokens=1000)) as r:
            lines = r.iter_lines()
            for event in sse_events(lines):
                if event != "[DONE]" and event["choices"][0]["delta"].get("content"):
                    break
            assert server.metric("tinyllm_requests_running") == 1
            assert server.metric("tinyllm_kv_slots_used") == 1
        # Leaving the block closes the connection mid-stream.
    assert server.wait_for_metric("tinyllm_requests_running", 0) == 0
    assert server.metric("tinyllm_kv_slots_used") == 0
    # The server saw the stream end early: it counted only what it had generated before the disconnect.
    generated = server.metric("tinyllm_generation_tokens_total") - generated_before
    assert 0 < generated < 1000


def test_a_non_streaming_client_that_gives_up_frees_the_slot(server: LiveServer):
    generated_before = server.metric("tinyllm_generation_tokens_total")
    with server.client() as c, pytest.raises(httpx.ReadTimeout):
        c.post("/v1/chat/completions", json=body(1, max_tokens=1000), timeout=0.5)
    assert server.wait_for_metric("tinyllm_requests_running", 0) == 0
    generated = (
        server.wait_for_metric_change("tinyllm_generation_tokens_total", generated_before) - generated_before
    )
    assert 0 < generated < 1000
    assert server.metric("tinyllm_requests_total", route="/v1/chat/completions", status="499") >= 1
