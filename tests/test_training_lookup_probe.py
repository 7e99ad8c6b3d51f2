"""The teacher-forced lookup probe: where it cuts the chain, what it expects, and a run on a real checkpoint."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import torch

from model.checkpoint import load_checkpoint
from training import reasoning_data
from training import reasoning_templates as wording
from training.lookup_probe import copy_score, favourable_prefix, main, probe

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
    out = capsys.readouterr().out
    assert "| train |" in out and "copy score" in out


class _Copier(torch.nn.Module):
    """A stand-in for a model with a perfect induction head: it predicts the token that followed the latest
    earlier occurrence of the current token (and token 0 when there is none)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, self.vocab)
        for b, row in enumerate(tokens.tolist()):
            for t, token in enumerate(row):
                earlier = [s for s in range(t) if row[s] == token]
                logits[b, t, row[earlier[-1] + 1] if earlier else 0] = 1.0
        return logits


def test_copy_score_tells_a_model_that_copies_from_one_that_does_not(tiny_checkpoint) -> None:
    first, repeat = copy_score(_Copier(500), 500, length=16, rows=8)
    assert first < 0.1 and repeat > 0.9  # random ids may repeat inside a run: not exactly 0 and 1
    # The tiny untrained checkpoint has no induction head: the repeat is no easier than the first run.
    model = load_checkpoint(str(tiny_checkpoint)).model
    first, repeat = copy_score(model, model.config.vocab_size, length=16, rows=8)
    assert repeat < 0.3 and first < 0.3
