# Sourced by serve.sh, test.sh and check_floors.sh: where pip should find torch.
#
# pyproject.toml pins torch==X. On Linux x86-64, PyPI's wheel of it is the CUDA build (several GB of NVIDIA
# libraries a CPU server never loads); PyTorch's CPU index has "X+cpu", which also satisfies the pin and which
# pip prefers when both are offered (a local version label sorts above the bare version). So there, unless
# torch X is already installed or a wheel of it is already at hand (pip's find-links or a local mirror),
# torch_index_args prints the --extra-index-url that offers the CPU wheel. Elsewhere (macOS, Linux on ARM)
# PyPI's wheel is CPU-only and nothing is added. Set TINYLLM_TORCH_INDEX=none to never add it.
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

torch_index_args() {  # usage: pip install $(torch_index_args PYTHON) ...
  local python=$1 pin
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || return 0
  [ "${TINYLLM_TORCH_INDEX:-}" != "none" ] || return 0
  pin=$(sed -n 's/^[[:space:]]*"\(torch==[^"]*\)".*/\1/p' pyproject.toml | head -n 1)
  [ -n "$pin" ] || return 0
  # Already installed at the pinned version (any build): nothing to fetch.
  if "$python" -c "import sys, importlib.metadata as m; sys.exit(m.version('torch').split('+')[0] != '${pin#torch==}')" \
      2>/dev/null; then
    return 0
  fi
  # A wheel of it at hand without asking any remote index (pip's find-links, a file:// mirror).
  if "$python" -m pip install --dry-run --quiet --no-deps --no-index "$pin" >/dev/null 2>&1; then
    return 0
  fi
  echo "torch: $pin from the CPU wheel index ($TORCH_CPU_INDEX)" >&2
  echo "--extra-index-url $TORCH_CPU_INDEX"
}
