"""The held-out wording probe: which problems it draws, and a run on a real checkpoint."""

from __future__ import annotations

from training.reasoning_templates import uses_held_out_template
from training.wording_probe import draw_problems, format_table, greedy_accuracy, main


def test_draws_test_split_problems_of_each_wording() -> None:
    problems = draw_problems("easy", 15, seed=3)
    assert [len(problems[w]) for w in ("held-out", "train")] == [15, 15]
    assert all(uses_held_out_template(r["user"], r["lang"]) for r in problems["held-out"])
    assert not any(uses_held_out_template(r["user"], r["lang"]) for r in problems["train"])
    assert all(r["stratum"] == "easy" for rs in problems.values() for r in rs)
    assert {r["lang"] for r in problems["held-out"]} == {"zh", "en"}


def test_table_compares_with_the_first_checkpoint() -> None:
    table = format_table(
        "easy",
        ["old", "new"],
        [{"held-out": (5, 10), "train / word": (3, 4)}, {"held-out": (7, 10), "train / word": (2, 4)}],
    )
    lines = table.splitlines()
    assert lines[0] == "| easy | n | old | new | new - old |"
    assert lines[2] == "| **held-out** | 10 | 50.0 | 70.0 | +20.0 |"
    assert lines[3] == "| train / word | 4 | 75.0 | 50.0 | -25.0 |"


def test_probe_runs_on_a_real_checkpoint(tiny_checkpoint, capsys) -> None:
    problems = draw_problems("easy", 3, seed=0)
    accuracy = greedy_accuracy(tiny_checkpoint, problems, max_new_tokens=8)
    assert accuracy["held-out"][1] == accuracy["train"][1] == 3
    assert sum(n for k, (_, n) in accuracy.items() if k.startswith("held-out / ")) == 3
    assert all(0 <= right <= n for right, n in accuracy.values())
    assert (
        main(["--checkpoints", str(tiny_checkpoint), "--n", "2", "--strata", "easy", "--max-new-tokens", "8"])
        == 0
    )
    assert "| **held-out** | 2 |" in capsys.readouterr().out
