"""/metrics of a real server, read while and after requests run: the process series, what is served, time to
first token observed at the first token, the request phases and sizes, requests and sequences in their own
units, and refusals made before routing labelled with the route they were meant for."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.tokenizer import Tokenizer
from tests.server.support import MODEL, LiveServer, run_server, sse_events

CHAT = "/v1/chat/completions"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(server_checkpoint: Path) -> Iterator[LiveServer]:
    with run_server(server_checkpoint, max_body_bytes=MAX_BODY, body_read_timeout_seconds=1.0) as live:
        yield live


def chat(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hello world"}], **extra}


def test_a_fresh_server_exports_process_platform_and_build_series(server: LiveServer):
    metrics = server.metrics()
    assert metrics["process_cpu_seconds_total"] > 0
    assert metrics["process_resident_memory_bytes"] > 10_000_000  # torch and a model are loaded
    assert metrics["process_open_fds"] > 0
    assert any(key.startswith("python_info{") for key in metrics)
    assert any(key.startswith("python_gc_collections_total{") for key in metrics)
    assert server.metric("tinyllm_cpu_cores") >= 1
    (build,) = [key for key in metrics if key.startswith("tinyllm_build_info{")]
    assert metrics[build] == 1
    assert f'model_name="{MODEL}"' in build and 'quantization="none"' in build
    assert f'checkpoint="{Path(server.settings.model).name}"' in build


def test_time_to_first_token_is_observed_while_the_stream_still_runs(
    server: LiveServer, server_tokenizer: Tokenizer
):
    # Eight long choices keep the request running for seconds after its first token (one choice of 600 ran out
    # under load before the scrape). A visible token forced by logit_bias makes the first token content even if
    # the random weights would loop on a token with no text of its own.
    (visible,) = server_tokenizer.encode("a")
    before = server.metrics()
    with server.client() as c:
        body = chat(stream=True, max_tokens=900, n=8, ignore_eos=True, logit_bias={str(visible): 100})
        with c.stream("POST", CHAT, json=body) as r:
            events = sse_events(r.iter_lines())  # keep a reference: a dropped generator closes the stream
            for event in events:
                if event != "[DONE]" and event["choices"][0]["delta"].get("content"):
                    break
            during = server.metrics()
            # Still running: not finished, yet its first token is already counted.
            assert during["tinyllm_requests_running"] == 1
            assert (
                during["tinyllm_time_to_first_token_seconds_count"]
                == before["tinyllm_time_to_first_token_seconds_count"] + 1
            )
            for phase in ("queue", "prefill"):
                name = f"tinyllm_request_{phase}_time_seconds_count"
                assert during[name] == before[name] + 1, phase
            e2e = 'tinyllm_e2e_request_latency_seconds_count{finish_reason="disconnected"}'
            assert during[e2e] == before[e2e]
        # Leaving the block closes the connection mid-stream: the request ends as "disconnected".
    assert server.wait_for_metric_change(e2e, before[e2e]) == before[e2e] + 1
    decode = 'tinyllm_request_decode_time_seconds_count{finish_reason="disconnected"}'
    assert server.metric_if_present(decode) == before[decode] + 1


def test_a_finished_request_is_measured_by_phase_size_and_finish_reason(server: LiveServer):
    before = server.metrics()
    with server.client() as c:
        r = c.post(CHAT, json=chat(max_tokens=5, n=2, ignore_eos=True))
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    after = server.metrics()

    def delta(key: str) -> float:
        return after[key] - before[key]

    length = '{finish_reason="length"}'
    assert delta("tinyllm_e2e_request_latency_seconds_count" + length) == 1
    assert delta("tinyllm_e2e_request_latency_seconds_sum" + length) > 0
    assert delta('tinyllm_e2e_request_latency_seconds_count{finish_reason="stop"}') == 0
    assert delta("tinyllm_request_decode_time_seconds_count" + length) == 1
    assert delta("tinyllm_request_generation_tokens_sum" + length) == usage["completion_tokens"] == 10
    assert delta("tinyllm_request_prompt_tokens_count") == 1
    assert delta("tinyllm_request_prompt_tokens_sum") == usage["prompt_tokens"]
    assert delta("tinyllm_request_params_n_sum") == 2
    assert delta("tinyllm_request_params_max_tokens_sum") == 5
    assert delta("tinyllm_time_to_first_token_seconds_count") == 1
    assert delta("tinyllm_prompt_tokens_total") == usage["prompt_tokens"]
    assert delta("tinyllm_generation_tokens_total") == 10


def test_running_counts_requests_and_sequences_separately(server: LiveServer):
    # Scraped in a loop while one n=3 request streams: the tiny model may finish before a client reads its
    # first event, so a single scrape after the first token would race the engine.
    seen: list[tuple[float, float, float]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            m = server.metrics()
            seen.append(
                (m["tinyllm_requests_running"], m["tinyllm_sequences_running"], m["tinyllm_kv_slots_used"])
            )

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with server.client() as c:
            body = chat(stream=True, max_tokens=900, ignore_eos=True, n=3)
            with c.stream("POST", CHAT, json=body) as r:
                assert list(sse_events(r.iter_lines()))[-1] == "[DONE]"
    finally:
        done.set()
        watcher.join()
    assert (1, 3, 3) in seen, sorted(set(seen))
    assert all(requests <= 1 and sequences <= 3 for requests, sequences, _ in seen)
    assert server.wait_for_metric("tinyllm_sequences_running", 0) == 0
    assert server.metric("tinyllm_requests_running") == 0


@pytest.mark.parametrize(
    ("method", "path", "headers", "content", "status", "route"),
    [
        ("POST", CHAT, {}, b"{}", 401, CHAT),
        ("GET", "/v1/models/tinyllm-x", {}, None, 401, "/v1/models/{model_id:path}"),
        ("POST", CHAT, "key", b"{" + b" " * (MAX_BODY + 10) + b"}", 413, CHAT),
        ("GET", "/no-such-page", {}, None, 404, "unmatched"),
    ],
)
def test_refusals_before_routing_name_the_route_they_were_for(
    server: LiveServer, method, path, headers, content, status, route
):
    if headers == "key":
        headers = {"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"}
    before = server.metric_if_present("tinyllm_requests_total", route=route, status=str(status)) or 0
    r = httpx.request(method, server.base_url + path, headers=headers, content=content)
    assert r.status_code == status, r.text
    # Counted once the response is sent, which can be a moment after the client has read it.
    key = f'tinyllm_requests_total{{route="{route}",status="{status}"}}'
    assert server.wait_for_metric(key, before + 1) == before + 1


def test_a_body_that_stops_arriving_is_counted_as_408_on_its_route(server: LiveServer):
    before = server.metric_if_present("tinyllm_requests_total", route=CHAT, status="408") or 0
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + b'{"model": ')  # 10 of the 100 bytes promised, then silence
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    key = f'tinyllm_requests_total{{route="{CHAT}",status="408"}}'
    assert server.wait_for_metric(key, before + 1) == before + 1
