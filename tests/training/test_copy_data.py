"""Copy drills (training.copy_data): their layout, and that the copy stage trained on them teaches a model
from scratch to copy from its context (the copy score of training.lookup_probe rises from chance)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.transformer import Transformer
from training.batches import IGNORE, open_batches
from training.copy_data import drill, first_ordinary_id, write_copy_data
from training.lookup_probe import copy_score
from training.trainer import load_model_weights

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "checkpoints" / "tinyllm-default" / "tokenizer.model"


def test_a_drill_is_a_run_then_its_repeat_from_a_point_in_the_first_half_with_the_loss_on_the_repeat():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(300):
        ids, mask = drill(rng, 6000, 10, 40)
        # The run's length is where the mask's zeros end, less the unknowable first repeated token.
        length = len(ids) - int(mask.sum()) - 1
        assert 10 <= length <= 40
        start = 2 * length - len(ids)
        starts.add(start)
        assert 0 <= start <= length // 2
        assert np.array_equal(ids[length:], ids[start:length])
        assert not mask[: length + 1].any() and mask[length + 1 :].all()
        assert ids.min() >= first_ordinary_id(6000) and ids.max() < 6000
    assert len(starts) > 10  # the repeat starts anywhere in the first half, not at a fixed offset


def test_token_pool_limits_the_ids_drawn():
    rng = np.random.default_rng(1)
    low = first_ordinary_id(6000)
    drawn = np.concatenate([drill(rng, 6000, 10, 20, token_pool=50)[0] for _ in range(100)])
    assert drawn.min() >= low and drawn.max() < low + 50 and len(set(drawn.tolist())) == 50


def test_the_written_drills_are_batches_whose_targets_can_only_be_copied(tmp_path):
    meta = write_copy_data(tmp_path, 6000, n_train=64, n_val=16, seed=3)
    assert meta["kind"] == "sft" and meta["splits"]["train"]["documents"] == 64
    assert json.loads((tmp_path / "meta.json").read_text())["sources"][0]["bytes"] > 0
    batches = open_batches(tmp_path / "train", seq_len=96, batch_size=16)
    inputs, targets = batches.batch(0)
    for row_in, row_t in zip(inputs.tolist(), targets.tolist(), strict=True):
        positions = [t for t, y in enumerate(row_t) if y != IGNORE]
        assert positions
        for t in positions:
            # The target follows an earlier occurrence of the current input token (what an induction head copies).
            # (A run may hold a token twice, so any earlier occurrence will do.)
            assert any(row_in[s] == row_in[t] and row_in[s + 1] == row_t[t] for s in range(t))
    again = write_copy_data(tmp_path / "again", 6000, n_train=64, n_val=16, seed=3)
    assert again["splits"] == meta["splits"]
    assert (tmp_path / "train" / "tokens.bin").read_bytes() == (
        tmp_path / "again" / "train" / "tokens.bin"
    ).read_bytes()


def train_copy(tmp_path: Path, steps: int, examples: int) -> Path:
    """`copy-data` then the `copy` stage through the CLI, on a small model; the run directory."""
    vocab = 64
    data, run = tmp_path / "copy", tmp_path / "run"
    model = json.dumps(
        dict(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=172,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=64,
        )
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "copy-data",
            "--out",
            str(data),
            "--vocab-size",
            str(vocab),
            "--n",
            str(examples),
            "--n-val",
            "64",
            "--min-run",
            "6",
            "--max-run",
            "16",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "copy",
            "--data",
            str(data),
            "--out",
            str(run),
            "--model",
            model,
            "--tokenizer",
            str(TOKENIZER),
            "--seq-len",
            "40",
            "--max-steps",
            str(steps),
            "--eval-interval",
            str(steps),
            "--checkpoint-interval",
            "0",
            "--threads",
            "1",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


@pytest.mark.slow
def test_the_copy_stage_teaches_a_model_from_scratch_to_copy(tmp_path):
    """Random tokens written twice are copied after 1,200 steps (before training: chance, ~1 in 60). The loss
    sits well above zero for ~650 steps, then falls within a hundred: the induction head forms at once.
    Minutes of CPU: the default suite runs the same chain for 20 steps (below)."""
    vocab = 64
    trained, _ = load_model_weights(train_copy(tmp_path, steps=1200, examples=77000))
    untrained = Transformer(trained.config).eval()
    assert copy_score(untrained, vocab, length=16, rows=64)[1] < 0.1
    first, repeat = copy_score(trained.eval(), vocab, length=16, rows=64)
    assert repeat > 0.6 and first < 0.1, (first, repeat)  # it copies; it does not guess the first run


def test_the_copy_stage_runs_through_the_cli(tmp_path):
    """The CI-sized equivalent of the test above: the same commands, 20 steps; a model that loads and
    scores comes out (learning to copy takes ~700 steps, so the score is not asserted here)."""
    run = train_copy(tmp_path, steps=20, examples=2000)
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [entry["step"] for entry in log if "loss" in entry]
    assert steps == list(range(1, 21))
    assert all(np.isfinite(entry["loss"]) for entry in log if "loss" in entry)
    trained, _ = load_model_weights(run)
    assert trained.config.vocab_size == 64
    first, _ = copy_score(trained.eval(), 64, length=16, rows=16)
    assert first < 0.2  # the first run is random: nothing predicts it


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (dict(min_run=1), "min_run"),
        (dict(min_run=20, max_run=10), "min_run"),
        (dict(token_pool=1), "token_pool"),
        (dict(vocab_size=2), "vocab_size"),
    ],
)
def test_impossible_drills_are_refused_naming_the_option(tmp_path, bad, named):
    args = dict(vocab_size=6000, n_train=4) | bad
    with pytest.raises(ValueError, match=named):
        write_copy_data(tmp_path, **args)


def test_the_copy_stage_asks_for_the_tokenizer_the_drills_do_not_record(tmp_path):
    write_copy_data(tmp_path / "copy", 64, n_train=16, n_val=4)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "copy",
            "--data",
            str(tmp_path / "copy"),
            "--out",
            str(tmp_path / "run"),
            "--model",
            json.dumps(
                dict(
                    vocab_size=64,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                    num_key_value_heads=2,
                    max_position_embeddings=64,
                )
            ),
            "--batch-size",
            "4",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "records no tokenizer: pass --tokenizer" in proc.stderr
