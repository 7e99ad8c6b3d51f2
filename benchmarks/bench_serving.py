"""Serving benchmark: our server against llama.cpp's ``llama-server`` on the same weights, over HTTP.

    python -m benchmarks.bench_serving --llama-server /work/llama.cpp/build/bin/llama-server \\
        --gguf tinyllm-default-f16.gguf [--model checkpoints/tinyllm-default] [--concurrency 1 8 32]

Both servers run on 127.0.0.1 with the same thread count (``--threads``, default 2), started by this script
and stopped at the end. For each concurrency c and each mode (greedy; sampled: temperature 0.8, top_p
0.95), c clients each send ``--requests`` streaming ``/v1/completions`` requests one after another, every
one decoding exactly ``--new-tokens`` tokens (``ignore_eos``) from the same text prompt. The two servers
alternate per (c, mode) so a shared machine's drift hits both. Reported: decode tok/s (completion tokens ÷
wall time), the ratio to llama-server, TTFT p50 and ITL p50 (gap between streamed chunks), and at c=1 the
memory-bandwidth ceiling: at one stream each token reads every weight once, so bandwidth ÷ weight bytes
bounds tok/s. The bandwidth is measured here (a large tensor copy, same threads).

Getting ``llama-server`` (not shipped, not built by this repository): take the llama.cpp sources (its
GitHub repository, or the copy vendored in PyPI's ``llama-cpp-python`` sdist under ``vendor/llama.cpp``)
and build it outside this repository:

    cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
    cmake --build build --target llama-server -j2

The GGUF of a TinyLLM checkpoint: ``python -m tinyllm export-gguf`` where available, or llama.cpp's
``convert_hf_to_gguf.py CHECKPOINT --outtype f16`` (a TinyLLM checkpoint is a Hugging Face Llama directory).
Without ``--llama-server`` (or ``$LLAMA_SERVER``) only our rows are measured and the table says so.
``--engine thread process`` runs two of our servers, the engine in a thread and in its own process
(``TINYLLM_ENGINE_PROCESS``), alternated with llama-server like the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

from benchmarks.processes import Process, free_port

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"
MODES = {"greedy": {"temperature": 0.0}, "sampled": {"temperature": 0.8, "top_p": 0.95}}


@dataclass
class Run:
    tokens: int = 0
    wall_s: float = 0.0
    ttfts: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    errors: int = 0


def memory_bandwidth_gbs(threads: int, megabytes: int = 256, repeats: int = 5) -> float:
    """Copy bandwidth (bytes read + written per second), best of ``repeats``, with ``threads`` torch threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        src = torch.ones(megabytes * 2**20 // 4)
        dst = torch.empty_like(src)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - start)
        return 2 * src.numel() * 4 / best / 1e9
    finally:
        torch.set_num_threads(previous)


def weight_bytes(checkpoint: Path, precision: str) -> int:
    """Bytes one decode step reads from the weights: the linear layers at ``precision`` (int8 = 1 byte)."""
    from model.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint).model
    per = {"int8": 1, "f16": 2, "fp32": 4}[precision]
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return linear * per


