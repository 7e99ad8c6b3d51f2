"""Soak test: N concurrent streaming clients for D seconds against a real server on loopback.

    python -m benchmarks.soak                              # 64 clients x 300 s, a server it starts itself
    python -m benchmarks.soak --clients 16 --duration 20 --model DIR
    python -m benchmarks.soak --base-url http://127.0.0.1:8000 --api-key KEY --server-pid PID

The server is ``python -m server`` on 127.0.0.1 with its default settings (int8, 16 slots, queue 64) serving
``--model``, else the shipped ``checkpoints/tinyllm-default``, else random weights of the default shape
(with the test tokenizer's vocabulary; said so in the report). ``--base-url`` must be a loopback address.

Each client loops until the deadline: a streaming chat request (English or Chinese prompt, 16-128 new
tokens, include_usage), read to ``[DONE]``; a few requests (``--abandon-rate``) are dropped mid-stream on
purpose, to keep the cancel path busy. Bounded: it stops at the deadline, after ``--max-requests``, and
gives up on any request after ``--request-timeout``.

Reported as Markdown tables: requests completed, errors by kind, p50/p95/p99 time to first token and
inter-token latency (the gap between streamed content chunks), aggregate tokens/s, and the server's RSS
(VmRSS of /proc/<pid>/status) at start, after the warm-up, at its peak and at the end. Checks: zero 5xx
(client- and server-counted), zero errors, every slot free at the end, and RSS growth after the warm-up
within ``--max-rss-growth-mb``. The exit status is 0 when every check passes.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "checkpoints" / "tinyllm-default"
PROMPTS = [
    "Tell me a short story about a fox and a dog.",
    "What is 17 * (3 + 4) - 5? Explain step by step.",
    "你好！请用一句话介绍你自己。",
    "今天天气很好，我们一起去学习计算吧。每小时生产多少零件？",
    "Write three facts about trains, apples and the speed of light.",
    "Translate to Chinese: the quick brown fox jumps over the lazy dog.",
]


@dataclass
class SoakConfig:
    clients: int = 64
    duration: float = 300.0
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    server_pid: int | None = None
    server_args: list[str] = field(default_factory=list)
    min_tokens: int = 16
    max_tokens: int = 128
    abandon_rate: float = 0.05
    max_requests: int = 1_000_000
    request_timeout: float = 120.0
    warmup: float | None = None  # seconds; default min(30, duration / 10)
    max_rss_growth_mb: float = 64.0
    seed: int = 0


@dataclass
class RequestResult:
    kind: (
        str  # ok, abandoned, http_4xx, http_5xx, rate_limited, overloaded, stream_error, timeout, connection
    )
    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    total: float = 0.0


@dataclass
class SoakReport:
    config: SoakConfig
    source: str
    wall_s: float = 0.0
    results: list[RequestResult] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)  # start, warm, peak, end
    server_5xx: float = 0.0
    running_at_end: float | None = None
    server_log_errors: int = 0

    @property
    def kinds(self) -> Counter:
        return Counter(r.kind for r in self.results)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.results)

    def checks(self) -> list[tuple[str, bool, str]]:
        kinds = self.kinds
        errors = sum(n for k, n in kinds.items() if k not in ("ok", "abandoned"))
        out = [
            ("requests completed", kinds["ok"] > 0, f"{kinds['ok']}"),
            ("zero 5xx (clients)", kinds["http_5xx"] == 0, f"{kinds['http_5xx']}"),
            ("zero 5xx (server metrics)", self.server_5xx == 0, f"{self.server_5xx:g}"),
            ("zero errors of any kind", errors == 0, f"{errors}"),
            ("no error lines in the server log", self.server_log_errors == 0, f"{self.server_log_errors}"),
        ]
        if self.running_at_end is not None:
            out.append(
                ("all slots free at the end", self.running_at_end == 0, f"running={self.running_at_end:g}")
            )
        if "warm" in self.rss_mb and "end" in self.rss_mb:
            growth = self.rss_mb["end"] - self.rss_mb["warm"]
            out.append(
                (
                    f"RSS growth after warm-up <= {self.config.max_rss_growth_mb:g} MiB",
                    growth <= self.config.max_rss_growth_mb,
                    f"{growth:+.1f} MiB",
                )
            )
        return out

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks())

    def markdown(self) -> str:
        c, kinds = self.config, self.kinds
        lines = [
            "# TinyLLM soak test",
            "",
            "| Setup | |",
            "|---|---|",
            f"| machine | {_cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()} |",
            f"| checkpoint | {self.source} |",
            f"| load | {c.clients} streaming clients for {c.duration:g} s (warm-up {warmup_seconds(c):g} s), "
            f"{c.min_tokens}-{c.max_tokens} new tokens, {c.abandon_rate:.0%} abandoned mid-stream |",
            f"| server flags | {' '.join(c.server_args) or '(defaults)'} |",
            "",
            "| Requests | Count |",
            "|---|---:|",
        ]
        lines += [
            f"| {kind} | {n} |" for kind, n in sorted(kinds.items(), key=lambda kv: (kv[0] != "ok", kv[0]))
        ]
        lines += [
            f"| total | {len(self.results)} |",
            "",
            "| Throughput | Value |",
            "|---|---:|",
            f"| requests completed / s | {kinds['ok'] / self.wall_s:.2f} |",
            f"| generated tokens | {self.tokens} |",
            f"| aggregate tokens / s | {self.tokens / self.wall_s:.1f} |",
            "",
            "| Latency (ms) | p50 | p95 | p99 | max |",
            "|---|---:|---:|---:|---:|",
        ]
        done = [r for r in self.results if r.kind == "ok"]
        for name, values in (
            ("time to first token", [r.ttft for r in done if r.ttft is not None]),
            ("inter-token (chunk gap)", [g for r in done for g in r.gaps]),
            ("whole request", [r.total for r in done]),
        ):
            if values:
                p = np.percentile(np.array(values) * 1000, [50, 95, 99, 100])
                lines.append(f"| {name} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {p[3]:.1f} |")
        if self.rss_mb:
            lines += ["", "| Server RSS (MiB) | Value |", "|---|---:|"]
            lines += [
                f"| {label} | {self.rss_mb[key]:.1f} |"
                for key, label in (
                    ("start", "start (ready, before load)"),
                    ("warm", "after warm-up"),
                    ("peak", "peak"),
                    ("end", "end (load over)"),
                )
                if key in self.rss_mb
            ]
        lines += ["", "| Check | Result | Value |", "|---|---|---:|"]
        lines += [
            f"| {name} | {'pass' if passed else 'FAIL'} | {value} |" for name, passed, value in self.checks()
        ]
        return "\n".join(lines)


def warmup_seconds(config: SoakConfig) -> float:
    return config.warmup if config.warmup is not None else min(30.0, config.duration / 10)


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in (info.read_text().splitlines() if info.exists() else [])
        if line.startswith("model name")
    ]
    return names[0] if names else platform.processor() or platform.machine()


def rss_mb(pid: int) -> float | None:
    """VmRSS of a process, from /proc/<pid>/status (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def check_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(
            f"soak: --base-url must be a loopback address (127.0.0.1, ::1, localhost), not {host!r}"
        )


# ------------------------------------------------------------------------------------------ the server


def _random_checkpoint(directory: Path) -> Path:
    """Random weights of the default shape (same compute per token), with the test tokenizer's vocabulary.

    Tied random embeddings make a deep random model repeat its last input token (a special token: no text
    at all), so the output head is untied, and its rows for byte and special pieces are zero: the sampled
    tokens are text pieces, and the stream carries text the way a trained model's does."""
    import torch

    from model.checkpoint import save_checkpoint
    from model.config import ModelConfig
    from model.tokenizer import Tokenizer
    from model.transformer import Transformer
    from tests.support import make_tokenizer  # a tokenizer is only needed to write the directory

    tokenizer_path = make_tokenizer(directory)
    tokenizer = Tokenizer(tokenizer_path)
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=tokenizer.vocab_size, tie_word_embeddings=False))
    with torch.no_grad():
        model.embed_tokens.weight.normal_(0, 0.1)
        model.lm_head.weight.normal_(0, 0.1)
        for i in range(tokenizer.vocab_size):
            if i in tokenizer.special_ids or tokenizer.id_to_piece(i).startswith("<0x"):
                model.lm_head.weight[i] = 0.0
    return save_checkpoint(directory / "ckpt", model, tokenizer_path)


