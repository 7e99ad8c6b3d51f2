"""HTTP contract of the server, with httpx against a real uvicorn on a loopback port."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest

from model.tokenizer import Tokenizer
from server.request_log import JSONFormatter
from tests.server.support import API_KEY, MODEL, LiveServer, keys_file, run_server, sse_events

LIMITED_KEY = "sk-limited-requests"
TOKENS_KEY = "sk-limited-tokens"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello, 你好!"}]


@pytest.fixture(scope="module")
def server(server_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    keys = keys_file(
        tmp_path_factory.mktemp("keys"),
        [
            {"key": LIMITED_KEY, "name": "limited", "rpm": 2},
            {"key": TOKENS_KEY, "name": "tokens", "tpm": 300},
        ],
    )
    with run_server(
        server_checkpoint, api_keys_file=keys, max_tokens=1000, max_body_bytes=100_000, keepalive_seconds=0.2
    ) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer):
    with server.client() as c:
        yield c


def chat(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, **body})


def assert_openai_error(response: httpx.Response, status: int, code: str | None, param: str | None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["param"] == param
    assert body["error"]["message"]
    return body["error"]


# ------------------------------------------------------------------------------------------ operations


def test_health_ready_and_metrics_are_open(server: LiveServer):
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.base_url + "/ready").json()["status"] == "ready"
    text = httpx.get(server.base_url + "/metrics").text
    for name in (
        "tinyllm_requests_total",
        "tinyllm_kv_slots_total",
        "tinyllm_requests_running",
        "tinyllm_rate_limited_total",
        "tinyllm_batch_size_bucket",
        "tinyllm_time_to_first_token_seconds",
    ):
        assert name in text
    assert server.metric("tinyllm_kv_slots_total") == 8


def test_docs_and_openapi(server: LiveServer):
    spec = httpx.get(server.base_url + "/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"] and "/v1/models/{model_id}" in spec["paths"]
    assert httpx.get(server.base_url + "/docs").status_code == 200


def test_request_id_header(client: httpx.Client):
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) >= 16
    assert client.get("/health", headers={"x-request-id": "trace-42"}).headers["x-request-id"] == "trace-42"
    assert (
        client.get("/health", headers={"x-request-id": "bad id <script>"}).headers["x-request-id"]
        != "bad id <script>"
    )


# ------------------------------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
    ],
)
def test_v1_needs_a_valid_key(server: LiveServer, headers: dict):
    before = server.metric("tinyllm_auth_failures_total")
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/unknown")):
        r = httpx.request(method, server.base_url + path, headers=headers, json={"model": MODEL})
        error = assert_openai_error(r, 401, "invalid_api_key", None)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "wrong-key" not in error["message"] and API_KEY not in error["message"]
    assert server.metric("tinyllm_auth_failures_total") == before + 3


# ------------------------------------------------------------------------------------------ models


def test_models(client: httpx.Client):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list" and [m["id"] for m in listing["data"]] == [MODEL]
    card = client.get(f"/v1/models/{MODEL}").json()
    assert card["object"] == "model" and card["max_model_len"] == 1024
    assert_openai_error(client.get("/v1/models/gpt-4o"), 404, "model_not_found", "model")
    assert_openai_error(chat(client, model="gpt-4o"), 404, "model_not_found", "model")


# ------------------------------------------------------------------------------------------ chat


def test_chat_completion_shape_and_usage(client: httpx.Client, server_tokenizer: Tokenizer):
    r = chat(client, max_tokens=12, ignore_eos=True, seed=3, temperature=1.0)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == MODEL and body["system_fingerprint"].startswith("tinyllm-")
    assert isinstance(body["created"], int)
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert "\ufffd" not in choice["message"]["content"]
    prompt_tokens = len(server_tokenizer.encode_chat(MESSAGES))
    cached = body["usage"]["prompt_tokens_details"]["cached_tokens"]  # the prefix cache's share
    assert 0 <= cached < prompt_tokens
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 12,
        "total_tokens": prompt_tokens + 12,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": None,
    }
    assert r.headers["x-request-id"]


def test_streaming_chunk_order_matches_the_non_streaming_answer(client: httpx.Client):
    body = {"max_tokens": 20, "ignore_eos": True, "seed": 11, "temperature": 1.0}
    expected = chat(client, **body).json()["choices"][0]["message"]["content"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
            **body,
        },
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "length"
    assert chunks.index(finals[0]) == len(chunks) - 2  # then only the usage chunk
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 20
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1])
    assert text == expected


def test_keepalive_comments_on_a_long_stream(client: httpx.Client):
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 900, "ignore_eos": True},
    ) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    assert any(line.startswith(": ping") for line in lines)  # keepalive is 0.2 s on this server
    assert "data: [DONE]" in lines


def _long_text(client: httpx.Client, seed: int) -> str:
    return chat(client, max_tokens=40, ignore_eos=True, seed=seed, temperature=1.0).json()["choices"][0][
        "message"
    ]["content"]


def test_stop_string_is_honoured_and_never_emitted(client: httpx.Client):
    seed = next(s for s in range(100) if len(_long_text(client, s).strip()) >= 12)
    text = _long_text(client, seed)
    stop = text[6:9]
    expected = text[: text.index(stop)]
    r = chat(
        client, max_tokens=40, ignore_eos=True, seed=seed, temperature=1.0, stop=["\u2603never", stop]
    ).json()
    assert r["choices"][0]["message"]["content"] == expected
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] < 40
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": MESSAGES,
            "stream": True,
            "max_tokens": 40,
            "ignore_eos": True,
            "seed": seed,
            "temperature": 1.0,
            "stop": stop,
        },
    ) as resp:
        chunks = [e for e in sse_events(resp.iter_lines()) if e != "[DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_n_choices_and_seed(client: httpx.Client):
    body = chat(client, n=3, max_tokens=15, ignore_eos=True, seed=5, temperature=1.0).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 45
    again = chat(client, n=3, max_tokens=15, ignore_eos=True, seed=5, temperature=1.0).json()
    assert [c["message"]["content"] for c in again["choices"]] == [
        c["message"]["content"] for c in body["choices"]
    ]


def test_logprobs(client: httpx.Client):
    body = chat(client, max_tokens=6, ignore_eos=True, logprobs=True, top_logprobs=3).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 6
    for entry in content:
        assert entry["logprob"] <= 0 and isinstance(entry["bytes"], list) and "\ufffd" not in entry["token"]
        tops = [t["logprob"] for t in entry["top_logprobs"]]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and entry["logprob"] <= tops[0] + 1e-6
    assert_openai_error(chat(client, top_logprobs=2), 400, "invalid_value", "top_logprobs")


# ------------------------------------------------------------------------------------------ admission


def test_context_length_and_caps(client: httpx.Client):
    long_messages = [{"role": "user", "content": "hello world " * 800}]
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": long_messages, "max_tokens": 5})
    assert (
        "maximum context length is 1024"
        in assert_openai_error(r, 400, "context_length_exceeded", "messages")["message"]
    )
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "hello " * 1100, "max_tokens": 5})
    assert_openai_error(r, 400, "context_length_exceeded", "prompt")
    # A prompt that fits with a completion that does not: generated until the context is full.
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "hello " * 600, "max_tokens": 600})
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["total_tokens"] == 1024
    # Past the context: generates until it is full (finish_reason "length"), as llama.cpp.
    assert chat(client, max_tokens=100_000).status_code == 200
    assert chat(client, max_completion_tokens=100_000).status_code == 200
    assert_openai_error(chat(client, n=9), 400, "invalid_value", "n")
    assert_openai_error(chat(client, min_tokens=10, max_tokens=5), 400, "invalid_value", "min_tokens")
    assert_openai_error(chat(client, logit_bias={"999999": 3}), 400, "invalid_value", "logit_bias")


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "extra, status, code, param",
    [
        ({"frobnicate": True}, 400, "unknown_parameter", "frobnicate"),
        ({"temperature": -1}, 400, "invalid_value", "temperature"),
        ({"top_p": 2}, 400, "invalid_value", "top_p"),
        ({"n": 0}, 400, "invalid_value", "n"),
        ({"max_tokens": -5}, 400, "invalid_value", "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_value", "stop"),
        (
            {"tools": [{"type": "function", "function": {"name": "f g"}}]},
            400,
            "invalid_value",
            "tools[0].function.name",
        ),
        ({"tool_choice": "required"}, 400, "invalid_value", "tool_choice"),
        ({"functions": [{"name": "f"}]}, 400, "unsupported_parameter", "functions"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, 400, "unsupported_parameter", "audio"),
        ({"modalities": ["text", "audio"]}, 400, "unsupported_value", "modalities"),
        ({"prediction": {"type": "content", "content": "x"}}, 400, "unsupported_parameter", "prediction"),
        ({"response_format": {"type": "xml"}}, 400, "invalid_value", "response_format.type"),
        ({"self_consistency": {"samples": 9}}, 400, "invalid_value", "self_consistency.samples"),  # > 8 slots
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}
                ]
            },
            400,
            "unsupported_value",
            "messages[0].content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            400,
            "missing_required_parameter",
            "messages[0].content[0].text",
        ),
        (
            {"messages": [{"role": "function", "content": "1", "name": "a"}]},
            400,
            "unsupported_value",
            "messages[0].role",
        ),
        ({"messages": []}, 400, "invalid_value", "messages"),
        ({"messages": None}, 400, "invalid_value", "messages"),
        ({"stream_options": {"include_usage": True}}, 400, "invalid_value", "stream_options"),
    ],
)
def test_bad_requests_name_the_parameter(
    client: httpx.Client, extra: dict, status: int, code: str, param: str
):
    r = client.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, **extra})
    assert_openai_error(r, status, code, param)


def test_malformed_bodies(client: httpx.Client):
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert_openai_error(r, 400, "invalid_json", None)
    r = client.post(
        "/v1/chat/completions",
        content=json.dumps({"model": MODEL, "messages": MESSAGES}),
        headers={"Content-Type": "text/plain"},
    )
    assert "Content-Type: application/json" in assert_openai_error(r, 400, "invalid_value", None)["message"]
    r = client.post("/v1/chat/completions", json=[1, 2])
    assert r.status_code == 400 and r.json()["error"]["param"] is None
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "x", "temperature": NaN, "messages": []}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400


def test_unknown_route_wrong_method_and_body_too_large(client: httpx.Client):
    assert_openai_error(client.get("/v1/nothing-here"), 404, "unknown_url", None)
    assert_openai_error(client.get("/nothing-here"), 404, "unknown_url", None)
    assert_openai_error(client.get("/v1/chat/completions"), 405, "method_not_allowed", None)
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 150_000}]}
    assert_openai_error(client.post("/v1/chat/completions", json=big), 413, "request_too_large", None)

    def chunked():  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 10_000
        yield b'"}]}'

    r = client.post("/v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"})
    assert_openai_error(r, 413, "request_too_large", None)


def test_unexpected_exceptions_become_a_500_without_details(server: LiveServer, client: httpx.Client):
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    server.app.add_api_route("/v1/test-boom", boom)
    r = client.get("/v1/test-boom")
    error = assert_openai_error(r, 500, "internal_error", None)
    assert "secret" not in r.text and r.headers["x-request-id"] in error["message"]


# ------------------------------------------------------------------------------------------ rate limits


def test_requests_rate_limit(server: LiveServer):
    before = server.metric("tinyllm_rate_limited_total", limit="requests")
    with server.client(LIMITED_KEY) as c:
        remaining = []
        for _ in range(2):
            r = chat(c, max_tokens=2)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit-requests"] == "2"
            remaining.append(r.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["1", "0"]
        r = chat(c, max_tokens=2)
        error = assert_openai_error(r, 429, "rate_limit_exceeded", None)
        assert error["type"] == "requests"
        assert 1 <= int(r.headers["retry-after"]) <= 31
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
        assert c.get("/v1/models").headers["x-ratelimit-limit-requests"] == "2"  # on every /v1 response
    assert server.metric("tinyllm_rate_limited_total", limit="requests") == before + 1
    with server.client() as c:  # another key is not slowed
        assert chat(c, max_tokens=2).status_code == 200


def test_tokens_rate_limit(server: LiveServer):
    with server.client(TOKENS_KEY) as c:
        started = time.monotonic()
        r = chat(c, max_tokens=250, ignore_eos=True)
        refilled = 300 / 60 * (time.monotonic() - started)  # the bucket refills while a slow machine decodes
        assert r.status_code == 200 and r.headers["x-ratelimit-limit-tokens"] == "300"
        # The prompt and the 250 tokens were charged: under 50 left, plus what refilled meanwhile.
        assert int(r.headers["x-ratelimit-remaining-tokens"]) < 300 - 250 + refilled
        r = chat(c, max_tokens=250, ignore_eos=True)
        assert assert_openai_error(r, 429, "rate_limit_exceeded", None)["type"] == "tokens"
        assert "retry-after" in r.headers
        r = chat(c, max_tokens=400)  # can never fit in 300/minute: the SDK must not retry
        assert_openai_error(r, 429, "rate_limit_exceeded", None)
        assert r.headers["x-should-retry"] == "false"


def test_limits_per_client_address_before_authentication(server_checkpoint: Path):
    with run_server(
        server_checkpoint, client_limit_public="4/minute", client_limit_auth_failures="3/minute"
    ) as live:
        with live.client("sk-wrong-guess") as guesser:
            assert [guesser.get("/v1/models").status_code for _ in range(3)] == [401] * 3
            r = guesser.get("/v1/models")
            assert_openai_error(r, 429, "rate_limit_exceeded", None)
            assert 1 <= int(r.headers["retry-after"]) <= 60
        with live.client() as same_address:  # even the right key: a lucky guess must not get through
            assert same_address.get("/v1/models").status_code == 429
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with live.client(transport=other) as elsewhere:
            assert elsewhere.get("/v1/models").status_code == 200
        with httpx.Client(base_url=live.base_url, timeout=10) as anonymous:
            assert [
                anonymous.get(path).status_code for path in ("/health", "/ready", "/health", "/health")
            ] == [200] * 4
            assert_openai_error(anonymous.get("/metrics"), 429, "rate_limit_exceeded", None)


# ------------------------------------------------------------------------------------------ completions


def test_text_completions(client: httpx.Client, server_tokenizer: Tokenizer):
    r = client.post(
        "/v1/completions",
        json={
            "model": MODEL,
            "prompt": ["hello", "你好"],
            "n": 2,
            "max_tokens": 5,
            "ignore_eos": True,
            "echo": True,
            "seed": 1,
        },
    ).json()
    assert r["object"] == "text_completion" and r["id"].startswith("cmpl-")
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    assert [
        c["text"][: len(p)] for c, p in zip(r["choices"], ["hello", "hello", "你好", "你好"], strict=True)
    ] == ["hello", "hello", "你好", "你好"]
    prompt_tokens = len(server_tokenizer.encode("hello")) + len(server_tokenizer.encode("你好"))
    assert r["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 20,
        "total_tokens": prompt_tokens + 20,
        "prompt_tokens_details": {"cached_tokens": 0},  # prompts this short are not worth an entry
        "completion_tokens_details": None,
    }

    ids = server_tokenizer.encode("the quick brown")
    r = client.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": ids, "max_tokens": 4, "ignore_eos": True, "logprobs": 2},
    ).json()
    lp = r["choices"][0]["logprobs"]
    assert (
        len(lp["tokens"])
        == len(lp["token_logprobs"])
        == len(lp["top_logprobs"])
        == len(lp["text_offset"])
        == 4
    )
    assert all(len(t) == 2 for t in lp["top_logprobs"])
    assert r["usage"]["prompt_tokens"] == len(ids)

    bad = client.post("/v1/completions", json={"model": MODEL, "prompt": [1, 10**6]})
    assert_openai_error(bad, 400, "invalid_value", "prompt")
    assert_openai_error(
        client.post("/v1/completions", json={"model": MODEL, "prompt": "x", "suffix": "y"}),
        400,
        "unsupported_parameter",
        "suffix",
    )


def test_text_completion_stream(client: httpx.Client):
    with client.stream(
        "POST",
        "/v1/completions",
        json={
            "model": MODEL,
            "prompt": "hello",
            "max_tokens": 8,
            "ignore_eos": True,
            "stream": True,
            "n": 2,
            "stream_options": {"include_usage": True},
        },
    ) as r:
        events = list(sse_events(r.iter_lines()))
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 16
    finishes = [e["choices"][0] for e in events[:-2] if e["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finishes) == [0, 1] and {f["finish_reason"] for f in finishes} == {
        "length"
    }

    # Two prompts, two choices each: indices 0..3, each choice's stream equals its non-streamed text.
    request = {
        "model": MODEL,
        "prompt": ["hello", "你好"],
        "max_tokens": 6,
        "ignore_eos": True,
        "n": 2,
        "seed": 4,
        "temperature": 1.0,
    }
    expected = [c["text"] for c in client.post("/v1/completions", json=request).json()["choices"]]
    with client.stream("POST", "/v1/completions", json={**request, "stream": True}) as r:
        texts = ["", "", "", ""]
        for event in sse_events(r.iter_lines()):
            if event != "[DONE]":
                texts[event["choices"][0]["index"]] += event["choices"][0]["text"]
    assert texts == expected


# ------------------------------------------------------------------------------------------ logs


def test_access_log_is_json_with_request_id_and_never_the_key(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO):
        r = client.post(
            "/v1/chat/completions",
            headers={"x-request-id": "log-test-1"},
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 3},
        )
        assert r.status_code == 200
        httpx.get(client.base_url.join("/v1/models"), headers={"Authorization": "Bearer not-a-key-123"})
    records = [rec for rec in caplog.records if rec.name == "tinyllm.access"]
    mine = [rec for rec in records if getattr(rec, "request_id", None) == "log-test-1"]
    assert len(mine) == 1
    line = json.loads(JSONFormatter().format(mine[0]))
    assert line["status"] == 200 and line["path"] == "/v1/chat/completions" and line["prompt_tokens"] > 0
    assert line["key"].startswith("key-")
    formatted = "\n".join(JSONFormatter().format(rec) for rec in caplog.records)
    assert API_KEY not in formatted and "not-a-key-123" not in formatted
    assert "Say hello" not in formatted  # prompts are not logged by default
    assert not [rec for rec in caplog.records if rec.name == "tinyllm.prompts"]


# ------------------------------------------------------------------------------------------ queue and drain


def test_queue_full_and_draining_get_503(server_checkpoint: Path):
    with run_server(server_checkpoint, max_queue=0) as live, live.client() as c:
        r = chat(c, max_tokens=2)
        assert_openai_error(r, 503, "server_overloaded", None)
        assert r.headers["retry-after"] == "1"
        assert live.metric("tinyllm_queue_rejections_total") == 1
        live.app.state.tinyllm.lifecycle.begin_drain()
        r = chat(c, max_tokens=2)
        assert_openai_error(r, 503, "server_unavailable", None)
        assert "retry-after" in r.headers
        assert httpx.get(live.base_url + "/ready").status_code == 503
        assert httpx.get(live.base_url + "/health").status_code == 200
