"""``tinyllm serve ...`` starts the API server; ``import-gguf``, ``export-gguf`` and ``pull`` move models in
and out; every other subcommand belongs to the training pipeline.

The packages are imported lazily so ``tinyllm serve`` never loads training code and vice versa.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """usage: tinyllm <command> [options]

commands:
  serve        start the OpenAI-compatible API server (tinyllm serve --help)
  pull         download a known model (smollm2), import and cache it; prints its directory
  import-gguf  convert a GGUF file into a checkpoint directory (tinyllm import-gguf FILE OUT_DIR)
  export-gguf  write a checkpoint directory as a GGUF file (tinyllm export-gguf DIR OUT [--type q8_0])
  <training>   data, tokenizer, pretrain, sft, reasoning-sft, eval, export, default, ...
               (tinyllm train --help lists them; also python -m training)
"""

MODEL_COMMANDS = ("pull", "import-gguf", "export-gguf")


def _model_command(args: list[str]) -> int:
    from model.checkpoint import CheckpointError

    parser = argparse.ArgumentParser(prog=f"tinyllm {args[0]}")
    if args[0] == "pull":
        from tinyllm.pull import KNOWN_MODELS, PullError, pull

        parser.add_argument("name", choices=sorted(KNOWN_MODELS), help="the model to fetch")
        parser.add_argument("--cache-dir", type=Path, help="default: $TINYLLM_CACHE_DIR or ~/.cache/tinyllm")
        ns = parser.parse_args(args[1:])
        try:
            print(pull(ns.name, ns.cache_dir))
        except (PullError, CheckpointError, OSError) as e:
            print(f"tinyllm pull: {e}", file=sys.stderr)
            return 1
        return 0
    if args[0] == "import-gguf":
        from model.gguf_import import import_gguf

        parser.add_argument("file", type=Path, help="a GGUF file (llama architecture)")
        parser.add_argument("out_dir", type=Path, help="the checkpoint directory to write")
        ns = parser.parse_args(args[1:])
        try:
            print(import_gguf(ns.file, ns.out_dir))
        except (CheckpointError, OSError) as e:
            print(f"tinyllm import-gguf: {e}", file=sys.stderr)
            return 1
        return 0
    from model.gguf_export import export_gguf

    parser.add_argument("directory", type=Path, help="a checkpoint directory")
    parser.add_argument("out", type=Path, help="the GGUF file to write")
    parser.add_argument("--type", choices=("f16", "q8_0"), default="f16", help="tensor type (default f16)")
    ns = parser.parse_args(args[1:])
    try:
        print(export_gguf(ns.directory, ns.out, ns.type))
    except (CheckpointError, OSError) as e:
        print(f"tinyllm export-gguf: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "serve":
        from server.cli import serve

        return serve(args[1:])
    if args[0] in MODEL_COMMANDS:
        return _model_command(args)
    from training.cli import main as training_main

    return training_main(args[1:] if args[0] == "train" else args)


if __name__ == "__main__":
    sys.exit(main())
