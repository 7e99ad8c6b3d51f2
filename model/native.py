"""The C++ kernels of ``model/kernels/`` (the int8 matmul, the int8 decoder loop, the top-k/top-p draw):
built on first use or loaded prebuilt, the int8 weight packing, and the fallback.

They are compiled with ``torch.utils.cpp_extension`` (a C++ compiler and ``ninja`` at run time; the
build is cached under ``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``, so only the
first start of a machine pays ~1 minute). ``TINYLLM_NATIVE_PATH`` names an already built
``tinyllm_native*.so`` instead (the Docker image builds it at image build time and has no compiler). Where
they cannot be had (no compiler, no AVX2, or ``TINYLLM_NATIVE=off``) :func:`load_kernel` returns None
and the callers use their Python paths (fbgemm for int8), after one log line saying why.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger("tinyllm.native")

SOURCES = [
    Path(__file__).with_name("kernels") / name
    for name in ("module.cpp", "int8_linear.cpp", "decoder_layers.cpp", "sampling.cpp")
]
# The environment variables this module reads (not server settings: the model layer reads them itself).
ENVIRONMENT = ("TINYLLM_NATIVE", "TINYLLM_NATIVE_PATH")
LANES, GROUP = 8, 4  # output channels per block, inputs per lane (the kernel's weight layout)
# The flags pin the ISA the code is written for (not -march=native: the cache may move between machines)
# and keep the float epilogue free of compiler-chosen contractions, so every tile rounds the same way.
CFLAGS = ["-O3", "-mavx2", "-mfma", "-ffp-contract=off", "-fopenmp"]


def _unavailable_reason() -> str | None:
    choice = os.environ.get("TINYLLM_NATIVE", "auto")
    if choice not in ("auto", "off"):
        return f"TINYLLM_NATIVE={choice!r} is not one of auto, off"
    if choice == "off":
        return "TINYLLM_NATIVE=off"
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return f"the CPU has no AVX2 ({torch.backends.cpu.get_cpu_capability()})"
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler (install g++)"
    if shutil.which("ninja") is None and not _ninja_in_venv():
        return "no ninja (pip install ninja)"
    return None


def _ninja_in_venv() -> bool:
    try:
        import ninja  # noqa: F401
    except ImportError:
        return False
    return True


def _load_prebuilt(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("tinyllm_native", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def load_kernel() -> ModuleType | None:
    """The compiled kernel module, or None (logged once) where it cannot be used here."""
    prebuilt = os.environ.get("TINYLLM_NATIVE_PATH")
    if prebuilt and os.environ.get("TINYLLM_NATIVE", "auto") != "off":
        try:
            return _load_prebuilt(prebuilt)
        except Exception as e:
            log.warning("C++ kernels: TINYLLM_NATIVE_PATH=%s does not load (%s); building them", prebuilt, e)
    reason = _unavailable_reason()
    if reason is None:
        try:
            from torch.utils import cpp_extension

            if shutil.which("ninja") is None:  # the pip package's binary, not on PATH inside a venv
                import ninja

                os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
            return cpp_extension.load(
                name="tinyllm_native",
                sources=[str(path) for path in SOURCES],
                extra_include_paths=[str(SOURCES[0].parent)],
                extra_cflags=CFLAGS,
                extra_ldflags=["-fopenmp"],
                verbose=False,
            )
        except Exception as e:  # a broken toolchain must not stop the server: fbgemm still works
            reason = f"building it failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}"
    log.warning("C++ kernels unavailable, using the Python paths (fbgemm for int8): %s", reason)
    return None


def pack_weight(qweight: torch.Tensor) -> torch.Tensor:
    """int8 [N, K] -> the kernel's layout [ceil(N/8), ceil(K/4), 32]: blocks of 8 output channels, each a run
    of 4-input groups for all 8 channels (zero-padded)."""
    n, k = qweight.shape
    n_pad, k_pad = -n % LANES, -k % GROUP
    w = torch.nn.functional.pad(qweight, (0, k_pad, 0, n_pad))
    blocks, steps = w.shape[0] // LANES, w.shape[1] // GROUP
    return (
        w.view(blocks, LANES, steps, GROUP)
        .permute(0, 2, 1, 3)
        .reshape(blocks, steps, LANES * GROUP)
        .contiguous()
    )


def pad_channels(values: torch.Tensor, multiple: int = LANES) -> torch.Tensor:
    return torch.nn.functional.pad(values, (0, -values.shape[0] % multiple)).contiguous()


class FusedDecoderLayers:
    """Every decoder layer of ``Transformer.forward_cached`` in one C++ call (``decoder_layers.cpp``), and
    the final norm with the vocabulary projection in another: the same computation as the Python loop
    without its per-operation interpreter cost. Built by :func:`model.quantization.quantize_int8` when every
    projection runs on this kernel."""

    def __init__(self, kernel: ModuleType, model: torch.nn.Module) -> None:
        self._run, self._linear = kernel.decoder_layers, kernel.int8_linear
        config = model.config
        self._shape = (config.num_attention_heads, config.num_key_value_heads, config.head_dim)
        self._eps = float(config.rms_norm_eps)
        self._head = model.lm_head
        self._weights: list[torch.Tensor] = []
        self._widths: list[int] = []
        for layer in model.layers:
            for linear in _projections(layer):
                self._weights += [linear._packed_weight, linear._column_sums, linear._scales]
                self._widths.append(linear.out_features)
        self._residual = self._head.residual

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        """The serving layout (norms folded, paired rotary, fused projections), every projection bias-free
        and on this kernel, all with the same activation passes."""
        if not hasattr(model, "layers") or not hasattr(getattr(model, "rope", None), "turns"):
            return False
        norms = [model.norm] + [
            n for layer in model.layers for n in (layer.input_layernorm, layer.post_attention_layernorm)
        ]
        if any(norm.weight is not None for norm in norms):
            return False
        if not all(
            hasattr(layer.self_attn, "qkv_proj") and hasattr(layer.mlp, "gate_up_proj")
            for layer in model.layers
        ):
            return False
        linears = [model.lm_head] + [linear for layer in model.layers for linear in _projections(layer)]
        return (
            all(getattr(linear, "kernel_name", None) == "avx2" and linear._bias is None for linear in linears)
            and len({linear.residual for linear in linears}) == 1
        )

    def __call__(self, x, rotary, positions, cache, first_slot: int, bias=None) -> torch.Tensor:
        """``bias``: the attention mask of a prefill; a decode step (one token per row) needs none."""
        heads, kv_heads, head_dim = self._shape
        return self._run(
            x if x.dtype == torch.float32 else x.float(),
            rotary,
            positions,
            cache.k,
            cache.v,
            first_slot,
            bias,
            self._weights,
            self._widths,
            heads,
            kv_heads,
            head_dim,
            self._eps,
            self._residual,
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm and the vocabulary projection in one kernel call."""
        head = self._head
        return self._linear(
            x,
            head._packed_weight,
            head._column_sums,
            head._scales,
            None,
            head.out_features,
            head.residual,
            self._eps,
        )


def _projections(layer: torch.nn.Module) -> tuple[torch.nn.Module, ...]:
    attention, mlp = layer.self_attn, layer.mlp
    return attention.qkv_proj, attention.o_proj, mlp.gate_up_proj, mlp.down_proj
