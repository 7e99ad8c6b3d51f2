"""Helpers shared by the training tests."""

from __future__ import annotations

from training.eval import ProblemResult


def problem_result(
    stratum: str,
    lang: str,
    gold: str,
    greedy: str,
    samples: list[str],
    texts: list[str] | None = None,
    user: str = "计算：3+4",
) -> ProblemResult:
    """A scored eval problem: its gold answer, the greedy answer and the sampled answers (with their texts)."""
    record = {"answer": gold, "stratum": stratum, "lang": lang, "kind": "expression", "user": user}
    return ProblemResult(record, "", greedy, samples, texts or [""] * len(samples))
