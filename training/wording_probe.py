"""Greedy accuracy on held-out wording against train wording, for checkpoints side by side.

The eval's 160 problems hold only a dozen easy ones in held-out wording (each template list's last
template, which train never uses), so a figure there moves 8 points per problem. This probe draws many
more test-split problems of each wording (the same generator and split as the eval, another seed) and
greedy-decodes them, so two checkpoints can be compared where generalisation is decided:

    python -m training.wording_probe --checkpoints OLD_CKPT checkpoints/tinyllm-default --n 120

It prints one Markdown table per stratum: rows per wording and per wording x kind, one column of greedy
accuracy per checkpoint, and the difference of each to the first checkpoint (the baseline) in points.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.checkpoint import load_checkpoint
from model.inference import Precision, prepare_for_serving
from training import reasoning_data
from training.eval import EvalConfig, run_problems, wording_of

WORDINGS = ("held-out", "train")


def draw_problems(stratum: str, n: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """``n`` test-split problems of ``stratum`` per wording (held-out templates are about a fifth of the
    test split, so about 6n are generated to find n of them)."""
    records = reasoning_data.generate("test", 6 * n + 40, seed, strata=(stratum,))
    by_wording: dict[str, list[dict[str, Any]]] = {w: [] for w in WORDINGS}
    for r in records:
        by_wording[wording_of(r)].append(r)
    return {w: rs[:n] for w, rs in by_wording.items()}


def greedy_accuracy(
    checkpoint: str | Path,
    problems: dict[str, list[dict[str, Any]]],
    precision: Precision = "fp32",
    max_new_tokens: int = EvalConfig.max_new_tokens,
) -> dict[str, tuple[int, int]]:
    """(right, n) of greedy chains per row key: "<wording>" and "<wording> / <kind>"."""
    loaded = load_checkpoint(checkpoint)
    model = prepare_for_serving(loaded.model, precision)
    wordings = [w for w, rs in problems.items() for _ in rs]
    records = [r for rs in problems.values() for r in rs]
    results = run_problems(
        model, loaded.tokenizer, records, EvalConfig(ks=(1,), max_new_tokens=max_new_tokens), progress=False
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for wording, result in zip(wordings, results, strict=True):
        for key in (wording, f"{wording} / {result.record['kind']}"):
            counts[key][0] += result.correct("greedy")
            counts[key][1] += 1
    return {k: (right, n) for k, (right, n) in counts.items()}


def format_table(stratum: str, names: Sequence[str], accuracies: Sequence[dict[str, tuple[int, int]]]) -> str:
    """Rows in a fixed order (wording, then its kinds); a column per checkpoint, then the differences."""
    keys = sorted(
        {k for acc in accuracies for k in acc}, key=lambda k: (WORDINGS.index(k.split(" / ")[0]), k)
    )
    columns = [stratum, "n", *names, *(f"{n} - {names[0]}" for n in names[1:])]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for key in keys:
        n = max(acc.get(key, (0, 0))[1] for acc in accuracies)
        pct = [
            100 * acc[key][0] / acc[key][1] if acc.get(key, (0, 0))[1] else float("nan") for acc in accuracies
        ]
        cells = [f"{p:.1f}" for p in pct] + [f"{p - pct[0]:+.1f}" for p in pct[1:]]
        name = f"**{key}**" if " / " not in key else key
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        required=True,
        help="checkpoint directories; the first is the baseline the others are compared with",
    )
    parser.add_argument("--n", type=int, default=120, help="problems per stratum and wording")
    parser.add_argument(
        "--strata", nargs="+", default=list(reasoning_data.STRATA), choices=reasoning_data.STRATA
    )
    parser.add_argument("--seed", type=int, default=7, help="test-split seed (the eval uses 0)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument(
        "--max-new-tokens", type=int, default=EvalConfig.max_new_tokens, help="per chain, as the eval"
    )
    args = parser.parse_args(argv)
    names = [Path(c).name or str(c) for c in args.checkpoints]
    if len(set(names)) < len(names):
        names = [str(c) for c in args.checkpoints]
    for stratum in args.strata:
        problems = draw_problems(stratum, args.n, args.seed)
        accuracies = [
            greedy_accuracy(c, problems, args.precision, args.max_new_tokens) for c in args.checkpoints
        ]
        print(format_table(stratum, names, accuracies) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
