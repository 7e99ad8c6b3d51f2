"""The paired margin of a vote over greedy: counts of fixed and broken problems, and its interval."""

from __future__ import annotations

import pytest

from tests.training.support import problem_result
from training.eval import vote_margins
from training.vote_margin import format_margins, paired_margin


def test_margin_counts_fixed_and_broken_problems_on_the_same_problems():
    # 80 problems: the vote fixes 3 that greedy gets wrong and breaks 1 greedy gets right.
    greedy = [False] * 3 + [True] + [True] * 60 + [False] * 16
    method = [True] * 3 + [False] + [True] * 60 + [False] * 16
    m = paired_margin(greedy, method)
    assert (m.n, m.gains, m.losses, m.margin) == (80, 3, 1, 2.5)
    # Agresti–Min: cells +0.5, n + 2 = 82; (3.5 - 1.5) / 82 = 2.44 points, se = sqrt(5 - 4/82) / 82.
    assert m.ci95 == (-2.9, 7.8)


def test_identical_methods_have_zero_margin_but_an_honest_interval():
    m = paired_margin([True, False] * 5, [True, False] * 5)
    assert (m.gains, m.losses, m.margin) == (0, 0, 0.0)
    lo, hi = m.ci95
    assert lo < 0 < hi and lo == -hi  # ten problems cannot show a vote is worth nothing to within a point


def test_the_interval_narrows_with_more_problems_and_stays_in_range():
    small = paired_margin([False] * 10, [True] * 10)
    large = paired_margin([False] * 5 + [True] * 995, [True] * 5 + [True] * 995)
    assert small.margin == 100.0 and small.ci95[1] == 100.0  # clipped to a proportion
    assert large.ci95[1] - large.ci95[0] < small.ci95[1] - small.ci95[0]
    with pytest.raises(ValueError):
        paired_margin([True], [True, False])
    with pytest.raises(ValueError):
        paired_margin([], [])


def test_eval_reports_each_votes_margin_per_group_and_formats_it():
    results = [
        problem_result("hard", "zh", "74", "75", ["74"] * 9),  # fixed by every vote
        problem_result("hard", "en", "6", "6", ["5"] * 9),  # broken by every vote
        problem_result(
            "hard", "en", "6", "7", ["6", "7", "6", "7", "6", "7", "7", "7", "7"]
        ),  # fixed @5 only
        problem_result("easy", "zh", "7", "7", ["7"] * 9),
    ]
    margins = vote_margins(results, ks=(1, 5, 9))
    assert set(margins["hard"]) == {"sc@5", "sc@9", "checked@5", "checked@9"}  # @1 is not a vote
    assert (margins["hard"]["sc@5"]["gains"], margins["hard"]["sc@5"]["losses"]) == (2, 1)
    assert (margins["hard"]["sc@9"]["gains"], margins["hard"]["sc@9"]["losses"]) == (1, 1)
    assert margins["hard"]["sc@9"]["margin"] == 0.0 and margins["easy"]["sc@9"]["n"] == 1
    table = format_margins({"vote_margin": {"int8": margins}})
    assert "| int8 | hard | sc@9 | 3 | 1 | 1 | +0.0 | -67.9 to +67.9 |" in table
    assert "sc@5" not in table  # the card shows the largest vote; eval.json keeps every k
    assert set(margins) == {"all", "easy", "hard", "zh", "en"}
    assert format_margins({}) == ""


def test_server_benchmark_pairs_each_vote_with_greedy_on_the_same_problem():
    from benchmarks.reasoning_eval import Outcome, report

    problems = [
        {"answer": "74", "stratum": "hard", "lang": "zh"},
        {"answer": "6", "stratum": "hard", "lang": "en"},
        {"answer": "7", "stratum": "easy", "lang": "zh"},
    ]
    greedy = ["75", "6", "7"]  # wrong, right, right
    voted = ["74", "5", "7"]  # fixes the first, breaks the second
    outcomes = [Outcome(p, "greedy", a, 1.0, 10, 0.1) for p, a in zip(problems, greedy, strict=True)] + [
        Outcome(p, "checked@9", a, 0.5, 90, 0.5) for p, a in zip(problems, voted, strict=True)
    ]
    text = report(outcomes, ["greedy", "checked@9"], wall=1.0)
    assert "| hard | checked@9 | +0.0 | 1 | 1 |" in text
    assert "| all | checked@9 | +0.0 | 1 | 1 |" in text and "| easy | checked@9 | +0.0 | 0 | 0 |" in text
