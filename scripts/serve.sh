#!/usr/bin/env bash
# Install TinyLLM on a fresh machine (Python 3.11 to 3.13) and serve the shipped checkpoint on port 8000.
# On Linux x86-64 torch comes as the CPU build (scripts/torch_index.sh), with no setting needed.
#   ./scripts/serve.sh                      # extra arguments go to `tinyllm serve`, e.g. --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
# The int8 kernels (model/kernels/) compile on the first start (~1 minute, then cached): they need g++.
# Without it the server still runs, on fbgemm's slower int8 path (one log line says so).
if ! command -v c++ >/dev/null && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing g++ for the int8 kernels" >&2
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends g++ >/dev/null || true
fi
. scripts/torch_index.sh
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q $(torch_index_args .venv/bin/python) -e .
if [ -z "${TINYLLM_API_KEYS:-}${TINYLLM_API_KEYS_FILE:-}" ]; then
  export TINYLLM_API_KEYS=sk-tinyllm-dev
  echo "TINYLLM_API_KEYS is not set: using the development key 'sk-tinyllm-dev' (set your own for anything real)" >&2
fi
exec .venv/bin/tinyllm serve "$@"
