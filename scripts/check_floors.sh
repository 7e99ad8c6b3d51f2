#!/usr/bin/env bash
# Are the dependency floors in pyproject.toml real? Installs the LOWEST version of every runtime dependency
# that pyproject.toml allows (">=X" installed as "==X") into a temporary virtual environment, then starts the
# server on the shipped checkpoint and exercises it (scripts/smoke_server.py). A floor below what the code
# uses fails here instead of on a user's machine with an older resolver.
#   ./scripts/check_floors.sh                          # PYTHON=python3.13 ... for another Python
#   ./scripts/check_floors.sh tests/server/test_http.py   # then also run these tests against the floors
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
. scripts/torch_index.sh

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PYTHON" -m venv "$WORK/venv"
VENV_PY="$WORK/venv/bin/python"

# name==floor for every runtime dependency (torch keeps its exact pin).
FLOORS=$("$VENV_PY" - <<'PY'
import re, tomllib
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    name, op, version = re.match(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*(==|>=)\s*([^,;\s]+)", dep).groups()
    print(f"{name}=={version}")
PY
)
echo "floors: $(echo $FLOORS)"
"$VENV_PY" -m pip install -q $(torch_index_args "$VENV_PY") $FLOORS
"$VENV_PY" -m pip install -q --no-deps .
"$VENV_PY" -m pip check
"$VENV_PY" -m pip freeze | tr '_' '-' | grep -i -E "^($(echo $FLOORS | sed 's/==[^ ]*//g; s/ /|/g; s/_/-/g'))==" | sed 's/^/installed: /'
"$VENV_PY" scripts/smoke_server.py
if [ $# -gt 0 ]; then
  # The test tools, with the runtime dependencies held at their floors.
  printf '%s\n' $FLOORS > "$WORK/floors.txt"
  "$VENV_PY" -m pip install -q $(torch_index_args "$VENV_PY") -c "$WORK/floors.txt" pytest pytest-timeout httpx openai pyyaml
  "$VENV_PY" -m pytest -q -p no:cacheprovider "$@"
fi
echo "check_floors: the lowest allowed versions install and serve on $("$VENV_PY" --version)"
