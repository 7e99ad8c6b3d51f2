"""Replicas sharing one Redis behind nginx, all real: a ``redis-server``, two ``python -m server`` processes
and an ``nginx`` with the shipped proxy settings (deploy/nginx/proxy.conf), on loopback ports.

Distinct loopback source addresses (127.0.0.2, ...) stand for distinct clients: nginx passes the address in
X-Forwarded-For, and the replicas trust it from 127.0.0.1 (TINYLLM_FORWARDED_ALLOW_IPS' default).
The tests run in file order; the last one stops a replica.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from model.tokenizer import Tokenizer
from server.auth import Identity
from server.errors import APIError
from server.ratelimit import RateLimitExceeded
from server.ratelimit_redis import RedisRateLimiter
from server.redis_link import RedisLink
from tests.deploy.support import REPO, RedisServer, free_port, nginx_proxy, require_binary
from tests.hardening.support import ServerProcess, assert_openai_error, server_process
from tests.server.support import keys_file, sse_events

RELOAD_SECONDS = 1.0  # TINYLLM_KEYS_RELOAD_SECONDS of the replicas: a revocation lands within it
SLACK_SECONDS = 2.0  # on top, for scheduling on a loaded 2-core machine
WITHIN = RELOAD_SECONDS + SLACK_SECONDS
# Per client IP per minute; above the 401s the revocation test's polling can cause (from its own address).
AUTH_FAILURES = 30
PUBLIC_LIMIT = 300  # per client IP per minute on routes without a key
KEYS = [
    {"key": "sk-rpm", "name": "rpm-key", "rpm": 6},
    {"key": "sk-tpm", "name": "tpm-key", "tpm": 120},
    {"key": "sk-outage", "name": "outage-key", "rpm": 4},
    {"key": "sk-good", "name": "good-key"},
]
OBSERVER = "127.0.0.9"  # the address the tests read /metrics from, apart from the clients under test


@dataclass
class Fleet:
    a: ServerProcess
    b: ServerProcess
    proxy: str
    keys_path: Path

    @property
    def replicas(self) -> tuple[ServerProcess, ServerProcess]:
        return self.a, self.b


def client(base_url: str, ip: str = "127.0.0.1", key: str | None = None, timeout: float = 30) -> httpx.Client:
    """A client whose connections come from loopback address ``ip``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.HTTPTransport(local_address=ip)
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)


def complete(base_url: str, key: str, ip: str = "127.0.0.1", **body: Any) -> httpx.Response:
    with client(base_url, ip, key) as c:
        return c.post("/v1/completions", json={"model": "tinyllm", "prompt": "hi", "max_tokens": 1, **body})


