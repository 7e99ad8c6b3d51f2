"""Helpers for the hardening suite (tests/hardening/): a server as a real subprocess with its
stderr collected, raw HTTP over a socket (for what httpx refuses to send), the OpenAI error-shape check, and
engine gauges read from /metrics."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def assert_openai_error(
    response: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with exactly OpenAI's error body; ``code`` and ``param`` as given."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["code"] == code, error
    assert error["param"] == param, error
    return error


def is_openai_error_body(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(body["error"], dict)
        and set(body["error"]) == {"message", "type", "param", "code"}
        and isinstance(body["error"]["message"], str)
        and isinstance(body["error"]["type"], str)
    )


def metric(base_url: str, name: str) -> float:
    """One sample's value (``name`` with its labels as /metrics prints them); a series that does not exist
    fails the test, so a renamed metric cannot pass for 0."""
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"/metrics has no series {name}")


def wait_for_metric(base_url: str, name: str, value: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        current = metric(base_url, name)
        if current == value or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ raw HTTP


@dataclass
class RawResponse:
    status: int | None  # None: the server closed (or stayed silent) without an answer
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_http(
    port: int, data: bytes, *, read_timeout: float = 15.0, shutdown_write: bool = False
) -> RawResponse:
    """Send ``data`` as is over a fresh loopback connection and read one response (Content-Length bodies)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        if shutdown_write:
            sock.shutdown(socket.SHUT_WR)
        buffer = b""
        try:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    return RawResponse(None, {}, buffer)
                buffer += chunk
            head, _, body = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
            }
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            return RawResponse(int(lines[0].split()[1]), headers, body)
        except TimeoutError:
            return RawResponse(None, {}, buffer)


def http_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ------------------------------------------------------------------------------------------ subprocess


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYLLM_")}
    env.update({f"TINYLLM_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    base_url: str = ""
    lines: list[str] = field(default_factory=list)  # stderr, line by line, as it arrives

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def log_entries(self) -> list[dict[str, Any]]:
        """Every stderr line parsed as JSON (the server logs only JSON lines)."""
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    def stderr(self) -> str:
        return "\n".join(self.lines)


def _collect(stream: Any, lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


@contextmanager
def server_process(
    checkpoint: Path, *args: str, start_timeout: float = 90, **settings: str
) -> Iterator[ServerProcess]:
    """``python -m server`` on a free loopback port with ``TINYLLM_*`` ``settings``; killed at the end if still
    running. stderr is read by a thread (so a chatty server never blocks on a full pipe)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--model",
            str(checkpoint),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ],
        cwd=REPO,
        env=server_env(**settings),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    server = ServerProcess(proc)
    reader = threading.Thread(target=_collect, args=(proc.stderr, server.lines), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.base_url:
            for line in list(server.lines):
                match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
                if match:
                    server.base_url = match.group(1)
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + server.stderr()[-3000:])
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=5)


@contextmanager
def capture_logs(
    level: int = logging.DEBUG, names: tuple[str, ...] = ("tinyllm", "uvicorn")
) -> Iterator[list[logging.LogRecord]]:
    """Every record of the server's loggers (in-process servers) while the block runs, at ``level``."""
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = _Keep(level)
    loggers = [logging.getLogger(name) for name in names]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(level)
    try:
        yield records
    finally:
        for logger, old in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(old)
