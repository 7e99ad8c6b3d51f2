"""INT8 linear layers for CPU serving whose rows do not influence each other.

Weights are int8 with one scale per output channel; activations are quantized on the fly with one scale
per row (per token), so a request's numbers never depend on what else shares the batch. The matmul is
fbgemm's dynamic int8 linear (``quantized::linear_dynamic``, VNNI on x86), which picks ONE activation
scale for the whole input from its min and max. To make that scale per row, every row is divided by its
own absolute maximum and a sentinel row holding exactly +1 and -1 is appended: the whole input then
always spans [-1, 1], fbgemm's scale is the same constant for every batch, and multiplying each output
row back by its maximum gives a per-row scale. Integer accumulation is exact, so a row's output is the
same bits alone or in any batch.

Seven bits per row are too coarse for models with activation outliers (SmolLM2-135M: one channel at 50-100x
the rest squeezes every other channel into a few levels; perplexity +17%). So each row is quantized twice:
the row itself, and its rounding residual (what fbgemm's grid lost, at most half a step) magnified by
``_RESIDUAL_GAIN``, as one extra row of the same call. The two outputs add up to the product with ~13-bit
activations. At one decode row the matmul is bound by reading the weights, which the extra row shares; a
prefill of many rows does twice the integer work.

``torch.ao.quantization.quantize_dynamic`` (the previous path) scaled activations over the whole batch:
one user's tokens changed another's.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

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

    def __init__(self, linear: nn.Linear, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        _use_fbgemm()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(1) / 127).clamp_min(1e-12).double()
        with (
            warnings.catch_warnings()
        ):  # the quantized-tensor API's deprecation notice: fbgemm needs it today
            warnings.simplefilter("ignore", UserWarning)
            qweight = torch.quantize_per_channel(
                weight, scale, torch.zeros(self.out_features, dtype=torch.long), 0, torch.qint8
            )
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
        sentinel = torch.zeros(1, self.in_features)
        sentinel[0, 0], sentinel[0, -1] = 1.0, -1.0
        self.register_buffer("_sentinel", sentinel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        peak = torch.linalg.vector_norm(rows, float("inf"), 1, True).clamp_min_(1e-30)
        unit = rows / peak
        if not self.residual:
            # reduce_range=True: fbgemm's 7-bit activations, which keep its int16 pair sums from saturating.
            out = _LINEAR_DYNAMIC(torch.cat([unit, self._sentinel]), self._packed, True)
            return out[:-1].mul_(peak).view(*x.shape[:-1], self.out_features)
        grid = (unit * _STEPS_PER_UNIT).round_().div_(_STEPS_PER_UNIT)
        lost = unit.sub(grid).mul_(_RESIDUAL_GAIN)
        out = _LINEAR_DYNAMIC(torch.cat([unit, lost, self._sentinel]), self._packed, True)
        n = rows.shape[0]
        return (
            out[:n]
            .add_(out[n : 2 * n], alpha=1 / _RESIDUAL_GAIN)
            .mul_(peak)
            .view(*x.shape[:-1], self.out_features)
        )

    def weight_bytes(self) -> int:
        return self.in_features * self.out_features

    def extra_repr(self) -> str:
        passes = "two passes" if self.residual else "one pass"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, {passes}"


def _replace_linears(module: nn.Module, residual: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, residual))
        else:
            _replace_linears(child, residual)


def quantize_int8(model: nn.Module, copy_model: bool = True, residual: bool = True) -> nn.Module:
    """Return a copy of ``model`` (or ``model`` itself, with ``copy_model=False``) with every ``nn.Linear``
    replaced by an :class:`Int8Linear`.

    The copy's q/k/v and gate/up projections are fused first: each int8 call quantizes its input again, so
    fewer, larger matmuls pay. Tied embeddings: lm_head gets an int8 copy, the float table stays for lookup."""
    if copy_model:
        model = copy.deepcopy(model)
    if hasattr(model, "fuse_projections"):
        model.fuse_projections()
    _replace_linears(model, residual)
    return model


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, Int8Linear) for m in model.modules())
