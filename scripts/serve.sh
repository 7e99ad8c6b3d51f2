#!/usr/bin/env bash
# Install TinyLLM on a fresh machine (Python 3.11) and serve the shipped checkpoint on port 8000.
#   ./scripts/serve.sh                      # extra arguments go to `tinyllm serve`, e.g. --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q -e .
if [ -z "${TINYLLM_API_KEYS:-}${TINYLLM_API_KEYS_FILE:-}" ]; then
  export TINYLLM_API_KEYS=sk-tinyllm-dev
  echo "TINYLLM_API_KEYS is not set: using the development key 'sk-tinyllm-dev' (set your own for anything real)" >&2
fi
exec .venv/bin/tinyllm serve "$@"
