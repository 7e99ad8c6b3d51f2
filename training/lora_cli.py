"""``python -m training lora``, ``lora-merge`` and ``lora-export``: the command line of ``training.lora``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.reasoning_problems import SPOKEN_SHARE

# The trainer's options this command exposes. Defaults: the 2-hour SmolLM2 recipe (docs/training.md): 200
# steps of 8 examples, ~340k tokens at the ~50 tokens/s measured on this shared 2-core machine.
TRAIN_DEFAULTS: dict[str, int | float | str] = {
    "seq_len": 384,
    "batch_size": 8,
    "grad_accum": 1,
    "max_steps": 200,
    "lr": 1e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "eval_interval": 50,
    "eval_batches": 8,
    "checkpoint_interval": 25,
    "seed": 1234,
    "precision": "auto",
    "threads": 0,
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lora",
        help="fine-tune a pretrained HF Llama (SmolLM2) with LoRA on reasoning + chat data",
        description="Prepare reasoning (+ chat) examples in the base's chat template (OUT/data, unless "
        "--data is given), train LoRA adapters on every linear layer of the blocks (or all weights with "
        "--full) with the project's trainer, write OUT/adapter and, with --merge, a servable checkpoint.",
    )
    p.add_argument("--base", default=None, help="base checkpoint directory (default: `tinyllm pull smollm2`)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--data", default=None, help="prepared data directory (default: OUT/data, made here)")
    p.add_argument("--n-reasoning", type=int, default=2000, help="reasoning examples to prepare")
    p.add_argument("--n-chat", type=int, default=200, help="chat examples to prepare")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument(
        "--hard-share",
        type=float,
        default=None,
        help="share of reasoning problems from the hard stratum (default: easy and hard alternate)",
    )
    p.add_argument(
        "--expression-share",
        type=float,
        default=None,
        help="share of reasoning problems that are bare expressions, in symbols or words "
        "(default: the generator's kind weights)",
    )
    p.add_argument(
        "--spoken-share",
        type=float,
        default=SPOKEN_SHARE,
        help=f"of the bare expressions, the share asked in words (default {SPOKEN_SHARE})",
    )
    p.add_argument(
        "--word-share",
        type=float,
        default=None,
        help="share of reasoning problems that are word problems (default: the generator's kind weights)",
    )
    p.add_argument(
        "--story-share",
        type=float,
        default=0.0,
        help="of the word problems, the share composed from parts (training.reasoning_story), whose chain "
        "translates the story into one expression (default 0: the scenarios' templates only)",
    )
    p.add_argument(
        "--plain-share",
        type=float,
        default=0.0,
        help="share of reasoning problems answered without a chain, "
        'after an empty one: what reasoning_effort "none" asks (chat answers then start with it too)',
    )
    p.add_argument("--rank", type=int, default=16, help="LoRA rank r")
    p.add_argument("--alpha", type=int, default=32, help="LoRA alpha (scale alpha/r)")
    p.add_argument("--dropout", type=float, default=0.0, help="LoRA dropout")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="frozen base weights (LoRA)")
    p.add_argument("--merge", default=None, metavar="OUT_DIR", help="then write the merged checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint/state.pt (exactly)")
    p.add_argument("--stop-after", type=int, default=None, help="stop (and checkpoint) after this many steps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, default in TRAIN_DEFAULTS.items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)

    p = sub.add_parser(
        "lora-merge",
        help="base + adapter -> a servable checkpoint directory",
        description="Fetch the base (`tinyllm pull smollm2`, unless --base is given), fold the adapter "
        "into its weights and write a checkpoint directory the server and transformers load.",
    )
    p.add_argument(
        "--adapter",
        required=True,
        nargs="+",
        help="adapter directory (adapter_config.json + safetensors); several are folded in in order",
    )
    p.add_argument("--out", required=True, help="output checkpoint directory")
    p.add_argument("--base", default=None, help="base checkpoint directory (default: `tinyllm pull smollm2`)")
    p.add_argument("--reasoning-effort", default="low", help="the checkpoint's default reasoning_effort")

    p = sub.add_parser(
        "lora-export",
        help="a LoRA adapter with bf16 weights, for shipping",
        description="Copy an adapter with its weights in bf16 (half the bytes; merged logits move ~0.004).",
    )
    p.add_argument("--adapter", required=True, help="adapter directory (adapter_config.json + safetensors)")
    p.add_argument("--out", required=True, help="output adapter directory")


def run(args: argparse.Namespace) -> int:
    from training.lora import base_directory, export_adapter, merge

    if args.command == "lora-export":
        print(export_adapter(args.adapter, args.out))
        return 0
    base = base_directory(args.base)
    if args.command == "lora-merge":
        print(merge(base, args.adapter, args.out, args.reasoning_effort))
        return 0
    from training.lora import LoraOptions, prepare_data, train_lora
    from training.trainer import TrainConfig

    data = Path(args.data) if args.data else Path(args.out) / "data"
    if not (data / "meta.json").is_file():
        meta = prepare_data(
            base,
            data,
            args.n_reasoning,
            args.n_chat,
            seed=args.data_seed,
            hard_share=args.hard_share,
            plain_share=args.plain_share,
            expression_share=args.expression_share,
            spoken_share=args.spoken_share,
            word_share=args.word_share,
            story_share=args.story_share,
        )
        print(f"prepared {data}: " + json.dumps(meta["splits"]))
    config = TrainConfig(
        stage="lora",
        data=str(data),
        out=args.out,
        progress=not args.no_progress,
        **{name: getattr(args, name) for name in TRAIN_DEFAULTS},
    )
    options = LoraOptions(str(base), args.rank, args.alpha, args.dropout, args.full, args.dtype)
    summary = train_lora(config, options, resume=args.resume, stop_after=args.stop_after)
    print(json.dumps(summary, indent=2))
    if args.merge:
        print(merge(base, summary["adapter"], args.merge))
    return 0