@contextmanager
def started_server(config: SoakConfig) -> Iterator[tuple[str, int, str, str, list[str]]]:
    """``python -m server`` on a free loopback port: (base URL, pid, key, checkpoint description, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        if config.model:
            model, source = Path(config.model), str(config.model)
        elif (DEFAULT_CHECKPOINT / "config.json").exists():
            model, source = DEFAULT_CHECKPOINT, str(DEFAULT_CHECKPOINT.relative_to(REPO))
        else:
            model = _random_checkpoint(Path(tmp))
            source = (
                "random weights, default shape (6 layers, hidden 256, 8/4 heads, context 512, untied head) "
                "with the 512-piece test tokenizer (checkpoints/tinyllm-default is not in the tree)"
            )
        key = "sk-soak-" + secrets.token_hex(8)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TINYLLM_")}
        env["TINYLLM_API_KEYS"] = key
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                *config.server_args,
            ],
            cwd=REPO,
            env=env,
            text=True,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.extend(line.rstrip("\n") for line in proc.stderr), daemon=True
        )
        reader.start()
        try:
            deadline = time.monotonic() + 300
            base_url = None
            while base_url is None:
                match = next(
                    (
                        m
                        for m in (re.search(r"running on (http://127\.0\.0\.1:\d+)", x) for x in list(lines))
                        if m
                    ),
                    None,
                )
                base_url = match.group(1) if match else None
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("soak: the server did not start:\n" + "\n".join(lines[-20:]))
                time.sleep(0.1)
            yield base_url, proc.pid, key, source, lines
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(timeout=5)


# ------------------------------------------------------------------------------------------ the clients


async def one_request(
    client: httpx.AsyncClient, rng: random.Random, config: SoakConfig, model: str
) -> RequestResult:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": rng.choice(PROMPTS)}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.8,
        "max_tokens": rng.randint(config.min_tokens, config.max_tokens),
    }
    abandon_after = rng.randint(1, 20) if rng.random() < config.abandon_rate else None
    start = time.perf_counter()
    result = RequestResult("stream_error")
    last = None
    chunks = 0
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                result.kind = {429: "rate_limited", 503: "overloaded"}.get(
                    r.status_code, "http_5xx" if r.status_code >= 500 else "http_4xx"
                )
                return result
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    result.kind = "ok"
                    break
                event = json.loads(data)
                if "error" in event:
                    return result  # stream_error
                if event.get("usage"):
                    result.tokens = event["usage"]["completion_tokens"]
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    now = time.perf_counter()
                    if last is None:
                        result.ttft = now - start
                    else:
                        result.gaps.append(now - last)
                    last = now
                    chunks += 1
                    if abandon_after is not None and chunks >= abandon_after:
                        result.kind = "abandoned"
                        return result
    except httpx.TimeoutException:
        result.kind = "timeout"
    except httpx.HTTPError:
        result.kind = "connection"
    finally:
        result.total = time.perf_counter() - start
    return result


async def run_load(
    base_url: str, key: str, config: SoakConfig, pid: int | None, rss: dict[str, float], model: str
) -> tuple[list[RequestResult], float]:
    deadline = time.monotonic() + config.duration
    warm_at = time.monotonic() + warmup_seconds(config)
    results: list[RequestResult] = []
    budget = [config.max_requests]

    async def client_loop(i: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(config.seed * 1000 + i)
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            results.append(await one_request(client, rng, config, model))

    async def sample_rss() -> None:
        while time.monotonic() < deadline and pid is not None:
            value = rss_mb(pid)
            if value is not None:
                rss["peak"] = max(rss.get("peak", 0.0), value)
                if "warm" not in rss and time.monotonic() >= warm_at:
                    rss["warm"] = value
            await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=config.clients, max_keepalive_connections=config.clients)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}"},
        limits=limits,
        timeout=httpx.Timeout(config.request_timeout, connect=30),
    ) as client:
        started = time.monotonic()
        sampler = asyncio.ensure_future(sample_rss())
        await asyncio.gather(*(client_loop(i, client) for i in range(config.clients)))
        wall = time.monotonic() - started
        sampler.cancel()
    return results, wall


def _server_metrics(base_url: str) -> tuple[float, float]:
    """(5xx responses counted by the server, sequences running) from /metrics."""
    errors = running = 0.0
    for line in httpx.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("tinyllm_requests_total{") and re.search(r'status="5\d\d"', line):
            errors += float(line.rsplit(" ", 1)[1])
        elif line.startswith("tinyllm_requests_running "):
            running = float(line.rsplit(" ", 1)[1])
    return errors, running


def _measure(base_url: str, key: str, config: SoakConfig, pid: int | None, report: SoakReport) -> None:
    if pid is not None and (value := rss_mb(pid)) is not None:  # the server is ready, nothing sent yet
        report.rss_mb["start"] = value
    models = httpx.get(base_url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    models.raise_for_status()
    model = models.json()["data"][0]["id"]
    report.results, report.wall_s = asyncio.run(run_load(base_url, key, config, pid, report.rss_mb, model))
    deadline = time.monotonic() + 30  # abandoned streams are cancelled at once; give the engine a moment
    while True:
        report.server_5xx, report.running_at_end = _server_metrics(base_url)
        if report.running_at_end == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if pid is not None and (value := rss_mb(pid)) is not None:
        report.rss_mb["end"] = value


def run_soak(config: SoakConfig) -> SoakReport:
    if config.base_url:
        check_loopback(config.base_url)
        if not config.api_key:
            raise SystemExit("soak: --api-key is needed with --base-url")
        report = SoakReport(config, source=f"server at {config.base_url}")
        _measure(config.base_url.rstrip("/"), config.api_key, config, config.server_pid, report)
        return report
    with started_server(config) as (base_url, pid, key, source, lines):
        report = SoakReport(config, source=source)
        _measure(base_url, key, config, pid, report)
        report.server_log_errors = sum(
            1 for line in lines if '"level": "error"' in line or "Traceback" in line
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    d = SoakConfig()
    parser.add_argument("--clients", type=int, default=d.clients, help="concurrent streaming clients")
    parser.add_argument("--duration", type=float, default=d.duration, help="seconds of load")
    parser.add_argument("--model", help="checkpoint directory for the server started here")
    parser.add_argument(
        "--base-url", help="an already running server (loopback only) instead of starting one"
    )
    parser.add_argument("--api-key", help="key for --base-url")
    parser.add_argument("--server-pid", type=int, help="pid of the --base-url server, for its RSS")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        dest="server_args",
        help="extra flag for the started server (repeatable), e.g. --server-arg=--max-batch=32",
    )
    parser.add_argument("--min-tokens", type=int, default=d.min_tokens)
    parser.add_argument("--max-tokens", type=int, default=d.max_tokens)
    parser.add_argument(
        "--abandon-rate",
        type=float,
        default=d.abandon_rate,
        help="share of requests dropped mid-stream on purpose",
    )
    parser.add_argument("--max-requests", type=int, default=d.max_requests)
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout)
    parser.add_argument(
        "--warmup", type=float, help="seconds before the RSS baseline (default min(30, D/10))"
    )
    parser.add_argument("--max-rss-growth-mb", type=float, default=d.max_rss_growth_mb)
    parser.add_argument("--seed", type=int, default=d.seed)
    args = parser.parse_args(argv)
    report = run_soak(SoakConfig(**vars(args)))
    print(report.markdown())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
