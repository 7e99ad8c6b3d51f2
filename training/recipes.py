"""Stage presets and the default recipe: the one command that rebuilds the shipped checkpoint.

``python -m training default --scale full`` runs, from data this machine can obtain offline:

1. corpora: Chinese and English fortunes, WordNet glosses (Debian packages; missing ones are skipped);
   general-chat SFT examples (``training.chat_data``); arithmetic problems with verified chains
   (``training.reasoning_data``, train split);
2. tokenizer: SentencePiece BPE on all of that text;
3. data: cleaned and tokenized shards for pretraining (corpora plus arithmetic text), SFT (chat) and
   reasoning SFT (reasoning records plus chat replay, so chat ability is not overwritten);
4. pretrain → SFT → reasoning SFT (one trainer, three presets);
5. export to the checkpoint directory, evaluate it (perplexity, greedy vs self-consistency, fp32 vs int8),
   and write the model card and manifest with the results.

``--scale ci`` is the same chain at toy size (~1-2 minutes on 2 cores); CI runs it end to end.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sentencepiece as spm

from training import reasoning_data
from training.chat_data import write_chat
from training.cleaning import CleaningConfig
from training.corpus import build_corpus
from training.data import prepare
from training.eval import EvalConfig, evaluate, format_table
from training.export import export
from training.tokenizer_training import train_from_inputs
from training.trainer import TrainConfig, train
from training.vote_margin import format_margins

# Defaults of the training commands (`python -m training copy|pretrain|sft|reasoning-sft`).
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    # Copy drills (`copy-data`, training.copy_data), not part of the default recipe: short random-token
    # examples, a constant learning rate, no weight decay, fp32: the settings under which the default
    # shape grew an induction head over 126 token ids in a plain loop (README, "The shipped checkpoint").
    "copy": dict(
        seq_len=96,
        batch_size=64,
        grad_accum=1,
        max_steps=1000,
        lr=1e-3,
        warmup_steps=20,
        min_lr_ratio=1.0,
        weight_decay=0.0,
        eval_interval=100,
        eval_batches=4,
        checkpoint_interval=200,
        precision="fp32",
    ),
    "pretrain": dict(
        seq_len=256,
        batch_size=16,
        grad_accum=2,
        max_steps=1000,
        lr=2e-3,
        warmup_steps=50,
        weight_decay=0.1,
        eval_interval=100,
        eval_batches=20,
        checkpoint_interval=100,
    ),
    "sft": dict(
        seq_len=512,
        batch_size=16,
        grad_accum=1,
        max_steps=300,
        lr=1e-3,
        warmup_steps=20,
        weight_decay=0.1,
        eval_interval=100,
        eval_batches=10,
        checkpoint_interval=100,
    ),
    "reasoning-sft": dict(
        seq_len=512,
        batch_size=32,
        grad_accum=1,
        max_steps=3000,
        lr=1e-3,
        warmup_steps=50,
        weight_decay=0.1,
        eval_interval=250,
        eval_batches=10,
        checkpoint_interval=250,
    ),
}

DEFAULT_MODEL = dict(
    vocab_size=6000,
    hidden_size=256,
    intermediate_size=688,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=512,
)


@dataclass
class Scale:
    """Sizes of everything in the default recipe."""

    name: str
    model: dict[str, Any]
    vocab_size: int
    character_coverage: float
    wordnet_max_synsets: int | None
    max_fortunes: int | None
    chat_examples: int
    reasoning_sft_examples: int
    reasoning_pretrain_examples: int
    stages: dict[str, dict[str, Any]]
    eval: EvalConfig
    threads: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


SCALES: dict[str, Scale] = {
    "ci": Scale(
        name="ci",
        model=dict(
            vocab_size=1200,
            hidden_size=64,
            intermediate_size=172,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        ),
        vocab_size=1200,
        character_coverage=0.98,
        wordnet_max_synsets=600,
        max_fortunes=300,
        chat_examples=300,
        reasoning_sft_examples=400,
        reasoning_pretrain_examples=200,
        stages={
            "pretrain": dict(
                seq_len=128,
                batch_size=8,
                grad_accum=1,
                max_steps=30,
                lr=3e-3,
                warmup_steps=5,
                eval_interval=15,
                eval_batches=4,
                checkpoint_interval=0,
                log_interval=5,
            ),
            "sft": dict(
                seq_len=384,
                batch_size=8,
                max_steps=10,
                lr=2e-3,
                warmup_steps=2,
                eval_interval=10,
                eval_batches=2,
                checkpoint_interval=0,
                log_interval=5,
            ),
            "reasoning-sft": dict(
                seq_len=384,
                batch_size=8,
                max_steps=20,
                lr=2e-3,
                warmup_steps=2,
                eval_interval=20,
                eval_batches=2,
                checkpoint_interval=0,
                log_interval=5,
            ),
        },
        eval=EvalConfig(n_problems=8, ks=(1, 5, 9), max_new_tokens=48, ppl_max_windows=16, ppl_seq_len=128),
        # One thread: a toy model gains nothing from two, and on a busy machine two threads that wait on
        # each other (OpenMP barriers) run several times slower than one.
        threads=1,
    ),
    # The shipped checkpoint (checkpoints/tinyllm-default/manifest.json records the run). Sized so the whole
    # recipe takes about 2 hours on 2 idle cores with bf16 autocast (115 and 120 min measured): ~3.7M
    # pretraining tokens, ~22M reasoning-SFT tokens (about 1.2 epochs of the 120k chains).
    "full": Scale(
        name="full",
        model=DEFAULT_MODEL,
        vocab_size=6000,
        character_coverage=0.9995,
        wordnet_max_synsets=40_000,
        max_fortunes=None,
        chat_examples=8000,
        reasoning_sft_examples=120_000,
        reasoning_pretrain_examples=30_000,
        stages={
            "pretrain": dict(
                STAGE_DEFAULTS["pretrain"],
                max_steps=450,
                warmup_steps=30,
                eval_interval=150,
                eval_batches=10,
                checkpoint_interval=150,
            ),
            "sft": dict(
                STAGE_DEFAULTS["sft"],
                max_steps=120,
                warmup_steps=10,
                eval_interval=60,
                eval_batches=5,
                checkpoint_interval=120,
            ),
            "reasoning-sft": dict(
                STAGE_DEFAULTS["reasoning-sft"],
                max_steps=4600,
                warmup_steps=40,
                eval_interval=300,
                eval_batches=8,
                checkpoint_interval=300,
            ),
        },
        eval=EvalConfig(),  # the defaults: 160 problems, k = 1, 5, 9, 400 tokens per chain
    ),
}


def _log(msg: str) -> None:
    print(f"[default] {msg}", flush=True)


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def reasoning_as_text(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Arithmetic problems as plain documents for pretraining: the question, the chain, the answer. The
    cheap pretraining tokens then already teach the digits and the step format; SFT teaches the roles."""
    return [{"text": f"{r['user']}\n{r['cot']}\n{r['final']}"} for r in records]


