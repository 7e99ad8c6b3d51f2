"""``tinyllm serve ...`` starts the API server; every other subcommand belongs to the training pipeline.

The two packages are imported lazily so ``tinyllm serve`` never loads training code and vice versa.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: tinyllm <command> [options]

commands:
  serve        start the OpenAI-compatible API server (tinyllm serve --help)
  <training>   data, tokenizer, pretrain, sft, reasoning-sft, eval, export, default, ...
               (tinyllm train --help lists them; also python -m training)
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "serve":
        from server.cli import serve

        return serve(args[1:])
    from training.cli import main as training_main

    return training_main(args[1:] if args[0] == "train" else args)


if __name__ == "__main__":
    sys.exit(main())
