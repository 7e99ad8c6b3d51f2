"""INT8 linear layers for CPU serving whose rows do not influence each other.

Weights are int8 with one scale per output channel; activations are quantized on the fly with one scale
per row (per token), so a request's numbers never depend on what else shares the batch.

Two kernels compute the same scheme:

* ``model/kernels/int8_linear.cpp`` (:mod:`model.native`), ours, AVX2, used wherever it builds: one
  call quantizes every row on its own to 7-bit integers plus a second 7-bit row for its rounding residual
  (~13-bit activations: SmolLM2-135M has activation outliers at 50-100x the other channels, and 7 bits alone
  cost it +17% perplexity) and runs exact integer dot products. One decode row costs what reading the
  weights costs: 19 us for a 576x960 layer here where fbgemm takes 226 us and an fp32 matmul 67 us.
* fbgemm's dynamic linear (``quantized::linear_dynamic``), the fallback where the kernel cannot be built.
  It picks ONE activation scale for the whole input from its min and max, so every row is divided by its own
  absolute maximum and a sentinel row holding exactly +1 and -1 is appended: the input then always spans
  [-1, 1], fbgemm's scale is the same constant for every batch, and multiplying each output row back by its
  maximum gives a per-row scale. The residual rides along as extra rows of the same call.

Integer accumulation is exact, so either way a row's output is the same bits alone or in any batch (the two
kernels round differently from each other, so one server uses one of them throughout).

``torch.ao.quantization.quantize_dynamic`` (the path before these) scaled activations over the whole
batch: one user's tokens changed another's.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from model.native import FusedDecoderLayers, load_kernel, pack_weight, pad_channels

# The resolved overload: calling the packet resolves it again on every call (~2% of a c=1 decode step).
_LINEAR_DYNAMIC = torch.ops.quantized.linear_dynamic.default
# fbgemm's 7-bit grid over the sentinel's [-1, 1]: 127 steps, so a value x lands on round(x * 63.5) / 63.5.
_STEPS_PER_UNIT = 63.5
# The residual is at most half a step (1/127); x63 keeps it inside [-1, 1] even if fbgemm rounded a tie the
# other way (a whole step), so the sentinel still fixes the scale.
_RESIDUAL_GAIN = 63.0


def _use_fbgemm() -> None:
    if "fbgemm" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "fbgemm"


class Int8Linear(nn.Module):
    """An inference-only replacement for ``nn.Linear``: int8 weights per output channel, int8 activations
    with a scale per row (see the module docstring). ``residual=False``: one pass, 7-bit activations."""

    def __init__(self, linear: nn.Linear, residual: bool = True, kernel: str = "auto") -> None:
        """``kernel``: "auto" (ours where it builds, else fbgemm) or "fbgemm"."""
        super().__init__()
        self.residual = residual
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(1) / 127).clamp_min(1e-12)  # per output channel, both kernels
        bias = None if linear.bias is None else linear.bias.detach().float().contiguous()
        if kernel not in ("auto", "fbgemm"):
            raise ValueError(f"kernel must be 'auto' or 'fbgemm', not {kernel!r}")
        module = load_kernel() if kernel == "auto" else None
        # The function, not the module: a builtin function survives copy.deepcopy of the layer.
        self._kernel = None if module is None else module.int8_linear
        if self._kernel is not None:
            qweight = torch.round(weight / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            self.register_buffer("_packed_weight", pack_weight(qweight), persistent=False)
            self.register_buffer(
                "_column_sums", pad_channels(qweight.sum(1, dtype=torch.int32)), persistent=False
            )
            self.register_buffer("_scales", pad_channels(scale), persistent=False)
            self.register_buffer("_bias", bias, persistent=False)
            return
        _use_fbgemm()
        with (
            warnings.catch_warnings()
        ):  # the quantized-tensor API's deprecation notice: fbgemm needs it today
            warnings.simplefilter("ignore", UserWarning)
            qweight = torch.quantize_per_channel(
                weight, scale.double(), torch.zeros(self.out_features, dtype=torch.long), 0, torch.qint8
            )
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        sentinel = torch.zeros(1, self.in_features)
        sentinel[0, 0], sentinel[0, -1] = 1.0, -1.0
        self.register_buffer("_sentinel", sentinel, persistent=False)

    @property
    def kernel_name(self) -> str:
        return "avx2" if self._kernel is not None else "fbgemm"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._kernel is not None:  # any leading shape: the kernel flattens it (no Python-side views)
            if x.dtype != torch.float32:
                x = x.float()
            return self._kernel(
                x,
                self._packed_weight,
                self._column_sums,
                self._scales,
                self._bias,
                self.out_features,
                self.residual,
            )
        rows = x.reshape(-1, self.in_features)
        return self._forward_fbgemm(rows).view(*x.shape[:-1], self.out_features)

    def _forward_fbgemm(self, rows: torch.Tensor) -> torch.Tensor:
        peak = torch.linalg.vector_norm(rows, float("inf"), 1, True).clamp_min_(1e-30)
        unit = rows / peak
        if not self.residual:
            # reduce_range=True: fbgemm's 7-bit activations, which keep its int16 pair sums from saturating.
            return _LINEAR_DYNAMIC(torch.cat([unit, self._sentinel]), self._packed, True)[:-1].mul_(peak)
        grid = (unit * _STEPS_PER_UNIT).round_().div_(_STEPS_PER_UNIT)
        lost = unit.sub(grid).mul_(_RESIDUAL_GAIN)
        out = _LINEAR_DYNAMIC(torch.cat([unit, lost, self._sentinel]), self._packed, True)
        n = rows.shape[0]
        return out[:n].add_(out[n : 2 * n], alpha=1 / _RESIDUAL_GAIN).mul_(peak)

    def weight_bytes(self) -> int:
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        passes = "two passes" if self.residual else "one pass"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, int8, {passes}, "
            f"{self.kernel_name}"
        )


def _replace_linears(module: nn.Module, residual: bool, kernel: str) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, residual, kernel))
        else:
            _replace_linears(child, residual, kernel)


def quantize_int8(
    model: nn.Module, copy_model: bool = True, residual: bool = True, kernel: str = "auto"
) -> nn.Module:
    """Return a copy of ``model`` (or ``model`` itself, with ``copy_model=False``) with every ``nn.Linear``
    replaced by an :class:`Int8Linear` (``kernel``: "auto" = ours where it builds, or "fbgemm").

    The copy's q/k/v and gate/up projections are fused first: each int8 call quantizes its input again, so
    fewer, larger matmuls pay. Tied embeddings: lm_head gets an int8 copy, the float table stays for lookup."""
    if copy_model:
        model = copy.deepcopy(model)
    if hasattr(model, "fuse_projections"):
        model.fuse_projections()
    _replace_linears(model, residual, kernel)
    module = load_kernel() if kernel == "auto" else None
    if module is not None and FusedDecoderLayers.supports(model):
        model.fused_layers = FusedDecoderLayers(module, model)
    return model


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in model.modules())
