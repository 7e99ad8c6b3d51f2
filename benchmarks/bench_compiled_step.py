"""Experiment: one static-shape decode step compiled with Inductor against the same step eager.

    python -m benchmarks.bench_compiled_step [--precision fp32|int8] [--batch 1] [--window 128]

The step attends over a fixed ``--window`` of cache positions with a mask (static shapes, so one compiled
graph serves every position inside the window), on the serving copy of the shipped checkpoint. Printed:
compile time, the largest logit difference and whether the greedy token agrees, and CPU time per step
(thread time, best of 5 x 200 steps: robust to a shared machine). Not wired into the engine: see
docs/performance.md for what it would take.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.inference import prepare_for_serving
from model.kv_cache import KVCache

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    model = prepare_for_serving(load_checkpoint(args.checkpoint).model, args.precision)
    window, b = args.window, args.batch
    cache = KVCache(model.config, b, window)

    def step(ids: torch.Tensor, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = model.embed_tokens(ids)
        visible = torch.arange(window).view(1, 1, 1, window) <= positions.view(b, 1, 1, 1)
        bias = torch.where(visible, 0.0, float("-inf"))
        rotary = model.rope(positions)
        write_at = (torch.arange(b).unsqueeze(1), positions)
        for i, layer in enumerate(model.layers):
            x = layer.forward_cached(x, rotary, write_at, k[i], v[i], bias)
        return model.lm_head(model.norm(x[:, -1]))

    ids = torch.full((b, 1), 5)
    positions = torch.full((b, 1), window // 2)

    def cpu_ms(fn) -> float:
        for _ in range(10):
            fn(ids, positions, cache.k, cache.v)
        best = float("inf")
        for _ in range(5):
            start = time.thread_time()
            for _ in range(200):
                fn(ids, positions, cache.k, cache.v)
            best = min(best, (time.thread_time() - start) / 200 * 1e3)
        return best

    with torch.inference_mode():
        reference = step(ids, positions, cache.k, cache.v)
        eager = cpu_ms(step)
        print(f"{args.precision} batch {b} window {window}: eager {eager:.3f} ms/step", flush=True)
        start = time.perf_counter()
        try:
            compiled = torch.compile(step, dynamic=False)
            out = compiled(ids, positions, cache.k, cache.v)
        except Exception as error:  # report, as the engine would fall back
            print(f"compile failed: {type(error).__name__}: {str(error)[:300]}")
            return
        same = bool((out.argmax(-1) == reference.argmax(-1)).all())
        print(
            f"compiled in {time.perf_counter() - start:.0f} s, max |logit diff| "
            f"{float((out - reference).abs().max()):.2e}, same greedy token: {same}"
        )
        fast = cpu_ms(compiled)
        print(f"compiled {fast:.3f} ms/step, {eager / fast:.2f}x eager")


if __name__ == "__main__":
    main()
