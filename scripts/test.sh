#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine (Python 3.11 to 3.13), then run it.
#   ./scripts/test.sh                 # the CI suite (fast; slow tests excluded)
#   ./scripts/test.sh -m slow         # the long tests only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

# Debian packages: Prometheus' binaries (promtool, prometheus), docker-compose (offline validation of
# docker-compose.yml, no engine needed), redis-server and nginx (replicas behind a proxy,
# tests/deploy/test_scaleout.py) for the deploy tests, and the text
# corpora the training pipeline reads (fortunes in Chinese and English, WordNet glosses), and g++ for the
# int8 kernels (model/kernels/, compiled on first use).
APT_PACKAGES="prometheus docker-compose redis-server nginx fortunes-zh fortunes fortunes-min wordnet-base g++"
missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: $missing"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

. scripts/torch_index.sh
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
# torch is pinned in pyproject.toml; on Linux x86-64 the CPU build is chosen (scripts/torch_index.sh).
.venv/bin/python -m pip install -q $(torch_index_args .venv/bin/python) -e ".[dev]"
exec .venv/bin/python -m pytest "$@"
