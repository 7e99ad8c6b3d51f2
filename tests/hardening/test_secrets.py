"""Isolation between keys and the secrecy of keys: one key's requests, limits and log lines never show
another's; keys never reach logs (at DEBUG, prompts logged too), /metrics or error bodies; keys are compared
in constant time; the OpenAPI docs can be turned off."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.auth import KeyStore
from server.settings import Settings
from tests.hardening.support import assert_openai_error, capture_logs, server_process
from tests.server.support import API_KEY, MODEL, LiveServer, keys_file, run_server, sse_events

CHAT = "/v1/chat/completions"
ALICE_KEY = "sk-alice-0123456789abcdef"
BOB_KEY = "sk-bob-fedcba9876543210"  # an unnamed key: logged as its salted hash "key-xxxxxxxx"
WRONG_KEYS = [API_KEY + "x", API_KEY[:-1], "sk-totally-made-up-secret", ALICE_KEY.upper()]


@pytest.fixture(scope="module")
def keys_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return keys_file(tmp_path_factory.mktemp("keys"), [{"key": ALICE_KEY, "name": "alice", "rpm": 3}])


@pytest.fixture(scope="module")
def server(server_checkpoint: Path, keys_path: str) -> Iterator[LiveServer]:
    with run_server(
        server_checkpoint, api_keys=f"{API_KEY},{BOB_KEY}", api_keys_file=keys_path, log_prompts=True
    ) as live:
        yield live


def body(i: int, **extra) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"secret question {i}"}],
        "max_tokens": 12,
        "ignore_eos": True,
        "temperature": 1.0,
        "seed": 40 + i,
        **extra,
    }


# ------------------------------------------------------------------------------------------ isolation


def test_concurrent_requests_of_two_keys_stay_their_own(server: LiveServer):
    with server.client(BOB_KEY) as c:  # each request alone first: the reference output
        expected = [c.post(CHAT, json=body(i)).json()["choices"][0]["message"]["content"] for i in range(6)]

    async def stream(client: httpx.AsyncClient, key: str, i: int) -> str:
        async with client.stream(
            "POST", CHAT, json=body(i, stream=True), headers={"Authorization": f"Bearer {key}"}
        ) as r:
            lines = [line async for line in r.aiter_lines()]
        return "".join(
            e["choices"][0]["delta"].get("content", "")
            for e in sse_events(iter(lines))
            if e != "[DONE]" and e["choices"]
        )

    async def run_all() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            # Alice (3 rpm) and Bob interleaved; Bob's output is only ever his own.
            keys = [BOB_KEY if i % 2 else ALICE_KEY for i in range(6)]
            return await asyncio.gather(*(stream(client, key, i) for i, key in enumerate(keys)))

    assert asyncio.run(run_all()) == expected


def test_limits_and_log_lines_are_per_key(server: LiveServer):
    with capture_logs(logging.DEBUG) as records:
        with server.client(ALICE_KEY) as alice, server.client(BOB_KEY) as bob:
            statuses = [
                alice.post(CHAT, json=body(0, max_tokens=1), headers={"x-request-id": f"alice-{i}"})
                for i in range(5)
            ]
            refused = [r for r in statuses if r.status_code == 429]
            assert refused, "alice's 3 rpm bucket should have run out"
            for r in refused:
                error = assert_openai_error(r, 429, "rate_limit_exceeded", None)
                assert "alice" not in error["message"] and "bob" not in error["message"]
            r = bob.post(CHAT, json=body(1, max_tokens=1), headers={"x-request-id": "bob-1"})
            assert r.status_code == 200
            assert not any(
                h.startswith("x-ratelimit") for h in r.headers
            )  # bob has no limit, sees none of alice's
            assert alice.get("/v1/models").headers["x-ratelimit-limit-requests"] == "3"
    access = {getattr(rec, "request_id", ""): rec for rec in records if rec.name == "tinyllm.access"}
    assert {access[f"alice-{i}"].key for i in range(5)} == {"alice"}
    assert access["bob-1"].key.startswith("key-") and access["bob-1"].key != "alice"


def test_metrics_have_no_per_key_labels(server: LiveServer):
    with server.client(ALICE_KEY) as alice:
        alice.get("/v1/models")
    text = httpx.get(server.base_url + "/metrics").text
    for secret in (API_KEY, BOB_KEY, ALICE_KEY, "alice", "key-"):
        assert secret not in text
    labels = {
        part.split("=")[0]
        for line in text.splitlines()
        if "{" in line and not line.startswith("#")
        for part in line[line.index("{") + 1 : line.index("}")].split(",")
    }
    ours = {
        "route",
        "status",
        "limit",
        "le",
        "finish_reason",
        "version",
        "model_name",
        "checkpoint",
        "quantization",
    }
    python_collectors = {"implementation", "major", "minor", "patchlevel", "version", "generation"}
    assert labels <= ours | python_collectors, labels


# ------------------------------------------------------------------------------------------ secrecy


def test_wrong_keys_are_never_echoed(server: LiveServer):
    for wrong in WRONG_KEYS:
        for method, path in (("POST", CHAT), ("GET", "/v1/models"), ("GET", "/v1/nope")):
            r = httpx.request(
                method, server.base_url + path, json=body(0), headers={"Authorization": f"Bearer {wrong}"}
            )
            assert_openai_error(r, 401, "invalid_api_key", None)
            assert wrong not in r.text and wrong not in str(r.headers)
            assert API_KEY not in r.text and ALICE_KEY not in r.text


def test_keys_never_reach_logs_metrics_or_error_bodies(server_checkpoint: Path, keys_path: str):
    """A real process at DEBUG with prompts logged: every key, right or wrong, stays out of stderr."""
    with server_process(
        server_checkpoint,
        "--quantize",
        "none",
        "--served-model-name",
        MODEL,
        api_keys=f"{API_KEY},{BOB_KEY}",
        api_keys_file=keys_path,
        log_level="debug",
        log_prompts="true",
    ) as srv:
        bodies = []
        with httpx.Client(base_url=srv.base_url, timeout=60) as c:
            for key in (API_KEY, BOB_KEY, ALICE_KEY):
                auth = {"Authorization": f"Bearer {key}"}
                bodies.append(c.post(CHAT, json=body(0), headers=auth).text)
                with c.stream("POST", CHAT, json=body(1, stream=True), headers=auth) as r:
                    bodies.append(r.read().decode())
                for bad in ({"max_tokens": -1}, {"model": "nope"}, {"frobnicate": key}):
                    bodies.append(c.post(CHAT, json={**body(2), **bad}, headers=auth).text)
                bodies.append(c.post(CHAT + f"?api_key={key}", json=body(3), headers=auth).text)
            for wrong in WRONG_KEYS:
                bodies.append(c.post(CHAT, json=body(0), headers={"Authorization": f"Bearer {wrong}"}).text)
                bodies.append(c.get("/v1/models", headers={"Authorization": wrong}).text)
            bodies.append(c.get("/metrics").text)
        srv.proc.terminate()
        srv.proc.wait(timeout=30)
    logs = srv.stderr()
    assert "secret question" in logs  # it really logged everything it can: prompts too
    for secret in (API_KEY, BOB_KEY, ALICE_KEY, *WRONG_KEYS):
        assert secret not in logs, secret
    # The body of `{"frobnicate": key}` names the unknown field, not its value; nothing else echoes a key.
    for text in bodies:
        for secret in (BOB_KEY, ALICE_KEY, *WRONG_KEYS):
            assert secret not in text
    assert "Traceback" not in logs
    for line in srv.lines:
        json.loads(line)


def test_settings_and_their_errors_hide_keys(keys_path: str):
    settings = Settings(api_keys=f"{API_KEY},{BOB_KEY}", api_keys_file=keys_path)
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert API_KEY not in shown and BOB_KEY not in shown


# ------------------------------------------------------------------------------------------ constant time


def test_key_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch, keys_path: str):
    """Code review (server/auth.py): the presented key is hashed to a fixed-length SHA-256 digest and
    compared with *every* configured digest by hmac.compare_digest, without an early exit. Here the behaviour:
    whatever is presented (first key, last key, wrong key, a much longer or shorter one), the same number of
    comparisons runs, each on two 32-byte digests, so neither position nor length shows in the time."""
    store = KeyStore.from_settings(Settings(api_keys=f"{API_KEY},{BOB_KEY}", api_keys_file=keys_path))
    assert len(store.identities) == 3
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented, expected in (
        (API_KEY, True),
        (BOB_KEY, True),
        (ALICE_KEY, True),
        ("sk-wrong", False),
        ("x", False),
        ("y" * 10_000, False),
    ):
        calls.clear()
        identity = store.authenticate(f"Bearer {presented}")
        assert (identity is not None) is expected
        assert calls == [(32, 32)] * 3, (presented[:10], calls)


# ------------------------------------------------------------------------------------------ docs


def test_docs_can_be_disabled_from_the_environment(server_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TINYLLM_DOCS_ENABLED", "false")
    with run_server(server_checkpoint) as live:
        assert live.settings.docs_enabled is False
        for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"):
            assert_openai_error(httpx.get(live.base_url + path), 404, "unknown_url", None)
        with live.client() as c:
            assert c.get("/v1/models").status_code == 200
