"""Export a training run as the checkpoint directory the server loads, with its model card and manifest.

The weights and tokenizer go through ``model.checkpoint.save_checkpoint`` (the one writer of the format).
The history comes from the run directories themselves: each run's ``train_config.json`` names the run it
started from (``init_from``), so exporting the last stage walks back through every earlier stage and its
data (``meta.json`` of each prepared data directory). Nothing has to be passed by hand.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from model.checkpoint import save_checkpoint
from training.eval import format_table
from training.trainer import TrainConfig, load_model_weights
from training.vote_margin import format_margins

GENERATION_CONFIG = {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": 256}


def stage_chain(run_dir: str | Path) -> list[Path]:
    """The run and its ancestors (via ``init_from``), earliest first."""
    chain: list[Path] = []
    current: Path | None = Path(run_dir)
    while current is not None and (current / "train_config.json").exists() and current not in chain:
        chain.append(current)
        parent = TrainConfig.load(current / "train_config.json").init_from
        current = Path(parent) if parent else None
    return list(reversed(chain))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def stage_record(run: Path) -> dict[str, Any]:
    cfg = TrainConfig.load(run / "train_config.json")
    summary = _read_json(run / "summary.json")
    meta = _read_json(Path(cfg.data) / "meta.json")
    keep = (
        "seq_len",
        "batch_size",
        "grad_accum",
        "max_steps",
        "lr",
        "min_lr_ratio",
        "warmup_steps",
        "weight_decay",
        "grad_clip",
        "precision",
    )
    return {
        "stage": cfg.stage,
        "run_dir": str(run),
        "recipe": {k: getattr(cfg, k) for k in keep},
        "steps": summary.get("step"),
        "tokens_seen": summary.get("tokens_seen"),
        "train_seconds": summary.get("train_seconds"),
        "world_size": summary.get("world_size"),
        "final_train_loss": summary.get("final_train_loss"),
        "final_val_loss": summary.get("final_val_loss"),
        "final_val_ppl": summary.get("final_val_ppl"),
        "data": {
            "dir": cfg.data,
            "kind": meta.get("kind"),
            "sources": meta.get("sources", []),
            "splits": meta.get("splits", {}),
            "dropped": meta.get("cleaning", {}).get("dropped", {}),
            "formats": meta.get("formats"),
        },
    }


def build_manifest(
    run_dir: str | Path,
    eval_report: dict[str, Any] | None,
    checkpoint_dir: Path,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    stages = [stage_record(r) for r in stage_chain(run_dir)]
    config = _read_json(checkpoint_dir / "config.json")
    size = sum(p.stat().st_size for p in checkpoint_dir.iterdir() if p.is_file())
    manifest = {
        "name": checkpoint_dir.name,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "architecture": "LlamaForCausalLM",
        "parameters": _read_json(Path(run_dir) / "summary.json").get("parameters"),
        "config": {
            k: config.get(k)
            for k in (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "max_position_embeddings",
                "tie_word_embeddings",
            )
        },
        "checkpoint_bytes": size,
        "stages": stages,
        "tokens_seen": sum(s["tokens_seen"] or 0 for s in stages),
        "train_seconds": round(sum(s["train_seconds"] or 0 for s in stages), 1),
        "final_train_loss": stages[-1]["final_train_loss"] if stages else None,
        "final_val_loss": stages[-1]["final_val_loss"] if stages else None,
        "eval": {
            k: eval_report[k]
            for k in ("perplexity", "reasoning", "vote_margin", "config", "seconds")
            if k in eval_report
        }
        if eval_report
        else None,
    }
    manifest.update(extra or {})
    return manifest


def model_card(manifest: dict[str, Any], eval_report: dict[str, Any] | None) -> str:
    """README.md of the checkpoint: what it is, how it was made, how well it does."""
    c = manifest["config"]
    lines = [
        f"# {manifest['name']}",
        "",
        "A small Llama-architecture language model trained from scratch on a CPU with TinyLLM's `training/` "
        "pipeline. It chats briefly in Chinese and English and solves arithmetic problems in the reasoning "
        "format (`<think>` chain `</think>` then the final answer). It is a teaching-scale model: expect "
        "mistakes outside simple arithmetic.",
        "",
        "## Model",
        "",
        f"- parameters: {manifest.get('parameters'):,}" if manifest.get("parameters") else "- parameters: ?",
        f"- layers {c['num_hidden_layers']}, hidden {c['hidden_size']}, MLP {c['intermediate_size']}, heads "
        f"{c['num_attention_heads']} (kv {c['num_key_value_heads']}), context {c['max_position_embeddings']}, "
        f"vocabulary {c['vocab_size']} (SentencePiece BPE, byte fallback, digits split)",
        f"- checkpoint size: {manifest['checkpoint_bytes'] / 1e6:.1f} MB (fp32 safetensors)",
        "",
        "## Training",
        "",
        "| stage | steps | tokens seen | train time | final train loss | final val loss (ppl) | data |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in manifest["stages"]:
        val = (
            f"{s['final_val_loss']:.3f} ({s['final_val_ppl']:.2f})"
            if s.get("final_val_loss") is not None
            else "-"
        )
        train_loss = f"{s['final_train_loss']:.3f}" if s.get("final_train_loss") is not None else "-"
        sources = ", ".join(Path(src["path"]).name for src in s["data"]["sources"])
        lines.append(
            f"| {s['stage']} | {s['steps']} | {s['tokens_seen'] or 0:,} | {s['train_seconds'] or 0:.0f} s | "
            f"{train_loss} | {val} | {sources} |"
        )
    lines += [
        "",
        "Recipe per stage (AdamW, linear warm-up then cosine decay, gradient clipping; SFT losses on "
        "assistant tokens only):",
        "",
    ]
    for s in manifest["stages"]:
        lines.append(f"- {s['stage']}: " + ", ".join(f"{k}={v}" for k, v in s["recipe"].items()))
    lines += [
        "",
        f"Total: {manifest['tokens_seen']:,} tokens seen in {manifest['train_seconds'] / 60:.1f} min of "
        "training"
        + (
            f"; wall time of the whole recipe {manifest['wall_seconds'] / 60:.1f} min"
            if manifest.get("wall_seconds")
            else ""
        )
        + ".",
    ]
    if manifest.get("reproduce"):
        lines += ["", "Reproduce:", "", "```bash", manifest["reproduce"], "```"]
    if eval_report:
        lines += [
            "",
            "## Evaluation: the generator's test split",
            "",
            "Arithmetic problems from the test split of `training/reasoning_data.py`: structures and some "
            "phrasings never seen in training, but most sentence frames shared with its train split, so this "
            "measures recognising a frame as much as reading a question (the independent set's section, "
            "written by the independent-set eval's `--card` option, docs/reasoning.md, is the figure to "
            "quote). Accuracy in %; greedy = temperature 0; sc@k = majority vote "
            f"over k chains sampled at temperature {eval_report['config']['temperature']}; checked@k = the "
            "same vote with the answers of chains whose steps hold and whose numbers come from the question "
            "ranked first.",
            "",
            format_table(eval_report),
        ]
        margins = format_margins(eval_report)
        if margins:
            lines += [
                "",
                "What each vote gains over greedy on the same problems (problems it fixes and breaks; "
                "95% Agresti–Min interval of the paired difference):",
                "",
                margins,
            ]
        for precision, ppls in eval_report.get("perplexity", {}).items():
            for name, p in ppls.items():
                lines.append(
                    f"\nHeld-out perplexity ({precision}, `{name}` val split): {p['ppl']:.2f} "
                    f"(loss {p['loss']:.3f} over {p['tokens']:,} tokens)"
                )
        if eval_report.get("chat_samples"):
            lines += ["", "Sample replies (greedy):", ""]
            for s in eval_report["chat_samples"]:
                reply = s["reply"].replace("\n", " ")
                lines.append(f"- **{s['prompt']}** → {reply}")
    lines += [
        "",
        "## Files",
        "",
        "`config.json`, `model.safetensors` (Hugging Face Llama names), `tokenizer.model`, "
        "`tokenizer_config.json` (chat template), `generation_config.json`, `special_tokens_map.json`, "
        "`manifest.json` (all figures above, machine-readable).",
        "",
    ]
    return "\n".join(lines)


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    eval_dir: str | Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the checkpoint of ``run_dir`` to ``out_dir`` with README.md and manifest.json; returns the
    manifest. ``eval_dir`` holds ``eval.json``/``eval.png`` from ``training.eval`` (optional)."""
    run_dir, out = Path(run_dir), Path(out_dir)
    model, tokenizer_file = load_model_weights(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    generation_config = dict(GENERATION_CONFIG)
    if any(
        TrainConfig.load(run / "train_config.json").stage == "reasoning-sft" for run in stage_chain(run_dir)
    ):
        # Our extension, read by the server: a reasoning checkpoint thinks unless a request says "none".
        generation_config["reasoning_effort"] = "low"
    save_checkpoint(out, model.eval(), tokenizer_file, generation_config=generation_config)
    eval_report = None
    if eval_dir and (Path(eval_dir) / "eval.json").exists():
        eval_report = json.loads((Path(eval_dir) / "eval.json").read_text(encoding="utf-8"))
    for run in stage_chain(run_dir):
        if (run / "loss.png").exists():
            shutil.copyfile(
                run / "loss.png", out / f"loss-{TrainConfig.load(run / 'train_config.json').stage}.png"
            )
    if eval_dir and (Path(eval_dir) / "eval.png").exists():
        shutil.copyfile(Path(eval_dir) / "eval.png", out / "eval.png")
    manifest = build_manifest(run_dir, eval_report, out, extra)
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out / "README.md").write_text(model_card(manifest, eval_report), encoding="utf-8")
    return manifest
