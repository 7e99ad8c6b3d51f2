"""The default recipe at CI scale, end to end through the CLI: corpora -> tokenizer -> data -> pretrain ->
SFT -> reasoning SFT -> eval -> export; then the server's model code loads the result and generates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.sampling import SamplingParams

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("default-ci")
    out, work = root / "tinyllm-ci", root / "work"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "default",
            "--scale",
            "ci",
            "--out",
            str(out),
            "--work",
            str(work),
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, work


def test_ci_recipe_exports_a_checkpoint_the_server_code_loads_and_runs(ci_run):
    out, _ = ci_run
    loaded = load_checkpoint(out)
    tok = loaded.tokenizer
    engine = Engine(loaded.model, EngineConfig(max_batch=4), tok.stop_token_ids)
    engine.start()
    try:
        prompt = tok.encode_chat([{"role": "user", "content": "计算：3+4"}], reasoning=True)
        greedy = engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=12))
        again = engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=12))
    finally:
        engine.shutdown(timeout=5.0)
    assert greedy[0].token_ids and greedy[0].token_ids == again[0].token_ids
    assert greedy[0].finish_reason in ("stop", "length")
    assert "\ufffd" not in tok.decode(greedy[0].token_ids)


def test_ci_recipe_writes_manifest_model_card_and_reports(ci_run):
    out, work = ci_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["pretrain", "sft", "reasoning-sft"]
    assert all(s["steps"] > 0 and s["tokens_seen"] > 0 and s["final_val_loss"] for s in manifest["stages"])
    assert manifest["tokens_seen"] == sum(s["tokens_seen"] for s in manifest["stages"])
    assert manifest["wall_seconds"] > 0 and manifest["final_train_loss"] > 0
    sources = {Path(src["path"]).name for s in manifest["stages"] for src in s["data"]["sources"]}
    assert {"chat.jsonl", "reasoning_train.jsonl", "reasoning_text.jsonl"} <= sources
    assert all(src["bytes"] > 0 for s in manifest["stages"] for src in s["data"]["sources"])
    table = manifest["eval"]["reasoning"]
    assert set(table) == {"fp32", "int8"}
    for groups in table.values():
        assert {"all", "easy", "hard", "zh", "en", "easy/zh", "hard/en"} <= set(groups)
        assert {"greedy", "sc@1", "sc@5", "sc@9"} <= set(groups["all"])
        assert groups["all"]["n"] == groups["easy"]["n"] + groups["hard"]["n"]
    assert manifest["eval"]["perplexity"]["fp32"]["text"]["ppl"] > 1
    for precision, groups in manifest["eval"]["vote_margin"].items():  # each vote, paired with greedy
        hard = groups["hard"]["checked@9"]
        assert hard["n"] == table[precision]["hard"]["n"]
        assert hard["margin"] == pytest.approx(
            table[precision]["hard"]["checked@9"] - table[precision]["hard"]["greedy"], abs=0.11
        )
        assert hard["ci95"][0] <= hard["margin"] <= hard["ci95"][1]
    card = (out / "README.md").read_text()
    assert "| precision | group | n | greedy | sc@1 | sc@5 | sc@9 |" in card and "reasoning-sft" in card
    assert "| precision | group | method | n | gained | lost | margin (points) | 95% CI |" in card
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.model",
        "generation_config.json",
        "eval.png",
        "loss-pretrain.png",
    ):
        assert (out / name).stat().st_size > 0
    report = json.loads((work / "data" / "reasoning" / "report.json").read_text())
    assert report["kept"] > 0 and "per_source" in report
    samples = (work / "eval" / "eval_samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * table["fp32"]["all"]["n"]  # every problem, fp32 and int8


def _default_ci(out: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "default",
            "--scale",
            "ci",
            "--out",
            str(out),
            "--work",
            str(work),
            "--no-progress",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.slow
def test_resume_keeps_finished_stages_and_refuses_a_changed_tokenizer(ci_run, tmp_path):
    """A second and third run of the whole recipe (data prepared again): minutes. The default suite checks
    resuming at the trainer's level (tests/training/test_trainer.py)."""
    out, work = ci_run
    resumed = tmp_path / "resumed"
    proc = _default_ci(resumed, work, "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("pretrain", "sft", "reasoning-sft"):
        assert f"[default] {stage}: finished in an earlier run, kept" in proc.stdout
    # Nothing was trained again: the exported weights are the first run's, byte for byte.
    assert (resumed / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()

    # A stage trained with another tokenizer than the one prepared now cannot be continued.
    changed = shutil.copytree(work, tmp_path / "work")
    (changed / "runs" / "sft" / "tokenizer.model").write_bytes(b"not the same tokenizer")
    proc = _default_ci(tmp_path / "refused", changed, "--resume")
    assert proc.returncode == 2
    assert "cannot resume" in proc.stderr and "runs/sft" in proc.stderr and "tokenizer" in proc.stderr
    assert not (tmp_path / "refused" / "model.safetensors").exists()
