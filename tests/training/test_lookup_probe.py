"""The teacher-forced check probe: where it cuts the chain, how it reads a verdict, and a run on a real checkpoint."""

from __future__ import annotations

import re

import pytest
import torch

from model.checkpoint import load_checkpoint
from training import reasoning_data
from training import reasoning_templates as wording
from training.lookup_probe import check_prefix, copy_score, main, probe, verdict

RECORDS = reasoning_data.generate("train", 60, seed=3, strata=("easy",), kinds=("probability",))
COLOUR_NAMES = {c[0] for c in wording.COLOURS} | {c[1] for c in wording.COLOURS}


@pytest.mark.parametrize("record", RECORDS[:40], ids=lambda r: r["lang"])
def test_prefix_ends_right_before_the_first_verdict(record: dict) -> None:
    prefix, asked, first_is_asked = check_prefix(record)
    assert record["cot"].startswith(prefix) and asked in COLOUR_NAMES
    rest = record["cot"][len(prefix) :]
    # What follows is the verdict the probe expects: the asked colour's name, or "not" / "不是".
    assert verdict(rest, asked) is first_is_asked
    # Nothing in the prefix after the asked colour gives the verdict away.
    checked = prefix[prefix.rindex(asked) + len(asked) :]
    assert not re.search(r"\bnot\b|不是|正是", checked)
    # Both cases occur: the first colour is asked in about half of the problems.
    assert 0.25 < sum(check_prefix(r)[2] for r in RECORDS) / len(RECORDS) < 0.75


def test_verdict_reads_the_first_word() -> None:
    assert verdict(" blue, so", "blue") is True and verdict(" not blue", "blue") is False
    assert verdict("蓝色正是所求", "蓝色") is True and verdict("不是蓝色", "蓝色") is False
    assert verdict(" red", "blue") is None and verdict("4", "蓝色") is None


def test_prefix_rejects_other_chains() -> None:
    record = reasoning_data.generate("train", 1, seed=0, kinds=("expression",))[0]
    with pytest.raises(ValueError, match="check of the asked colour"):
        check_prefix(record)


def test_probe_counts_every_problem_on_a_real_checkpoint(tiny_checkpoint, capsys) -> None:
    report = probe(str(tiny_checkpoint), n=4, splits=("train", "test"))
    for split in ("train", "test"):
        assert sum(r["n"] for r in report[split].values()) == 4
        for r in report[split].values():
            assert r["right"] + r["unclear"] <= r["n"]
    assert main(["--checkpoint", str(tiny_checkpoint), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "| train |" in out and "right verdict" in out and "copy score" in out


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
