"""``python -m training <command>`` (also ``tinyllm <command>``): every step of the training pipeline.

corpus          offline text corpora from Debian packages (fortunes zh/en, WordNet glosses)
chat-data       general-chat SFT examples (zh/en)
reasoning-data  arithmetic problems with verified chains (training.reasoning_data)
tokenizer       train the SentencePiece BPE tokenizer
data            clean + tokenize text or instruction JSONL into shards (pretrain | sft)
copy-data       copy drills (random tokens written twice) for the copy stage
copy, pretrain, sft, reasoning-sft   train (one trainer, four presets); torchrun for several processes
eval            perplexity and reasoning accuracy of a checkpoint
export          write the server's checkpoint directory + model card + manifest from a run
default         the whole recipe of the shipped checkpoint (--scale ci | full)
lora            fine-tune a pretrained HF Llama (SmolLM2) with LoRA; lora-merge: base + adapters -> checkpoint;
                lora-export: an adapter in bf16 for shipping
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from training.eval import EvalConfig
from training.recipes import DEFAULT_MODEL, SCALES, STAGE_DEFAULTS

TRAIN_STAGES = ("copy", "pretrain", "sft", "reasoning-sft")
# TrainConfig fields set by dedicated options (or not settable from the command line).
_SPECIAL_FIELDS = {"stage", "data", "out", "model", "progress"}


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


def _add_train_parser(sub: argparse._SubParsersAction, stage: str) -> None:
    from training.trainer import TrainConfig

    help_text = {
        "copy": "train on copy drills (output of `copy-data`) from scratch, before pretraining",
        "pretrain": "next-token pretraining on prepared text shards",
        "sft": "supervised fine-tuning on prepared chat shards (loss on assistant tokens only)",
        "reasoning-sft": "fine-tuning on reasoning shards (chain + answer; loss on assistant tokens)",
    }
    p = sub.add_parser(
        stage,
        help=help_text[stage],
        description=help_text[stage] + ". Run under `torchrun "
        "--nproc_per_node N -m training ...` for data-parallel training (gloo).",
    )
    p.add_argument("--data", required=True, help="prepared data directory (output of `data`)")
    p.add_argument("--out", required=True, help="run directory (checkpoint/, metrics.jsonl, loss.png, ...)")
    p.add_argument(
        "--model",
        default=None,
        help="model shape as JSON or a JSON file of ModelConfig fields (from scratch only; default "
        f"{json.dumps(DEFAULT_MODEL)})",
    )
    p.add_argument("--config", default=None, help="a train_config.json to start from (options override it)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint/state.pt (exactly)")
    p.add_argument("--stop-after", type=int, default=None, help="stop (and checkpoint) after this many steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name not in _SPECIAL_FIELDS}
    defaults.update(STAGE_DEFAULTS[stage])
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=type(default), default=None, help=f"(default {default})")
    p.set_defaults(stage_defaults=defaults)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    from training import lora_cli

    lora_cli.add_parsers(sub)

    p = sub.add_parser(
        "corpus",
        help="build text corpora from Debian packages",
        description='Write fortunes-zh/-en and WordNet glosses as {"text"} JSONL. Needs '
        "`apt-get install fortunes-zh fortunes fortunes-min wordnet`; missing "
        "packages are reported and skipped.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--wordnet-max-synsets", type=int, default=None, help="subsample WordNet glosses")
    p.add_argument("--max-fortunes", type=int, default=None, help="cap entries per fortune source")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser(
        "chat-data",
        help="generate general-chat SFT examples (zh/en)",
        description='Greetings, identity, word meanings, poems, copying; {"messages"} JSONL.',
    )
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)

    sub.add_parser(
        "reasoning-data", help="arithmetic problems with verified chains (see its --help)", add_help=False
    )

    p = sub.add_parser(
        "tokenizer",
        help="train the SentencePiece BPE tokenizer",
        description="Train a BPE tokenizer (byte fallback, digits split, chat/reasoning special "
        "tokens reserved) on cleaned text from any mix of inputs.",
    )
    p.add_argument("--input", action="append", required=True, help="text/JSONL file (repeatable)")
    p.add_argument("--out", required=True, help="model prefix: writes PREFIX.model and PREFIX.vocab")
    p.add_argument("--vocab-size", type=int, default=6000)
    p.add_argument("--character-coverage", type=float, default=0.9995)
    p.add_argument("--max-lines", type=int, default=1_000_000)

    p = sub.add_parser(
        "data",
        help="clean + tokenize inputs into binary shards",
        description="kind 'pretrain': plain text (.txt, paragraphs) or {\"text\"} JSONL. kind "
        "'sft': JSONL in the simple, messages, alpaca or reasoning format. Writes "
        "train/ and val/ shards, meta.json and report.json (drops per reason).",
    )
    p.add_argument("kind", choices=("pretrain", "sft"))
    p.add_argument("--input", action="append", required=True, help="input file (repeatable)")
    p.add_argument("--tokenizer", required=True, help="tokenizer .model file")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--val-fraction", type=float, default=0.02)
    p.add_argument("--min-chars", type=int, default=2, help="drop documents shorter than this")
    p.add_argument("--max-chars", type=int, default=200_000, help="drop documents longer than this")
    p.add_argument("--max-tokens", type=int, default=513, help="sft: drop examples longer than this")
    p.add_argument(
        "--split",
        choices=("paragraph", "line", "file"),
        default="paragraph",
        help="how .txt files divide into documents",
    )
    p.add_argument(
        "--unicode",
        choices=("nfkc-cjk", "nfkc", "nfc", "none"),
        default="nfkc-cjk",
        help="normalisation (default: NFKC except CJK full-width punctuation)",
    )
    p.add_argument("--no-dedup", action="store_true", help="keep exact duplicates")

    p = sub.add_parser(
        "copy-data",
        help="copy drills for the copy stage (training.copy_data)",
        description="Runs of random tokens written twice, the loss on the repeat: they teach a "
        "model from scratch to copy from its context (an induction head). Writes a "
        "prepared sft-kind data directory.",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--vocab-size", type=int, required=True, help="the model's vocabulary size")
    p.add_argument("--n", type=int, default=40_000, help="training drills")
    p.add_argument("--n-val", type=int, default=256, help="validation drills")
    p.add_argument("--min-run", type=int, default=10, help="shortest run of random tokens")
    p.add_argument("--max-run", type=int, default=40, help="longest run of random tokens")
    p.add_argument(
        "--token-pool",
        type=int,
        default=None,
        help="draw tokens from this many ids (default: the whole vocabulary)",
    )
    p.add_argument("--seed", type=int, default=0)

    for stage in TRAIN_STAGES:
        _add_train_parser(sub, stage)

    p = sub.add_parser(
        "eval",
        help="perplexity and reasoning accuracy of a checkpoint",
        description="Greedy vs self-consistency@k over held-out problems, fp32 vs int8, per "
        "stratum and language; writes eval.json, eval.png, eval_samples.jsonl.",
    )
    p.add_argument("--checkpoint", required=True, help="exported checkpoint directory")
    p.add_argument("--out", required=True, help="output directory")
    # EvalConfig's defaults, which the full recipe uses: a bare `eval` reproduces its figures.
    full = EvalConfig()
    p.add_argument("--n-problems", type=int, default=full.n_problems)
    p.add_argument("--ks", default=",".join(map(str, full.ks)), help="self-consistency sample counts")
    p.add_argument("--temperature", type=float, default=full.temperature)
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=full.max_new_tokens,
        help="per chain; a hard chain cut short has no answer",
    )
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--ppl-data", action="append", default=[], help="prepared pretrain data dir (val split)")
    p.add_argument("--strata", default="easy,hard")
    p.add_argument("--langs", default="zh,en")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser(
        "export",
        help="write the server checkpoint + README.md + manifest.json",
        description="Export the run (and the history of runs it started from) as a checkpoint "
        "directory the server loads.",
    )
    p.add_argument("--run", required=True, help="run directory of the last stage")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--eval", default=None, help="directory with eval.json/eval.png to include")

    p = sub.add_parser(
        "default",
        help="reproduce the shipped checkpoint end to end",
        description="data -> tokenizer -> pretrain -> SFT -> reasoning SFT -> eval -> export. "
        "--scale ci: toy sizes, 1-2 min (CI). --scale full: the shipped model, "
        "<= ~2 h on 2 CPU cores.",
    )
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--out", default="checkpoints/tinyllm-default")
    p.add_argument("--work", default=None, help="working directory (default runs/default-SCALE)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in the same --work directory (finished stages are kept)",
    )
    p.add_argument("--no-progress", action="store_true")
    return parser


def _train_config(args: argparse.Namespace):
    from training.trainer import TrainConfig

    values = dict(args.stage_defaults)
    if args.config:
        values.update(
            {
                k: v
                for k, v in json.loads(Path(args.config).read_text()).items()
                if k not in ("stage", "data", "out")
            }
        )
    values.update({k: v for k, v in vars(args).items() if k in args.stage_defaults and v is not None})
    model = values.pop("model", None) or {}
    if args.model:
        model = json.loads(Path(args.model).read_text() if Path(args.model).is_file() else args.model)
    if not values.get("init_from") and not model:
        model = dict(DEFAULT_MODEL)
    return TrainConfig(
        stage=args.command, data=args.data, out=args.out, model=model, progress=not args.no_progress, **values
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "reasoning-data":
        from training import reasoning_data

        return reasoning_data.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as e:
        # Mistakes in inputs or options: one line naming the problem, not a traceback.
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "corpus":
        from training.corpus import build_corpus

        result = build_corpus(
            args.out, args.wordnet_max_synsets, seed=args.seed, max_fortunes=args.max_fortunes
        )
        for name, info in result.items():
            print(
                info["message"]
                if info.get("missing")
                else f"{name}: {info['documents']} documents, {info['chars']:,} chars -> {info['path']}"
            )
        return 0 if any(not i.get("missing") for i in result.values()) else 1
    if cmd == "chat-data":
        from training.chat_data import write_chat

        print(f"wrote {write_chat(args.out, args.n, args.seed)} examples to {args.out}")
        return 0
    if cmd == "tokenizer":
        from training.tokenizer_training import train_from_inputs

        info = train_from_inputs(
            args.input, args.out, args.vocab_size, args.max_lines, args.character_coverage
        )
        print(f"tokenizer {info['model']}: vocab {info['vocab_size']}, trained on {info['lines']:,} lines")
        return 0
    if cmd == "data":
        from training.cleaning import CleaningConfig
        from training.data import prepare

        cleaning = CleaningConfig(
            min_chars=args.min_chars,
            max_chars=args.max_chars,
            unicode_form=args.unicode,
            dedup=not args.no_dedup,
        )
        result = prepare(
            args.kind,
            args.input,
            args.tokenizer,
            args.out,
            cleaning,
            args.val_fraction,
            args.max_tokens if args.kind == "sft" else None,
            args.split,
        )
        print(result.report.summary())
        for split, info in result.meta["splits"].items():
            print(
                f"{split}: {info['documents']:,} documents, {info['tokens']:,} tokens "
                f"({info['target_tokens']:,} trained on)"
            )
        print(f"wrote {args.out} (report: {Path(args.out) / 'report.json'})")
        return 0
    if cmd == "copy-data":
        from training.copy_data import write_copy_data

        meta = write_copy_data(
            args.out,
            args.vocab_size,
            args.n,
            args.n_val,
            args.seed,
            args.min_run,
            args.max_run,
            args.token_pool,
        )
        for split, info in meta["splits"].items():
            print(
                f"{split}: {info['documents']:,} drills, {info['tokens']:,} tokens "
                f"({info['target_tokens']:,} trained on)"
            )
        print(f"wrote {args.out}")
        return 0
    if cmd in ("lora", "lora-merge", "lora-export"):
        from training import lora_cli

        return lora_cli.run(args)
    if cmd in TRAIN_STAGES:
        from training.distributed import shutdown_distributed
        from training.trainer import train

        try:
            summary = train(_train_config(args), resume=args.resume, stop_after=args.stop_after)
            shutdown_distributed(synchronize=True)
        finally:
            shutdown_distributed()
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(summary, indent=2))
        return 0
    if cmd == "eval":
        from training.eval import evaluate, format_table
        from training.vote_margin import format_margins

        cfg = EvalConfig(
            n_problems=args.n_problems,
            ks=tuple(int(k) for k in _csv(args.ks)),
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            precisions=_csv(args.precisions),
            ppl_data=tuple(args.ppl_data),
            seed=args.seed,
            strata=_csv(args.strata),
            langs=_csv(args.langs),
            threads=args.threads,
            progress=not args.no_progress,
        )
        report = evaluate(args.checkpoint, args.out, cfg)
        print(format_table(report))
        print(format_margins(report))
        print(json.dumps(report.get("perplexity", {}), indent=2))
        return 0
    if cmd == "export":
        from training.export import export

        manifest = export(args.run, args.out, args.eval)
        print(
            f"exported {args.out}: {manifest['checkpoint_bytes'] / 1e6:.1f} MB, "
            f"{len(manifest['stages'])} stage(s), {manifest['tokens_seen']:,} tokens seen"
        )
        return 0
    if cmd == "default":
        from training.recipes import run_default

        work = args.work or f"runs/default-{args.scale}"
        run_default(
            args.scale, args.out, work, seed=args.seed, progress=not args.no_progress, resume=args.resume
        )
        return 0
    raise AssertionError(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