def metric(replica: ServerProcess, name: str) -> float:
    with client(replica.base_url, OBSERVER) as c:
        text = c.get("/metrics").text
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(
    server_checkpoint: Path, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    require_binary("nginx")
    directory = tmp_path_factory.mktemp("fleet")
    keys_path = keys_file(directory, KEYS)
    settings = dict(
        redis_url=redis.url,
        served_model_name="tinyllm",
        api_keys_file=keys_path,
        keys_reload_seconds=str(RELOAD_SECONDS),
        client_limit_auth_failures=f"{AUTH_FAILURES}/minute",
        client_limit_public=f"{PUBLIC_LIMIT}/minute",
        shutdown_grace_seconds="30",  # the drain test's 900-token stream must finish on a busy 2-core CI
        quantize="none",
        max_batch="4",
    )
    with (
        server_process(server_checkpoint, **settings) as a,
        server_process(server_checkpoint, **settings) as b,
        nginx_proxy(directory, [a.port, b.port]) as proxy,
    ):
        yield Fleet(a, b, proxy, Path(keys_path))


def test_a_keys_request_budget_holds_across_both_replicas(fleet: Fleet):
    started = time.monotonic()
    statuses: dict[int, list[int]] = {0: [], 1: []}
    for i in range(12):
        r = complete(fleet.replicas[i % 2].base_url, "sk-rpm")
        statuses[i % 2].append(r.status_code)
        if r.status_code == 429:
            assert_openai_error(r, 429, code="rate_limit_exceeded")
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["x-ratelimit-limit-requests"] == "6"
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
        else:
            assert r.status_code == 200, r.text
    admitted = sum(s == 200 for s in statuses[0] + statuses[1])
    refill = int((time.monotonic() - started) * 6 / 60)  # the bucket refills 6 per minute
    assert 6 <= admitted <= 6 + refill, statuses
    # Each replica alone would have admitted all 6 of its requests: its refusals come from the shared budget.
    assert 429 in statuses[0] and 429 in statuses[1], statuses


def test_unused_tokens_are_refunded_to_the_shared_bucket(fleet: Fleet, server_tokenizer: Tokenizer):
    # The key's bucket holds 120 tokens and refills 2 per second. Each request below reserves 30 + 50 = 80
    # and, with every stop token forced, uses about its 30 prompt tokens: about 50 come back each time.
    stop_now = {str(i): 100 for i in server_tokenizer.stop_token_ids}
    ask = {"prompt": [100] * 30, "max_tokens": 50, "logit_bias": stop_now}
    first = complete(fleet.a.base_url, "sk-tpm", **ask)
    assert first.status_code == 200, first.text
    usage = first.json()["usage"]
    assert usage["prompt_tokens"] == 30 and usage["completion_tokens"] <= 1
    # 120 - 31 = 89 left with the refund; 120 - 80 = 40 without it (20 s of refill short of 80).
    second = complete(fleet.b.base_url, "sk-tpm", **ask)
    assert second.status_code == 200, second.text
    # One bucket for both: after B's refund about 58 are left, 11 s of refill short of another 80, where
    # a bucket of A's own would still hold 89.
    third = complete(fleet.a.base_url, "sk-tpm", **ask)
    assert_openai_error(third, 429, code="rate_limit_exceeded")
    assert third.headers["x-ratelimit-limit-tokens"] == "120"
    assert third.json()["error"]["type"] == "tokens"


def key_admin(redis: RedisServer, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server.key_admin", "--redis-url", redis.url, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def statuses_with(fleet: Fleet, key: str, ip: str) -> list[int]:
    """Each replica's answer to ``key`` from ``ip`` (a test's own: its 401s count against it alone)."""
    out = []
    for replica in fleet.replicas:
        with client(replica.base_url, ip, key) as c:
            out.append(c.get("/v1/models").status_code)
    return out


def wait_for_statuses(fleet: Fleet, key: str, ip: str, expected: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while (current := statuses_with(fleet, key, ip)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return current


def test_a_key_added_then_revoked_in_redis_is_refused_by_both_replicas(fleet: Fleet, redis: RedisServer):
    key = key_admin(redis, "add", "carol", "--rpm", "100").strip()
    assert key.startswith("sk-") and len(key) > 30
    assert key not in key_admin(redis, "list") and '"name": "carol"' in key_admin(redis, "list")
    # The documented delay: one reload interval (plus slack for scheduling on a loaded machine).
    ip = "127.0.0.10"  # this test's own client address
    assert wait_for_statuses(fleet, key, ip, [200, 200], WITHIN) == [200, 200]
    key_admin(redis, "revoke", "carol")
    assert wait_for_statuses(fleet, key, ip, [401, 401], WITHIN) == [401, 401]
    for replica in fleet.replicas:
        assert key not in replica.stderr()
        assert any("carol" in line and "keys from redis changed" in line for line in replica.lines)


def test_the_keys_file_is_reloaded_on_change_by_every_replica(fleet: Fleet):
    ip = "127.0.0.12"  # this test's own client address
    path = fleet.keys_path
    original = path.read_text()
    try:
        keys_file(path.parent, [*KEYS, {"key": "sk-from-file", "name": "dave"}])
        assert wait_for_statuses(fleet, "sk-from-file", ip, [200, 200], WITHIN) == [200, 200]
        path.write_text("{not json")  # a half-written file: the last good keys stay
        time.sleep(RELOAD_SECONDS + 0.5)
        assert statuses_with(fleet, "sk-from-file", ip) == [200, 200]
    finally:
        path.write_text(original)
    assert wait_for_statuses(fleet, "sk-from-file", ip, [401, 401], WITHIN) == [401, 401]
    for replica in fleet.replicas:  # reported once, not at every poll while the file stayed broken
        assert sum("keys file not reloaded" in line for line in replica.lines) == 1


def test_sighup_reloads_the_keys_file_at_once(server_checkpoint: Path, tmp_path: Path):
    path = keys_file(tmp_path, [{"key": "sk-old", "name": "old"}])
    # No polling: only the signal can make the server read the file again.
    with server_process(server_checkpoint, api_keys_file=path, keys_reload_seconds="0") as server:
        keys_file(tmp_path, [{"key": "sk-new", "name": "new"}])
        with client(server.base_url, "127.0.0.11", "sk-new") as c:
            assert c.get("/v1/models").status_code == 401
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while c.get("/v1/models").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.get("/v1/models").status_code == 200
        with client(server.base_url, "127.0.0.11", "sk-old") as c:
            assert c.get("/v1/models").status_code == 401
        assert server.proc.poll() is None  # SIGHUP did not stop it


def test_bad_keys_from_one_address_are_throttled_on_every_replica(fleet: Fleet):
    attacker, other = "127.0.0.2", "127.0.0.3"
    targets = [fleet.a.base_url, fleet.b.base_url, fleet.proxy]
    for i in range(AUTH_FAILURES):
        with client(targets[i % 3], attacker, f"sk-guess-{i}") as c:
            assert_openai_error(c.get("/v1/models"), 401, code="invalid_api_key")
    for base_url in targets:
        # Past the budget even the right key is refused from that address, on every replica.
        for key in ("sk-guess-x", "sk-good"):
            with client(base_url, attacker, key) as c:
                r = c.get("/v1/models")
            assert_openai_error(r, 429, code="rate_limit_exceeded")
            assert 1 <= int(r.headers["retry-after"]) <= 60
    # A forged X-Forwarded-For does not help: nginx replaces it with the real address.
    with client(fleet.proxy, attacker, "sk-good") as c:
        assert c.get("/v1/models", headers={"X-Forwarded-For": other}).status_code == 429
    with client(fleet.proxy, other, "sk-good") as c:
        assert [c.get("/v1/models").status_code for _ in range(4)] == [200] * 4


def test_routes_without_a_key_are_limited_per_address_across_replicas(fleet: Fleet):
    heavy, light = "127.0.0.5", "127.0.0.6"
    with client(fleet.a.base_url, heavy) as a, client(fleet.b.base_url, heavy) as b:
        statuses = [(a, b)[i % 2].get("/health").status_code for i in range(PUBLIC_LIMIT)]
        assert statuses == [200] * PUBLIC_LIMIT
        refused = a.get("/health")
        assert_openai_error(refused, 429, code="rate_limit_exceeded")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert b.get("/ready").status_code == 429
    with client(fleet.b.base_url, light) as c:
        assert c.get("/health").status_code == 200


def test_redis_outage_applies_the_open_policy_then_limits_resume(fleet: Fleet, redis: RedisServer):
    redis.stop()
    try:
        started = time.monotonic()
        per_replica: dict[int, list[int]] = {0: [], 1: []}
        for i in range(10):
            # A hang would raise here (timeout): every request is answered quickly, one way or the other.
            with client(fleet.replicas[i % 2].base_url, key="sk-outage", timeout=10) as c:
                r = c.post("/v1/completions", json={"model": "tinyllm", "prompt": "hi", "max_tokens": 1})
            per_replica[i % 2].append(r.status_code)
        refill = int((time.monotonic() - started) * 4 / 60)
        for statuses in per_replica.values():
            # open: each replica enforces the key's 4 per minute with its own bucket.
            assert set(statuses) <= {200, 429}, statuses
            assert 4 <= statuses.count(200) <= 4 + refill, statuses
        with client(fleet.a.base_url, key="sk-good", timeout=10) as c:
            assert c.get("/v1/models").status_code == 200  # authentication never needed Redis
        for replica in fleet.replicas:
            assert metric(replica, "tinyllm_redis_errors_total") >= 1
            assert metric(replica, "tinyllm_redis_up") == 0
            assert sum("redis unreachable" in line for line in replica.lines) == 1  # once per outage
    finally:
        redis.start()
    # Limits resume on the shared budget once Redis answers (it restarted empty: the bucket is full).
    deadline = time.monotonic() + 10
    while any(metric(r, "tinyllm_redis_up") != 1 for r in fleet.replicas) and time.monotonic() < deadline:
        for replica in fleet.replicas:
            with client(replica.base_url, key="sk-outage") as c:
                c.get("/v1/models")  # its rate-limit headers come from Redis
        time.sleep(0.2)
    assert [metric(r, "tinyllm_redis_up") for r in fleet.replicas] == [1, 1]
    statuses = [complete(fleet.replicas[i % 2].base_url, "sk-outage").status_code for i in range(6)]
    assert statuses.count(200) == 4 and statuses[-1] == 429, statuses
    assert all(any("redis reachable again" in line for line in r.lines) for r in fleet.replicas)


def test_closed_policy_answers_503_without_waiting_and_open_falls_back_to_local_buckets():
    async def check() -> None:
        # Nothing listens there: a real client meets a real refused connection.
        registry = CollectorRegistry()
        link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", 0.2, registry)
        who = Identity(name="k", digest=b"k" * 32)
        closed = RedisRateLimiter(5, 0, link, "closed")
        with pytest.raises(APIError) as refused:
            await closed.reserve(who, 1)
        assert refused.value.status_code == 503 and refused.value.headers["Retry-After"] == "1"
        assert await closed.headers(who) == {}
        opened = RedisRateLimiter(1, 0, link, "open")
        await opened.reserve(who, 1)
        with pytest.raises(RateLimitExceeded):
            await opened.reserve(who, 1)
        assert (await opened.headers(who))["x-ratelimit-remaining-requests"] == "0"
        # One failed command; the calls after it, within the pause, did not even try.
        assert registry.get_sample_value("tinyllm_redis_errors_total", {"operation": "ratelimit"}) == 1
        await link.aclose()

    asyncio.run(check())


def test_streams_through_nginx_arrive_token_by_token(fleet: Fleet, server_tokenizer: Tokenizer):
    # The random-weight model may loop on a token with no text of its own (a lone byte, a control token):
    # such a stream is rightly one event at the end. A visible token forced by logit_bias, and no EOS, make
    # every token an event.
    (visible,) = server_tokenizer.encode("a")
    with client(fleet.proxy, "127.0.0.4", "sk-good", timeout=60) as c:
        body = {
            "model": "tinyllm",
            "prompt": "hi",
            "max_tokens": 900,
            "stream": True,
            "ignore_eos": True,
            "logit_bias": {str(visible): 100},
        }
        # Scraped in a loop: proof of streaming is a scrape, begun after the first event reached the client,
        # that still finds the replica generating (a buffering proxy delivers the first event only at the end).
        scrapes: list[tuple[float, float]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                started = time.monotonic()
                running = sum(metric(replica, "tinyllm_requests_running") for replica in fleet.replicas)
                scrapes.append((started, running))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with c.stream("POST", "/v1/completions", json=body) as r:
                assert r.status_code == 200
                events = sse_events(r.iter_lines())
                first = next(events)
                first_at = time.monotonic()
                rest = list(events)
        finally:
            done.set()
            watcher.join()
    assert first["choices"][0]["text"] is not None
    assert any(started > first_at and running >= 1 for started, running in scrapes)
    assert rest[-1] == "[DONE]" and rest[-2]["choices"][0]["finish_reason"] == "length"
    # Several events, not one blob at the end (the server may put tokens that are ready together in one).
    assert len(rest) >= 3


def test_sigterm_drains_one_replica_while_the_other_serves_through_nginx(fleet: Fleet):
    events: list[Any] = []

    def stream() -> None:
        with client(fleet.proxy, "127.0.0.7", "sk-good", timeout=60) as c:
            body = {"model": "tinyllm", "prompt": "hi", "max_tokens": 900, "stream": True}
            with c.stream("POST", "/v1/completions", json=body) as r:
                events.extend(sse_events(r.iter_lines()))

    reader = threading.Thread(target=stream)
    reader.start()
    deadline = time.monotonic() + 20
    busy = None
    while busy is None and time.monotonic() < deadline:
        busy = next((r for r in fleet.replicas if metric(r, "tinyllm_requests_running") >= 1), None)
        time.sleep(0.02)
    assert busy is not None, "the stream never started"
    busy.proc.send_signal(signal.SIGTERM)
    # New requests keep being served through the proxy while the stopping replica drains.
    statuses = [complete(fleet.proxy, "sk-good", "127.0.0.8").status_code for _ in range(6)]
    reader.join(timeout=60)
    assert statuses == [200] * 6
    # The stream in flight on the stopping replica finished normally within the grace period.
    assert events and events[-1] == "[DONE]", events[-3:]
    assert events[-2]["choices"][0]["finish_reason"] in ("length", "stop")
    assert busy.proc.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once stopped
    (stopped,) = [e for e in busy.log_entries() if e.get("msg") == "stopped"]
    assert stopped["cancelled_in_flight"] == 0
    assert complete(fleet.proxy, "sk-good", "127.0.0.8").status_code == 200
