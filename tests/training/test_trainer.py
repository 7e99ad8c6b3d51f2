"""The trainer: exact resume, the optimizer's groups and schedule, and data parallelism under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.config import ModelConfig
from model.transformer import Transformer
from tests.support import corpus_lines
from training.data import prepare
from training.metrics import read_metrics
from training.optim import WarmupCosine, param_groups
from training.trainer import TrainConfig, Trainer, train

TINY_MODEL = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory, tiny_tokenizer_path) -> Path:
    root = tmp_path_factory.mktemp("pretrain-data")
    (root / "corpus.txt").write_text("\n\n".join(corpus_lines(400, seed=1)), encoding="utf-8")
    prepare(
        "pretrain", [root / "corpus.txt"], tiny_tokenizer_path, root / "data", val_fraction=0.05, workers=1
    )
    return root / "data"


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory, tiny_tokenizer_path) -> Path:
    root = tmp_path_factory.mktemp("sft-data")
    lines = corpus_lines(300, seed=2)
    with open(root / "sft.jsonl", "w", encoding="utf-8") as f:
        for i in range(0, len(lines) - 1, 2):
            f.write(json.dumps({"user": lines[i], "assistant": lines[i + 1]}, ensure_ascii=False) + "\n")
    prepare("sft", [root / "sft.jsonl"], tiny_tokenizer_path, root / "data", val_fraction=0.05, workers=1)
    return root / "data"


def _config(data: Path, out: Path, vocab: int, **overrides) -> TrainConfig:
    values = dict(
        stage="pretrain",
        data=str(data),
        out=str(out),
        model=dict(TINY_MODEL, vocab_size=vocab),
        seq_len=32,
        batch_size=4,
        grad_accum=2,
        max_steps=8,
        lr=3e-3,
        warmup_steps=2,
        eval_interval=4,
        eval_batches=2,
        checkpoint_interval=3,
        log_interval=1,
        precision="fp32",
        threads=1,
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _vocab(data: Path) -> int:
    return json.loads((data / "meta.json").read_text())["vocab_size"]


@pytest.mark.parametrize("kind", ["pretrain", "sft"])
def test_stopped_and_resumed_run_ends_with_identical_weights(tmp_path, pretrain_data, sft_data, kind):
    data = pretrain_data if kind == "pretrain" else sft_data
    straight = Trainer(_config(data, tmp_path / "straight", _vocab(data)))
    straight.fit()
    interrupted = Trainer(_config(data, tmp_path / "resumed", _vocab(data)))
    interrupted.fit(stop_after=5)  # "killed" after step 5; the last periodic checkpoint was at step 3 ...
    assert interrupted.step == 5
    del interrupted
    resumed = Trainer(_config(data, tmp_path / "resumed", _vocab(data)), resume=True)
    assert resumed.step == 5  # ... but stopping writes a checkpoint too
    resumed.fit()
    assert resumed.step == 8
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a, opt_b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    # The resumed run's metrics log reads like the uninterrupted one (same losses at the same steps).
    losses = [
        [(r["step"], r["loss"]) for r in read_metrics(d / "metrics.jsonl") if "loss" in r]
        for d in (tmp_path / "straight", tmp_path / "resumed")
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 8
    summary = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert summary["finished"] and summary["final_val_loss"] is not None
    assert (tmp_path / "resumed" / "loss.png").stat().st_size > 1000


def test_training_lowers_validation_loss(tmp_path, pretrain_data):
    summary = train(
        _config(pretrain_data, tmp_path / "run", _vocab(pretrain_data), max_steps=30, eval_interval=5)
    )
    vals = [r["val_loss"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "val_loss" in r]
    assert vals[-1] < vals[0] - 0.5
    assert summary["final_val_ppl"] == pytest.approx(2.718281828 ** summary["final_val_loss"], rel=1e-6)


def test_resume_refuses_a_changed_recipe(tmp_path, pretrain_data):
    Trainer(_config(pretrain_data, tmp_path / "run", _vocab(pretrain_data))).fit(stop_after=2)
    with pytest.raises(ValueError, match="lr changed"):
        Trainer(_config(pretrain_data, tmp_path / "run", _vocab(pretrain_data), lr=1e-2), resume=True)


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    s = WarmupCosine(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert [round(s(i), 3) for i in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert s(60) == pytest.approx(0.55)  # half-way through the decay: the mean of 1.0 and 0.1
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    assert all(s(i) >= s(i + 1) for i in range(10, 120))


def test_no_weight_decay_on_norms_and_tied_embeddings():
    model = Transformer(ModelConfig(vocab_size=64, **TINY_MODEL))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].rsplit(".", 1)[0].split(".")[-1] for p in decay["params"]} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert {"embed_tokens.weight", "norm.weight"} <= {names[id(p)] for p in no_decay["params"]}
    assert no_decay["weight_decay"] == 0.0
    n_params = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_params == model.num_parameters()  # the tied lm_head is counted once, in no group twice


@pytest.mark.timeout(60)
def test_torchrun_two_processes_keep_identical_replicas(tmp_path, pretrain_data):
    """Two gloo processes with batch b each == one process accumulating two micro-batches of b."""
    vocab = _vocab(pretrain_data)
    common = [
        "--data",
        str(pretrain_data),
        "--model",
        json.dumps(dict(TINY_MODEL, vocab_size=vocab)),
        "--seq-len",
        "32",
        "--batch-size",
        "4",
        "--max-steps",
        "4",
        "--lr",
        "3e-3",
        "--warmup-steps",
        "1",
        "--eval-interval",
        "2",
        "--eval-batches",
        "2",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training",
        "pretrain",
        "--out",
        str(tmp_path / "ddp"),
        "--grad-accum",
        "1",
        *common,
    ]
    # Own process group: if anything hangs, the workers die with torchrun instead of outliving the test.
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert ddp["world_size"] == 2 and len(ddp["replica_digests"]) == 2
    assert ddp["replica_digests"][0] == ddp["replica_digests"][1]  # both ranks end bit-identical

    single = Trainer(
        _config(
            pretrain_data,
            tmp_path / "single",
            vocab,
            grad_accum=2,
            max_steps=4,
            warmup_steps=1,
            eval_interval=2,
            checkpoint_interval=0,
        )
    )
    single.fit()
    ddp_state = torch.load(tmp_path / "ddp" / "checkpoint" / "state.pt", weights_only=False)["model"]
    for name, tensor in single.model.state_dict().items():
        torch.testing.assert_close(
            ddp_state[name], tensor, rtol=1e-4, atol=1e-5
        )  # only summation order differs
    assert ddp["tokens_seen"] == json.loads((tmp_path / "single" / "summary.json").read_text())["tokens_seen"]
