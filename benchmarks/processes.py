"""The servers a benchmark starts: a free loopback port, a process whose log goes to a file, readiness.

A server's stderr goes to a temporary file, never to a pipe: a pipe nobody reads fills after a few hundred
log lines and blocks the server's event loop mid-benchmark. The file's tail is in the error when the
process dies before it is ready.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A started program and the file its stderr goes to."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.log = tempfile.TemporaryFile()
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )

    def log_tail(self, chars: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def wait_ready(self, url: str, timeout: float = 120.0) -> None:
        """Until ``url`` answers 200; an error with the log's tail if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.popen.args[0]} exited with {self.popen.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} not ready after {timeout:.0f} s")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (a server drains), then SIGKILL if it is still draining after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


@contextmanager
def running(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Iterator[Process]:
    process = Process(argv, env, cwd)
    try:
        yield process
    finally:
        process.stop()
