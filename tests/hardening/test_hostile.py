"""Hostile and malformed requests against a real server on loopback: every one gets a clear 4xx in OpenAI's
error shape that names the parameter at fault, and none costs the server its health.

Policies decided here (and in server/json_body.py):
* the body must be UTF-8 JSON (a UTF-8 BOM is tolerated); UTF-16/32 and invalid bytes are 400 ``invalid_json``;
* lone surrogates (``"\\ud800"``) and NUL characters in any string or key are 400 ``invalid_value``, ``param``
  the path of the string (``messages[0].content``);
* duplicate keys are refused, not "last wins": 400 ``duplicate_key`` with ``param`` the repeated key;
* nesting deeper than 32 levels is 400 ``invalid_json``;
* 1 MB of content is over the default body cap (413); content under the cap but over the context is 400
  ``context_length_exceeded``; a body that stops arriving is 408 after ``TINYLLM_BODY_READ_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hardening.support import assert_openai_error, capture_logs, http_request, raw_http
from tests.server.support import API_KEY, MODEL, LiveServer, run_server

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(server_checkpoint: Path) -> Iterator[LiveServer]:
    # The default body cap (1 MB); a short body timeout so the truncated-body case answers quickly.
    with run_server(server_checkpoint, max_tokens=64, max_queue=16, body_read_timeout_seconds=1.0) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(autouse=True)
def no_server_errors() -> Iterator[None]:
    """No request of any test may make the server log an error (an unhandled exception is one)."""
    with capture_logs(logging.WARNING) as records:
        yield
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def post_raw(
    client: httpx.Client, content: bytes, content_type: str | None = "application/json", path: str = CHAT
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(path, content=content, headers=headers)


# ------------------------------------------------------------------------------------------ parameters


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": HI, **fields}


@pytest.mark.parametrize(
    "body, code, param",
    [
        (_chat(messages=[]), "invalid_value", "messages"),
        (_chat(messages=[{"role": "wizard", "content": "x"}]), "invalid_value", "messages[0].role"),
        (_chat(messages=[{"role": "", "content": "x"}]), "invalid_value", "messages[0].role"),
        (_chat(messages=[{"role": 7, "content": "x"}]), "invalid_value", "messages[0].role"),
        (_chat(messages=["hello"]), "invalid_value", "messages[0]"),
        (_chat(messages=[{"role": "user", "content": None}]), "invalid_value", "messages[0].content"),
        (_chat(messages=[{"role": "user"}]), "missing_required_parameter", "messages[0].content"),
        (_chat(messages="hi"), "invalid_value", "messages"),
        (_chat(max_tokens=-1), "invalid_value", "max_tokens"),
        (_chat(max_tokens=0), "invalid_value", "max_tokens"),
        (_chat(max_tokens=10**30), "invalid_value", "max_tokens"),
        (_chat(max_tokens=1.5), "invalid_value", "max_tokens"),
        (_chat(max_completion_tokens=0), "invalid_value", "max_completion_tokens"),
        (_chat(n=0), "invalid_value", "n"),
        (_chat(n=-3), "invalid_value", "n"),
        (_chat(n=1000), "invalid_value", "n"),
        (_chat(n=10**30), "invalid_value", "n"),
        (_chat(temperature=-0.5), "invalid_value", "temperature"),
        (_chat(temperature=2.5), "invalid_value", "temperature"),
        (_chat(top_p=1.5), "invalid_value", "top_p"),
        (_chat(top_p=-0.1), "invalid_value", "top_p"),
        (_chat(presence_penalty=3), "invalid_value", "presence_penalty"),
        (_chat(frequency_penalty=-2.5), "invalid_value", "frequency_penalty"),
        (_chat(logit_bias={"999999": 1}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"-1": 1}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"9" * 400: 1}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"abc": 1}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"1.5": 1}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"--5": 1}), "invalid_value", "logit_bias"),  # was a 500: int("--5")
        (_chat(logit_bias={"\u00b2": 1}), "invalid_value", "logit_bias"),  # was a 500: "²".isdigit()
        (_chat(logit_bias={"\u0661\u0662": 1}), "invalid_value", "logit_bias"),  # was read as token 12
        (_chat(logit_bias={"5": 101}), "invalid_value", "logit_bias"),
        (_chat(logit_bias={"5": "x"}), "invalid_value", "logit_bias.5"),
        (_chat(logit_bias=[1, 2]), "invalid_value", "logit_bias"),
        (_chat(stop=["a", "b", "c", "d", "e"]), "invalid_value", "stop"),
        (_chat(stop=["a"] * 1000), "invalid_value", "stop"),
        (_chat(stop=["ok", ""]), "invalid_value", "stop"),
        (_chat(stop=5), "invalid_value", "stop"),
        (_chat(seed=2**64), "invalid_value", "seed"),
        (_chat(logprobs=True, top_logprobs=21), "invalid_value", "top_logprobs"),
        (_chat(min_tokens=-1), "invalid_value", "min_tokens"),
        (_chat(top_k=-2), "invalid_value", "top_k"),
        (_chat(repetition_penalty=0), "invalid_value", "repetition_penalty"),
        (_chat(metadata={"a": {"b": 1}}), "invalid_value", "metadata.a"),
        (_chat(model=5), "invalid_value", "model"),
        ({"messages": HI}, "missing_required_parameter", "model"),
    ],
)
def test_bad_chat_parameters_are_named(client: httpx.Client, body: dict, code: str, param: str):
    assert_openai_error(client.post(CHAT, json=body), 400, code, param)


def test_max_tokens_over_the_servers_cap_generates_up_to_the_cap(client: httpx.Client):
    body = client.post(CHAT, json=_chat(max_tokens=65, ignore_eos=True)).json()  # the cap is 64
    assert body["usage"]["completion_tokens"] == 64 and body["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers(client: httpx.Client, value: str):
    for field in ("temperature", "top_p", "presence_penalty"):
        body = (
            f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "{field}": {value}}}'
        )
        error = assert_openai_error(post_raw(client, body.encode()), 400, "invalid_value", field)
        assert "finite" in error["message"]


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": MODEL, "prompt": ""}, "prompt"),
        ({"model": MODEL, "prompt": []}, "prompt"),
        ({"model": MODEL, "prompt": [[]]}, "prompt"),
        ({"model": MODEL, "prompt": [-1]}, "prompt"),
        ({"model": MODEL, "prompt": [10**30]}, "prompt"),
        ({"model": MODEL, "prompt": ["x"] * 1000, "max_tokens": 1}, "prompt"),  # was a 503 "retry" forever
        ({"model": MODEL, "prompt": "x", "logprobs": 6}, "logprobs"),
        ({"model": MODEL, "prompt": "x", "n": 0}, "n"),
        ({"model": MODEL, "prompt": "x", "max_tokens": -1}, "max_tokens"),
    ],
)
def test_bad_completion_parameters_are_named(client: httpx.Client, body: dict, param: str):
    assert_openai_error(client.post("/v1/completions", json=body), 400, "invalid_value", param)


def test_near_zero_sampling_values_cannot_poison_the_batch(server: LiveServer, client: httpx.Client):
    """temperature 1e-300 or top_p 5e-324 made the sampler produce NaN, and a NaN fails the engine's whole
    decode step: every request in the batch ended with a 500. Now they mean greedy; a repetition_penalty
    near 0 (or huge) is refused. A stream running alongside is never disturbed."""
    with (
        server.client() as other,
        other.stream("POST", CHAT, json=_chat(max_tokens=60, ignore_eos=True, stream=True)) as stream,
    ):
        lines = stream.iter_lines()
        next(line for line in lines if line.startswith("data: "))  # the stream runs
        greedy = client.post(CHAT, json=_chat(max_tokens=8, ignore_eos=True, temperature=0)).json()
        for extreme in (
            {"temperature": 1e-300},
            {"temperature": 5e-324, "top_p": 0.5},
            {"top_p": 5e-324},
            {"top_p": 1e-300, "temperature": 1.9},
        ):
            r = client.post(CHAT, json=_chat(max_tokens=8, ignore_eos=True, **extreme))
            assert r.status_code == 200, (extreme, r.text)
            assert r.json()["choices"][0]["message"]["content"] == greedy["choices"][0]["message"]["content"]
        for penalty in (5e-324, 1e-30, 0.001, 1e30):
            assert_openai_error(
                client.post(CHAT, json=_chat(repetition_penalty=penalty)),
                400,
                "invalid_value",
                "repetition_penalty",
            )
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]" and '"finish_reason":"length"' in rest[-2]


# ------------------------------------------------------------------------------------------ text


@pytest.mark.parametrize(
    "raw, param",
    [
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "\\udfff", "content": "ab"}]}',
            "messages[0].role",
        ),
        (b'{"model": "\\ud800", "messages": [{"role": "user", "content": "ab"}]}', "model"),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "\\udc00"]}',
            "stop[1]",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud83d"}]}]}',
            "messages[0].content[0].text",
        ),
        (b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "ab"}], "\\ud800": 1}', "?"),
    ],
)
def test_lone_surrogates_are_refused(client: httpx.Client, raw: bytes, param: str):
    error = assert_openai_error(post_raw(client, raw), 400, "invalid_value", param)  # was a 500
    assert "surrogate" in error["message"]


@pytest.mark.parametrize(
    "raw, param",
    [
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "ab"}], "user": "\\u0000"}',
            "user",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "ab"}], "metadata": {"k\\u0000": "v"}}',
            "metadata.k\x00",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "ab"}], "metadata": {"a": "x", '
            b'"b": "y\\u0000"}}',
            "metadata.b",
        ),
        (
            b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "ab"}], "stop": [["a"], [1, "\\u0000"]]}',
            "stop[1][1]",
        ),
    ],
)
def test_nul_characters_are_refused(client: httpx.Client, raw: bytes, param: str):
    error = assert_openai_error(post_raw(client, raw), 400, "invalid_value", param)
    assert "NUL" in error["message"]


def test_invalid_utf8_and_other_encodings(client: httpx.Client):
    good = json.dumps(_chat(max_tokens=2)).encode()
    error = assert_openai_error(post_raw(client, good.replace(b'"hi"', b'"h\xff\xfei"')), 400, "invalid_json")
    assert "UTF-8" in error["message"]
    assert_openai_error(post_raw(client, good.decode().encode("utf-16")), 400, "invalid_json")
    assert_openai_error(post_raw(client, good.decode().encode("utf-32")), 400, "invalid_json")
    assert_openai_error(post_raw(client, good[:30] + b"\xc3"), 400, "invalid_json")  # cut inside a character
    assert post_raw(client, b"\xef\xbb\xbf" + good).status_code == 200  # a UTF-8 BOM is tolerated


def test_chinese_text_passes_unharmed(client: httpx.Client):
    body = _chat(messages=[{"role": "user", "content": "你好，世界！🙂"}], max_tokens=3, stop=["。"])
    assert client.post(CHAT, json=body).status_code == 200


# ------------------------------------------------------------------------------------------ JSON structure


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "tinyllm-test", "model": "other", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "tinyllm-test", "messages": [{"role": "user", "content": "hi"}], "model": "tinyllm-test"}',
    ],
)
def test_duplicate_keys_are_refused(client: httpx.Client, raw: bytes):
    error = assert_openai_error(post_raw(client, raw), 400, "duplicate_key", "model")
    assert "'model'" in error["message"]


def test_nested_duplicate_key_is_named_by_its_path(client: httpx.Client):
    raw = b'{"model": "tinyllm-test", "messages": [{"role": "user", "role": "system", "content": "hi"}]}'
    assert_openai_error(post_raw(client, raw), 400, "duplicate_key", "messages[0].role")


@pytest.mark.parametrize(
    "raw, param",
    [
        (b"[" * 100_000 + b"]" * 100_000, None),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None),
        (
            b'{"model": "tinyllm-test", "messages": [], "metadata": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}",
            None,
        ),
        (
            b'{"model": "tinyllm-test", "messages": [], "metadata": ' + b"[" * 40 + b"]" * 40 + b"}",
            "metadata" + "[0]" * 32,
        ),
    ],
)
def test_deep_nesting_is_refused_quickly(
    server: LiveServer, client: httpx.Client, raw: bytes, param: str | None
):
    r = client.post(CHAT, content=raw, headers={"Content-Type": "application/json"}, timeout=10)
    assert "nested too deeply" in assert_openai_error(r, 400, "invalid_json", param)["message"]
    assert httpx.get(server.base_url + "/health", timeout=5).status_code == 200


@pytest.mark.parametrize("raw", [b"[]", b'"hello"', b"5", b"null", b"true", b"[1, 2]"])
def test_non_object_bodies(client: httpx.Client, raw: bytes):
    error = assert_openai_error(post_raw(client, raw), 400, "invalid_value", None)
    assert "JSON object" in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "tinyllm-test", "messages": [{"role": "user", "cont',
        b'{"model": "tinyllm-test", "messages": [',
        b'{"model": "tinyllm-test",}',
        b"{'model': 'tinyllm-test'}",
        b'{"max_tokens": ' + b"9" * 5000 + b"}",  # past Python's int-parsing limit
    ],
)
def test_truncated_or_invalid_json(client: httpx.Client, raw: bytes):
    error = assert_openai_error(post_raw(client, raw), 400, "invalid_json", None)
    assert "JSON" in error["message"]


def test_empty_body(client: httpx.Client):
    error = assert_openai_error(post_raw(client, b""), 400, "missing_required_parameter", None)
    assert "empty" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_wrong_content_type(client: httpx.Client, content_type: str | None):
    r = post_raw(client, json.dumps(_chat(max_tokens=2)).encode(), content_type)
    assert "Content-Type: application/json" in assert_openai_error(r, 400, "invalid_value", None)["message"]


# ------------------------------------------------------------------------------------------ size and time


def test_one_megabyte_of_content_is_over_the_body_cap(client: httpx.Client):
    r = client.post(CHAT, json=_chat(messages=[{"role": "user", "content": "x" * 1_000_000}]))
    assert "limit is 1000000" in assert_openai_error(r, 413, "request_too_large", None)["message"]


def test_content_under_the_cap_but_over_the_context(client: httpx.Client):
    r = client.post(CHAT, json=_chat(messages=[{"role": "user", "content": "你好 hello " * 60_000}]))
    error = assert_openai_error(r, 400, "context_length_exceeded", "messages")
    assert "maximum context length is 1024" in error["message"]


def test_a_body_that_stops_arriving_gets_408(server: LiveServer):
    body = json.dumps(_chat(max_tokens=2)).encode()
    request = http_request(
        "POST",
        CHAT,
        body[:25],
        {**AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    # The server's body timeout answers (408); had it waited on the client instead, the read would time out
    # with no response at all (status None).
    response = raw_http(server.port, request, read_timeout=30)
    assert response.status == 408, response
    assert response.json()["error"]["code"] == "request_timeout"


def test_a_client_that_leaves_mid_body_costs_nothing(server: LiveServer):
    body = json.dumps(_chat(max_tokens=2)).encode()
    request = http_request(
        "POST",
        CHAT,
        body[:25],
        {**AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    raw_http(server.port, request, read_timeout=2, shutdown_write=True)
    assert httpx.get(server.base_url + "/ready").status_code == 200


def test_content_length_smaller_than_the_body(server: LiveServer):
    body = json.dumps(_chat(max_tokens=2)).encode()
    request = http_request(
        "POST", CHAT, body, {**AUTH, "Content-Type": "application/json", "Content-Length": "10"}
    )
    response = raw_http(server.port, request)
    assert response.status == 400 and response.json()["error"]["code"] == "invalid_json"


def test_the_server_is_healthy_after_all_this(server: LiveServer, client: httpx.Client):
    assert client.post(CHAT, json=_chat(max_tokens=4)).status_code == 200
    # The series exists for the successes (so the absence below is not a renamed metric) and not for 500s.
    assert server.metric("tinyllm_requests_total", route=CHAT, status="200") >= 1
    assert server.metric_if_present("tinyllm_requests_total", route=CHAT, status="500") is None