def without_some_system_prompts(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> list[dict[str, Any]]:
    """Blank the system prompt of a seeded ``fraction`` of records: API clients often send none, and a
    model that only ever saw one would depend on it."""
    rng = random.Random(seed)
    return [dict(r, system="") if rng.random() < fraction else r for r in records]


def _vocabulary(tokenizer: str | Path) -> list[tuple[str, float]]:
    # Pieces and scores, not file bytes: a .model file also records the paths it was trained from.
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def _check_same_tokenizer(tokenizer: str | Path, runs: Path) -> None:
    """Stages kept or resumed from an earlier run must have used the tokenizer just trained again (the data
    steps are deterministic; this catches changed inputs, such as a Debian corpus installed in between)."""
    vocabulary = _vocabulary(tokenizer)
    for used in sorted(runs.glob("*/tokenizer.model")):
        try:
            same = _vocabulary(used) == vocabulary
        except (OSError, RuntimeError):
            same = False
        if not same:
            raise ValueError(
                f"cannot resume: {used.parent} was trained with another tokenizer than the data "
                "prepared now (did the corpora change?); start again in a new --work directory"
            )


def run_default(
    scale: str | Scale = "full",
    out: str | Path = "checkpoints/tinyllm-default",
    work: str | Path = "runs/default",
    seed: int = 0,
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the whole default recipe; returns the manifest of the exported checkpoint.

    ``resume``: continue an interrupted run in the same ``work`` directory: the data are prepared again
    (deterministic, minutes), a finished stage is kept, an unfinished one resumes exactly from its last
    checkpoint."""
    sc = SCALES[scale] if isinstance(scale, str) else scale
    work, out = Path(work), Path(out)
    started = time.time()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.time() - t0, 1)
        _log(f"{name}: {timings[name]:.1f} s")

    t0 = time.time()
    corpus = build_corpus(
        work / "corpus", wordnet_max_synsets=sc.wordnet_max_synsets, seed=seed, max_fortunes=sc.max_fortunes
    )
    for name, info in corpus.items():
        _log(
            info["message"]
            if info.get("missing")
            else f"corpus {name}: {info['documents']} documents, {info['chars']:,} chars"
        )
    corpus_files = [Path(i["path"]) for i in corpus.values() if not i.get("missing")]
    chat_file = work / "chat.jsonl"
    write_chat(chat_file, sc.chat_examples, seed)
    reasoning_file = work / "reasoning_train.jsonl"
    _write_jsonl(
        reasoning_file,
        without_some_system_prompts(
            reasoning_data.generate("train", sc.reasoning_sft_examples, seed), 0.3, seed
        ),
    )
    # A different seed: pretraining sees other problems than SFT (same train split, so still disjoint from test).
    reasoning_text = work / "reasoning_text.jsonl"
    _write_jsonl(
        reasoning_text,
        reasoning_as_text(reasoning_data.generate("train", sc.reasoning_pretrain_examples, seed + 1)),
    )
    timed("sources", t0)

    t0 = time.time()
    tok = train_from_inputs(
        [*corpus_files, reasoning_text, chat_file],
        work / "tokenizer" / "spm",
        vocab_size=sc.vocab_size,
        character_coverage=sc.character_coverage,
        seed=seed,
    )
    tokenizer = tok["model"]
    timed("tokenizer", t0)

    t0 = time.time()
    data = work / "data"
    seq = {k: v["seq_len"] for k, v in sc.stages.items()}
    cleaning = CleaningConfig(min_chars=2)
    prepared = {
        "pretrain": prepare(
            "pretrain", [*corpus_files, reasoning_text], tokenizer, data / "pretrain", cleaning
        ),
        # The corpora alone, for the held-out perplexity of natural text (same hash split: same val docs).
        "text": prepare("pretrain", corpus_files, tokenizer, data / "text", cleaning),
        "sft": prepare("sft", [chat_file], tokenizer, data / "sft", cleaning, max_tokens=seq["sft"] + 1),
        "reasoning": prepare(
            "sft",
            [reasoning_file, chat_file],
            tokenizer,
            data / "reasoning",
            cleaning,
            max_tokens=seq["reasoning-sft"] + 1,
        ),
    }
    for name, p in prepared.items():
        _log(
            f"data {name}: {p.meta['splits']['train']['tokens']:,} train tokens, "
            f"{p.meta['splits']['val']['documents']} val docs, dropped {p.meta['cleaning']['dropped']}"
        )
    timed("data", t0)

    runs = work / "runs"
    if resume:
        _check_same_tokenizer(tokenizer, runs)
    previous = ""
    data_for = {"pretrain": "pretrain", "sft": "sft", "reasoning-sft": "reasoning"}
    for stage in ("pretrain", "sft", "reasoning-sft"):
        t0 = time.time()
        cfg = TrainConfig(
            stage=stage,
            data=str(data / data_for[stage]),
            out=str(runs / stage),
            tokenizer=tokenizer,
            init_from=previous,
            model=dict(sc.model) if not previous else {},
            seed=seed + 1234,
            threads=sc.threads,
            progress=progress,
            **sc.stages[stage],
        )
        done = runs / stage / "summary.json"
        earlier = json.loads(done.read_text(encoding="utf-8")) if resume and done.exists() else {}
        if earlier.get("step") == cfg.max_steps:
            summary = earlier
            _log(f"{stage}: finished in an earlier run, kept")
        else:
            summary = train(cfg, resume=resume)
        _log(
            f"{stage}: {summary['step']} steps, {summary['tokens_seen']:,} tokens, "
            f"train loss {summary['final_train_loss']}, val loss {summary['final_val_loss']}"
        )
        previous = str(runs / stage)
        timed(stage, t0)

    t0 = time.time()
    export(previous, out)
    eval_cfg = replace(
        sc.eval,
        ppl_data=(str(data / "text"), str(data / "pretrain")),
        seed=seed,
        threads=sc.threads,
        progress=progress,
    )
    report = evaluate(out, work / "eval", eval_cfg)
    _log("eval:\n" + format_table(report) + "\nvote margins over greedy:\n" + format_margins(report))
    timed("eval", t0)

    extra = {
        "scale": sc.name,
        "wall_seconds": round(time.time() - started, 1),
        "timings_s": timings,
        "reproduce": f"python -m training default --scale {sc.name} --out {out}",
        "corpus": corpus,
        "tokenizer": {k: v for k, v in tok.items() if k != "inputs"},
    }
    manifest = export(previous, out, work / "eval", extra=extra)
    _log(
        f"exported {out} ({manifest['checkpoint_bytes'] / 1e6:.1f} MB) in {extra['wall_seconds'] / 60:.1f} min"
    )
    return manifest
