"""What the serving layout buys: one decode step of the serving copy vs. a copy with fused projections only.

    python -m benchmarks.bench_serving_layout [--checkpoint DIR] [--rows 32 8 1] [--blocks 24]

``prepare_for_serving`` (``Transformer.to_serving_layout``) fuses q/k/v and gate/up, folds every RMSNorm
weight into the matmul that reads it and pairs the rotary dims; the baseline copy only fuses. Both are built
from the same weights, in fp32 (weights transposed) and int8, and timed in one process in alternating blocks
of 20 decode steps (rows at cached positions 40-99), so the VM's drift cancels; the table gives the medians
and the quartiles of the per-block ratio, and whether both copies pick the same next tokens.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.inference import _transpose_linears, prepare_for_serving
from model.kv_cache import KVCache
from model.quantization import quantize_int8
from model.transformer import Transformer

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"
STEPS_PER_BLOCK = 20


def fused_only(model: Transformer, precision: str) -> Transformer:
    """The baseline: the serving copy as it was before the layout (fused projections, nothing else)."""
    baseline = copy.deepcopy(model).fuse_projections()
    if precision == "int8":
        return quantize_int8(baseline, copy_model=False).eval()
    _transpose_linears(baseline)
    return baseline.eval()


def time_blocks(
    models: dict[str, Transformer], rows: int, blocks: int
) -> tuple[dict[str, list[float]], float]:
    config = next(iter(models.values())).config
    caches = {name: KVCache(config, rows, config.max_position_embeddings) for name in models}
    start = torch.randint(40, 100, (rows,), generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(10, config.vocab_size, (rows, 1), generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        picks = [m.forward_cached(tokens, start, caches[n]).argmax(-1) for n, m in models.items()]
        agreement = float((picks[0] == picks[1]).float().mean())
        for name, model in models.items():  # warm-up
            for _ in range(STEPS_PER_BLOCK):
                model.forward_cached(tokens, start, caches[name])
        order = list(models)
        for block in range(blocks):
            for name in order if block % 2 == 0 else order[::-1]:
                t0 = time.perf_counter()
                for _ in range(STEPS_PER_BLOCK):
                    models[name].forward_cached(tokens, start, caches[name])
                times[name].append((time.perf_counter() - t0) / STEPS_PER_BLOCK * 1e3)
    return times, agreement


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--rows", type=int, nargs="+", default=[32, 8, 1], help="sequences per decode step")
    parser.add_argument(
        "--blocks", type=int, default=24, help=f"alternating blocks of {STEPS_PER_BLOCK} steps"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.checkpoint).model
    print(
        f"# Serving layout vs fused-only copy\n{args.checkpoint}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}\n"
    )
    print(
        "| precision | rows | fused only ms/step | serving layout ms/step | ratio | block ratios p25-p75 | "
        "same next token |\n|---|---:|---:|---:|---:|---|---:|"
    )
    for precision in ("int8", "fp32"):
        models = {"fused": fused_only(model, precision), "layout": prepare_for_serving(model, precision)}
        for rows in args.rows:
            times, agreement = time_blocks(models, rows, args.blocks)
            old, new = statistics.median(times["fused"]), statistics.median(times["layout"])
            ratios = statistics.quantiles(
                [b / a for a, b in zip(times["fused"], times["layout"], strict=True)], n=4
            )
            print(
                f"| {precision} | {rows} | {old:.3f} | {new:.3f} | {new / old:.3f} | {ratios[0]:.3f}-{ratios[2]:.3f} "
                f"| {agreement:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
