"""``python -m server`` as a process: start-up errors, JSON logs, and a graceful SIGTERM during a stream."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.support import sse_events

REPO = Path(__file__).resolve().parents[2]


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYLLM_")}
    env.update({f"TINYLLM_{k.upper()}": v for k, v in settings.items()})
    return env


def run_server_process(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO,
        env=server_env(**settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_refuses_to_start_without_a_key(server_checkpoint: Path):
    result = run_server_process("--model", str(server_checkpoint))
    assert result.returncode == 2
    assert "TINYLLM_API_KEYS" in result.stderr and "TINYLLM_AUTH_DISABLED" in result.stderr


def test_a_broken_checkpoint_is_named(tmp_path: Path, server_checkpoint: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        (broken / name).write_bytes((server_checkpoint / name).read_bytes())
    (broken / "model.safetensors").write_bytes((server_checkpoint / "model.safetensors").read_bytes()[:1000])
    result = run_server_process("--model", str(broken), api_keys="k")
    assert result.returncode == 1
    assert "model.safetensors" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("engine_process", [False, True], ids=["engine-thread", "engine-process"])
def test_sigterm_lets_the_stream_in_flight_finish(server_checkpoint: Path, engine_process: bool):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--model",
            str(server_checkpoint),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--served-model-name",
            "m",
            "--shutdown-grace-seconds",
            "20",
            "--quantize",
            "none",
            "--engine-process" if engine_process else "--no-engine-process",
        ],
        cwd=REPO,
        env=server_env(api_keys="sk-cli"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        log_lines = []
        deadline = time.monotonic() + 90
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "the server exited during start-up"
            log_lines.append(json.loads(line))  # every log line is JSON
            match = re.search(r"Uvicorn running on http://127.0.0.1:(\d+)", line)
            port = int(match.group(1)) if match else None
        assert port, "the server did not start"
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": "Bearer sk-cli"}, timeout=60) as client:
            with client.stream(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "m",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": True,
                    "max_tokens": 300,
                    "ignore_eos": True,
                },
            ) as r:
                events = sse_events(r.iter_lines())
                first = next(events)
                assert first["choices"][0]["delta"]["role"] == "assistant"
                proc.send_signal(signal.SIGTERM)
                rest = list(events)
        assert rest[-1] == "[DONE]"
        assert rest[-2]["choices"][0]["finish_reason"] == "length"  # finished, not cut off
        # uvicorn re-raises the signal once shut down, so the process ends "killed by SIGTERM" as expected.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        log_lines += [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
        messages = [entry["msg"] for entry in log_lines]
        assert any(m.startswith("draining") for m in messages) and "stopped" in messages
        engine_pid = next(e for e in log_lines if e["msg"] == "ready")["engine_pid"]
        if engine_process:  # drained, then stopped and reaped: no engine process outlives the server
            assert "engine process stopped" in messages
            assert not Path(f"/proc/{engine_pid}").exists()
        else:
            assert engine_pid is None
        assert not [e for e in log_lines if e["level"] == "error" or "exc" in e]
        assert "sk-cli" not in json.dumps(log_lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
