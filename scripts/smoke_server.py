"""Start ``python -m server`` on the shipped checkpoint and exercise it: ready, a chat completion, a streamed
one, a reasoning vote, /metrics; then SIGTERM. Exits non-zero with the reason on the first failure.

Used by scripts/check_floors.sh (the lowest dependency versions pyproject.toml allows) and for smoke tests on
other Python versions: it needs only the standard library and the environment under test.

    python scripts/smoke_server.py            # with the python whose environment is tested
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-smoke-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"smoke test failed: {what}")
    print(f"ok: {what}", flush=True)


def main() -> int:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TINYLLM_")},
        "TINYLLM_API_KEYS": KEY,
        "TINYLLM_PORT": str(port),
        "TINYLLM_MAX_BATCH": "4",
    }
    log = tempfile.TemporaryFile()  # the server's JSON log, shown if it fails to start
    server = subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO, env=env, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise SystemExit(f"the server exited ({server.returncode}):\n{log.read().decode()[-3000:]}")
            try:
                if call(base, "/ready", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not get ready in 120 s")
            time.sleep(0.5)
        print(f"python {sys.version.split()[0]}: server ready on {base}", flush=True)

        chat = {"model": "tinyllm", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 40}
        status, text = call(base, "/v1/chat/completions", chat | {"temperature": 0})
        check(status == 200 and json.loads(text)["choices"][0]["message"]["content"], "chat completion")

        status, text = call(base, "/v1/chat/completions", chat | {"stream": True})
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        check(status == 200 and events[-1] == "[DONE]" and len(events) > 2, "streamed chat completion")

        problem = {"role": "user", "content": "What is 12*7?"}
        vote = {
            "model": "tinyllm",
            "messages": [problem],
            "max_tokens": 200,
            "self_consistency": {"samples": 2},
        }
        status, text = call(base, "/v1/chat/completions", vote)
        check(status == 200 and "self_consistency" in json.loads(text), "reasoning vote")

        status, text = call(base, "/metrics")
        check(status == 200 and "process_cpu_seconds_total" in text, "/metrics with the process series")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean end too.
    check(server.returncode in (0, -signal.SIGTERM), f"exit on SIGTERM (exit code {server.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
