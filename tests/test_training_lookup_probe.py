"""The teacher-forced lookup probe: where it cuts the chain, what it expects, and a run on a real checkpoint."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from training import reasoning_data
from training import reasoning_templates as wording
from training.lookup_probe import favourable_prefix, main, probe

RECORDS = reasoning_data.generate("train", 60, seed=3, strata=("easy",), kinds=("probability",))


@pytest.mark.parametrize("record", RECORDS[:40], ids=lambda r: r["lang"])
def test_prefix_ends_at_the_asked_colour_and_the_count_gives_the_answer(record: dict) -> None:
    prefix, count = favourable_prefix(record)
    assert record["cot"].startswith(prefix)
    if record["lang"] == "en":  # cut right after the asked colour, before its count
        assert prefix.rsplit(" ", 1)[1] in {c[1] for c in wording.COLOURS}
    else:
        assert any(prefix.endswith(c[0] + o[0]) for c in wording.COLOURS for o in wording.DRAW_OBJECTS)
    # The count over the chain's total is the gold probability: it is the asked colour's count.
    total = int(re.search(r"(?:Total|总数)[:：] ?\d+\+\d+=(\d+)", record["cot"])[1])
    assert Fraction(count, total) == Fraction(record["answer"])
    assert not re.search(r"\d", prefix[prefix.rindex(":") if record["lang"] == "en" else prefix.rindex("："):])


def test_prefix_rejects_other_chains() -> None:
    record = reasoning_data.generate("train", 1, seed=0, kinds=("expression",))[0]
    with pytest.raises(ValueError, match="favourable"):
        favourable_prefix(record)


def test_probe_counts_every_problem_on_a_real_checkpoint(tiny_checkpoint, capsys) -> None:
    report = probe(str(tiny_checkpoint), n=4, splits=("train", "test"))
    for split in ("train", "test"):
        assert sum(r["n"] for r in report[split].values()) == 4
        for r in report[split].values():
            assert 0 <= r["other_colour"] <= r["n"] - r["right"]
    assert main(["--checkpoint", str(tiny_checkpoint), "--n", "2"]) == 0
    assert "| train |" in capsys.readouterr().out
