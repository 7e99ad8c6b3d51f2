"""Optimizer and learning-rate schedule.

AdamW with decoupled weight decay on the matrices of the linear layers only. No decay on:

* norm gains: decaying them pulls every layer's scale toward zero, which the next step undoes;
* the embedding table (tied to the output head): AdamW's decay shrinks *every* row every step, but a row
  only gets gradient when its token appears, so rare tokens (most Chinese characters, byte pieces) would
  decay toward zero between sightings. GPT-2/nanoGPT and Llama recipes make the same choice.

Schedule: linear warm-up from ~0 to the peak learning rate, then cosine decay to ``min_lr`` at the last
step. It is a pure function of the step, held by a ``LambdaLR`` so its state saves with the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class WarmupCosine:
    """Multiplier of the peak LR at ``step`` (0-based optimizer steps)."""

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: linear-layer matrices (decayed) and everything else (norms, embeddings)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for p in model.parameters():
        if id(p) in seen or not p.requires_grad:
            continue  # tied weights appear once
        seen.add(id(p))
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)
    schedule = WarmupCosine(warmup_steps, total_steps, min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
