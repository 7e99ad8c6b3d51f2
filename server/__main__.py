"""``python -m server [flags]``: the same as ``tinyllm serve [flags]``."""

import sys

from server.cli import serve

sys.exit(serve())