class Server(Process):
    def __init__(self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        super().__init__(argv, env)
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"


async def one_request(client: httpx.AsyncClient, body: dict, run: Run) -> None:
    """One streamed request into ``run``; a refused or broken one (a server that crashed) is an error."""
    try:
        await _stream(client, body, run)
    except httpx.HTTPError:
        run.errors += 1


async def _stream(client: httpx.AsyncClient, body: dict, run: Run) -> None:
    start = time.perf_counter()
    last = None
    count = usage = 0
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            run.errors += 1
            return
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"].get("completion_tokens") or usage
            choices = chunk.get("choices") or []
            if not (choices and choices[0].get("text")):
                continue
            now = time.perf_counter()
            if last is None:
                run.ttfts.append(now - start)
            else:
                run.gaps.append(now - last)
            last = now
            count += 1
    run.tokens += usage or count


def long_prompt(words: int) -> str:
    """``PROMPT`` after ``words`` words of a long text every Debian ships (GPL-3), as a long system prompt or
    document that every request repeats: what a prefix cache is for."""
    if not words:
        return PROMPT
    text = Path("/usr/share/common-licenses/GPL-3").read_text().split()
    return " ".join(text[:words]) + "\n\n" + PROMPT


async def load(
    base: str, model: str, concurrency: int, requests: int, new_tokens: int, mode: str, prompt: str
) -> Run:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": new_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "seed": 0,
        **MODES[mode],
    }
    run = Run()
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        await one_request(client, {**body, "max_tokens": 4}, Run())  # warm-up

        async def client_loop() -> None:
            for _ in range(requests):
                await one_request(client, body, run)

        start = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        run.wall_s = time.perf_counter() - start
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_CHECKPOINT, help="our checkpoint directory")
    parser.add_argument("--gguf", type=Path, help="the same weights as GGUF, for llama-server")
    parser.add_argument(
        "--llama-server", default=os.environ.get("LLAMA_SERVER"), help="llama-server binary ($LLAMA_SERVER)"
    )
    parser.add_argument("--quantize", default="int8", choices=["int8", "none"], help="our precision")
    parser.add_argument("--gguf-precision", default="f16", choices=["f16", "int8"], help="for the ceiling")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--requests", type=int, default=2, help="requests per client, one after another")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--prompt-words",
        type=int,
        default=0,
        help="put this many words of a long text before the prompt (every request repeats them)",
    )
    parser.add_argument(
        "--prefix-cache-entries", type=int, default=None, help="our server's prefix cache (default: its own)"
    )
    parser.add_argument(
        "--engine",
        nargs="+",
        default=["thread"],
        choices=["thread", "process"],
        help="where our engine runs (TINYLLM_ENGINE_PROCESS); both: one server of each, alternated",
    )
    args = parser.parse_args(argv)
    prompt = long_prompt(args.prompt_words)
    cache = (
        []
        if args.prefix_cache_entries is None
        else ["--prefix-cache-entries", str(args.prefix_cache_entries)]
    )

    servers: list[Server] = []
    for engine in args.engine:
        port = free_port()
        name = "tinyllm" if engine == "thread" else "tinyllm (engine process)"
        servers.append(
            Server(
                name,
                [sys.executable, "-m", "server", "--model", str(args.model), "--host", "127.0.0.1"]
                + ["--port", str(port), "--auth-disabled", "--threads", str(args.threads)]
                + ["--served-model-name", "tinyllm", "--max-batch", str(max(args.concurrency))]
                + ["--quantize", args.quantize, "--log-level", "warning"]
                + ["--engine-process" if engine == "process" else "--no-engine-process"]
                + cache,
                port,
            )
        )
    peer = None
    if args.llama_server and args.gguf:
        port = free_port()
        context = max(args.concurrency) * (args.new_tokens + 64 + 3 * args.prompt_words)
        peer = Server(
            "llama-server",
            [args.llama_server, "--model", str(args.gguf), "--host", "127.0.0.1", "--port", str(port)]
            + ["--threads", str(args.threads), "--threads-batch", str(args.threads)]
            + ["--parallel", str(max(args.concurrency)), "--ctx-size", str(context), "--no-webui"],
            port,
        )
        servers.append(peer)
    try:
        for server in servers:
            server.wait_ready(server.base + "/health", timeout=180)
        bandwidth = memory_bandwidth_gbs(args.threads)
        results: dict[tuple[str, int, str], Run] = {}
        for c in args.concurrency:
            for mode in args.modes:
                for server in servers:  # alternated per (c, mode)
                    if server.popen.poll() is not None:  # it crashed: its rows say so, the rest go on
                        continue
                    run = asyncio.run(
                        load(server.base, "tinyllm", c, args.requests, args.new_tokens, mode, prompt)
                    )
                    results[(server.name, c, mode)] = run
                    print(
                        f"  {server.name:12s} c={c:<3d} {mode:8s} {run.tokens / run.wall_s:8.1f} tok/s "
                        f"errors={run.errors} load={os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
    finally:
        for server in servers:
            if server.popen.poll() is not None:
                print(
                    f"\n{server.name} exited with {server.popen.returncode}; its log ends:\n{server.log_tail(1500)}"
                )
            server.stop()

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    ours_bytes = weight_bytes(args.model, "int8" if args.quantize == "int8" else "fp32")
    peer_bytes = weight_bytes(args.model, args.gguf_precision)
    print(
        f"\n# Serving benchmark\nmachine: {cpu}, {os.cpu_count()} CPUs, {args.threads} threads per server, "
        f"load average {os.getloadavg()[0]:.1f} at the end\nmodel: {args.model} (ours {args.quantize}, "
        f"llama-server {args.gguf or 'not run'})\nmemory bandwidth (copy, {args.threads} threads): "
        f"{bandwidth:.1f} GB/s; c=1 ceiling: ours {bandwidth * 1e9 / ours_bytes:.0f} tok/s, "
        f"llama-server {bandwidth * 1e9 / peer_bytes:.0f} tok/s\n"
        f"{args.requests} requests per client, {args.new_tokens} new tokens each, prompt: "
        f"{args.prompt_words} words of GPL-3, then {PROMPT!r}; our prefix cache: "
        f"{'default' if args.prefix_cache_entries is None else args.prefix_cache_entries} entries\n"
    )
    if peer is None:
        print("llama-server: not run (give --llama-server and --gguf); ratios left empty\n")
    print("| server | c | mode | tok/s | x llama-server | TTFT p50 ms | ITL p50 ms | % of c=1 ceiling |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for (name, c, mode), run in results.items():
        rate = run.tokens / run.wall_s
        other = results.get(("llama-server", c, mode))
        ratio = f"{rate / (other.tokens / other.wall_s):.2f}" if other and other.tokens else ""
        ceiling = bandwidth * 1e9 / (peer_bytes if name == "llama-server" else ours_bytes)
        share = f"{100 * rate / ceiling:.0f}" if c == 1 else ""
        ttft = statistics.median(run.ttfts) * 1e3 if run.ttfts else float("nan")
        itl = statistics.median(run.gaps) * 1e3 if run.gaps else float("nan")
        errors = f" ({run.errors} errors)" if run.errors else ""
        print(f"| {name}{errors} | {c} | {mode} | {rate:.1f} | {ratio} | {ttft:.1f} | {itl:.2f} | {share} |")


if __name__ == "__main__":
    main()
