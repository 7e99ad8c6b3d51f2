"""Does the vote earn its cost? The paired margin of a voting method over greedy, with its uncertainty.

Greedy and the vote answer the *same* problems, so their accuracies are not independent: what matters is
how many problems the vote fixes (greedy wrong, vote right: "gains") and how many it breaks (greedy right,
vote wrong: "losses"). The margin is (gains - losses) / n. On 80 problems one problem is 1.25 points, so a
margin of +2.5 can be 2 gains and 0 losses or 5 and 3; the counts and an interval say which.

The interval is the Agresti–Min adjusted Wald interval for a difference of paired proportions (half a
problem added to each cell of the 2x2 table), which keeps close to its nominal coverage even when gains
and losses are a handful, as here, where the plain Wald interval collapses to zero width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959964


@dataclass(frozen=True)
class PairedMargin:
    n: int  # problems both methods answered
    gains: int  # greedy wrong, method right
    losses: int  # greedy right, method wrong
    margin: float  # (gains - losses) / n, in points
    ci95: tuple[float, float]  # in points


def paired_margin(greedy: Sequence[bool], method: Sequence[bool]) -> PairedMargin:
    """The margin of ``method`` over ``greedy``, one flag per problem (True: answered right)."""
    if len(greedy) != len(method):
        raise ValueError("paired_margin needs one flag per problem for both methods")
    n = len(greedy)
    if n == 0:
        raise ValueError("paired_margin needs at least one problem")
    gains = sum(1 for g, m in zip(greedy, method, strict=True) if m and not g)
    losses = sum(1 for g, m in zip(greedy, method, strict=True) if g and not m)
    # Agresti–Min: add 0.5 to each of the four cells, so the discordant ones gain 0.5 each and n gains 2.
    b, c, n_adj = gains + 0.5, losses + 0.5, n + 2
    diff = (b - c) / n_adj
    se = math.sqrt(max(b + c - (b - c) ** 2 / n_adj, 0.0)) / n_adj
    lo, hi = max(diff - Z95 * se, -1.0), min(diff + Z95 * se, 1.0)
    return PairedMargin(
        n, gains, losses, round(100.0 * (gains - losses) / n, 1), (round(100.0 * lo, 1), round(100.0 * hi, 1))
    )


def margin_table(correct: dict[str, dict[str, Sequence[bool]]], methods: Sequence[str]) -> dict[str, Any]:
    """Per group, each voting method's paired margin over greedy; ``correct[group][method]`` holds the
    per-problem flags (in the same problem order for every method, "greedy" included)."""
    return {
        group: {m: asdict(paired_margin(flags["greedy"], flags[m])) for m in methods if m in flags}
        for group, flags in correct.items()
    }


CARD_GROUPS = ("all", "easy", "hard")  # the rows a model card prints; eval.json keeps languages too


def format_margins(report: dict[str, Any], groups: Sequence[str] = CARD_GROUPS) -> str:
    """A Markdown table of the largest votes' margins in an eval report (its ``vote_margin`` section)."""
    lines = [
        "| precision | group | method | n | gained | lost | margin (points) | 95% CI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision, table in report.get("vote_margin", {}).items():
        for group in groups:
            row = {method: (int(method.split("@")[1]), m) for method, m in table.get(group, {}).items()}
            kmax = max((k for k, _ in row.values()), default=0)
            for method, (k, m) in row.items():
                if k != kmax:  # the largest vote only: the smaller ones nest in it
                    continue
                lo, hi = m["ci95"]
                lines.append(
                    f"| {precision} | {group} | {method} | {m['n']} | {m['gains']} | {m['losses']} "
                    f"| {m['margin']:+.1f} | {lo:+.1f} to {hi:+.1f} |"
                )
    return "\n".join(lines) if len(lines) > 2 else ""
