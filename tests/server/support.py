"""Real servers for the server tests: a random-weight checkpoint written by the project's own code, served by
a real uvicorn on a free loopback port in a background thread (no in-process client, no mocks).

``tests/conftest.py`` defines the fixtures built on it (``server_checkpoint``, ``server_tokenizer``,
``live_server``); test modules start one server per module with :func:`run_server`, keeping the suite fast.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.settings import Settings

API_KEY = "sk-test-main-key"
MODEL = "tinyllm-test"
CONTEXT = 1024  # the server checkpoint's context: long enough for a disconnect to cut a generation short


@dataclass
class LiveServer:
    base_url: str
    app: FastAPI
    settings: Settings
    api_key: str = API_KEY

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def client(self, key: str | None = API_KEY, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kwargs)

    def metrics(self) -> dict[str, float]:
        """The /metrics samples as ``{'name{label="v"}': value}``."""
        text = httpx.get(self.base_url + "/metrics", timeout=10).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric_if_present(self, name: str, **labels: str) -> float | None:
        """One sample's value, or None when /metrics has no such series (labels in the server's order)."""
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        return self.metrics().get(wanted)

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value; a series that does not exist fails the test (a renamed metric is not 0)."""
        value = self.metric_if_present(name, **labels)
        if value is None:
            raise AssertionError(f"/metrics has no series {name} {labels or ''}")
        return value

    def wait_for_metric(self, name: str, value: float, timeout: float = 15.0) -> float:
        """The series' value once it equals ``value``, else its value at the deadline (a series that never
        appears fails the test then)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.metric_if_present(name)
            if current == value:
                return current
            if time.monotonic() > deadline:
                return self.metric(name)
            time.sleep(0.05)

    def wait_for_metric_change(self, name: str, old: float, timeout: float = 15.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            current = self.metric(name)
            if current != old or time.monotonic() > deadline:
                return current
            time.sleep(0.05)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def run_server(checkpoint: Path, **overrides: Any) -> Iterator[LiveServer]:
    """Serve ``checkpoint`` with uvicorn on a free loopback port until the block ends."""
    values: dict[str, Any] = dict(
        model=str(checkpoint),
        served_model_name=MODEL,
        api_keys=API_KEY,
        quantize="none",
        max_batch=8,
        max_queue=64,
        keepalive_seconds=1.0,
        shutdown_grace_seconds=2.0,
        # One server serves a whole module, all from 127.0.0.1 (the fuzzer alone sends hundreds of bad
        # keys): per-IP limits off unless a test turns them on (tests/server/test_http.py does).
        client_limit_public="",
        client_limit_auth_failures="",
    )
    values.update(overrides)
    settings = Settings(**values)
    app = create_app(settings)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=3)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def sse_events(lines: Iterator[str]) -> Iterator[Any]:
    """Parsed ``data:`` payloads of an SSE stream (``"[DONE]"`` as the string), skipping comments."""
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield data if data == "[DONE]" else json.loads(data)


def keys_file(directory: Path, entries: list[dict[str, Any]]) -> str:
    path = directory / "keys.json"
    path.write_text(json.dumps({"keys": entries}), encoding="utf-8")
    return str(path)


def heldout_slice_right(live: LiveServer, records: list[dict]) -> tuple[int, dict[str, int]]:
    """Problems of the independent held-out set answered right through ``live`` with the defaults, asked as
    ``benchmarks.heldout_eval`` asks them with the official ``openai`` client: (total, per stratum)."""
    import openai

    from benchmarks.heldout_eval import score

    client = openai.OpenAI(base_url=live.v1, api_key=API_KEY, max_retries=0, timeout=600)
    right = score(client, MODEL, records, ["default"], workers=8)["default"]
    by_stratum = {
        s: sum(ok for ok, r in zip(right, records, strict=True) if r["stratum"] == s)
        for s in ("easy", "hard")
    }
    return sum(right), by_stratum
