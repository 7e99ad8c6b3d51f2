"""The same load against one replica and against two behind nginx (deploy/nginx/proxy.conf), on this machine.

    python -m benchmarks.bench_replicas                       # 16 clients x 20 s per setup
    python -m benchmarks.bench_replicas --clients 8 --duration 10 --max-tokens 32

Setups, each with fresh ``python -m server`` processes (shipped checkpoint, int8) on loopback:

* ``1 replica``           one server, torch threads = every core, clients straight to it;
* ``1 replica + nginx``   the same behind nginx (what the proxy costs);
* ``2 replicas + nginx``  two servers with half the threads each, nginx least_conn in front.

All replicas share one ``redis-server`` (TINYLLM_REDIS_URL), as a fleet would. Each client loops until the
deadline: a non-streaming chat request of ``--max-tokens`` new tokens. Reported as a Markdown table:
requests completed, completion tokens/s, p50/p95 request latency, errors. On one machine the replicas share
its cores, so this measures what the proxy and the split cost, not what a second machine adds
(docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np

from benchmarks.processes import free_port, running

REPO = Path(__file__).resolve().parent.parent
KEY = "sk-bench-replicas"
PROMPT = "Tell me a short story about a fox and a dog."


@contextmanager
def replica(redis_url: str, threads: int) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYLLM_")}
    env.update(
        TINYLLM_API_KEYS=KEY,
        TINYLLM_HOST="127.0.0.1",
        TINYLLM_PORT=str(port),
        TINYLLM_THREADS=str(threads),
        TINYLLM_REDIS_URL=redis_url,
        TINYLLM_LOG_LEVEL="warning",
    )
    with running([sys.executable, "-m", "server"], env, cwd=REPO) as server:
        base = f"http://127.0.0.1:{port}"
        server.wait_ready(base + "/ready")
        yield base


@contextmanager
def nginx(directory: Path, upstreams: list[str]) -> Iterator[str]:
    port = free_port()
    servers = "\n".join(f"server {u.removeprefix('http://')};" for u in upstreams)
    temp = "\n".join(
        f"{k}_temp_path {directory}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
error_log {directory}/error.log warn;
pid {directory}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temp}
  upstream tinyllm {{ least_conn; {servers} keepalive 32; }}
  server {{ listen 127.0.0.1:{port}; location / {{ include {REPO}/deploy/nginx/proxy.conf; }} }}
}}
"""
    )
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    with running([binary, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"], cwd=REPO) as proxy:
        base = f"http://127.0.0.1:{port}"
        proxy.wait_ready(base + "/health")
        yield base


async def load(base: str, clients: int, duration: float, max_tokens: int) -> dict[str, float]:
    latencies: list[float] = []
    tokens = errors = 0
    deadline = time.monotonic() + duration
    body = {"model": "tinyllm", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens}
    limits = httpx.Limits(max_connections=clients)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as http:

        async def client() -> None:
            nonlocal tokens, errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                r = await http.post("/v1/chat/completions", json=body)
                if r.status_code != 200:
                    errors += 1
                    await asyncio.sleep(0.1)
                    continue
                latencies.append(time.perf_counter() - started)
                tokens += r.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "tokens_per_s": tokens / elapsed,
        "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as fleet:
        redis_port = free_port()
        redis = fleet.enter_context(
            running(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"], cwd=REPO)
        )
        time.sleep(0.5)
        if redis.popen.poll() is not None:
            raise SystemExit("redis-server did not start")
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        setups = [("1 replica", 1, False), ("1 replica + nginx", 1, True), ("2 replicas + nginx", 2, True)]
        for index, (name, count, proxied) in enumerate(setups):
            with ExitStack() as stack:
                threads = max(1, cores // count)
                bases = [stack.enter_context(replica(redis_url, threads)) for _ in range(count)]
                directory = Path(tmp) / str(index)
                directory.mkdir()
                base = stack.enter_context(nginx(directory, bases)) if proxied else bases[0]
                asyncio.run(load(base, args.clients, 3.0, args.max_tokens))  # warm-up
                result = asyncio.run(load(base, args.clients, args.duration, args.max_tokens))
                rows.append((name, f"{count} x {threads}", result))
                print(f"{name}: done", file=sys.stderr)
    print(
        f"\n{args.clients} clients, {args.duration:g} s per setup, chat with max_tokens={args.max_tokens}, "
        f"shipped checkpoint (int8), {cores} cores ({platform.processor() or platform.machine()}), "
        f"load average at the end {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| setup | replicas x threads | requests | completion tokens/s | p50 latency | p95 latency | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, shape, r in rows:
        print(
            f"| {name} | {shape} | {r['requests']} | {r['tokens_per_s']:.0f} | {r['p50']:.2f} s | "
            f"{r['p95']:.2f} s | {r['errors']} |"
        )


if __name__ == "__main__":
    main()
