"""Data parallelism across processes started by ``torchrun`` (gloo backend, so it works on CPU).

We all-reduce gradients by hand instead of wrapping the model in DistributedDataParallel. With the loss
of every micro-batch already divided by the number of target tokens of the *whole* global batch (all
ranks, all accumulation steps), the sum of the ranks' gradients is exactly the gradient a single process
would compute on the global batch. Every rank then takes the same optimizer step from the same summed
gradient, so the replicas stay identical without ever broadcasting weights. One flat buffer per
all-reduce keeps the number of messages at one per step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1), else run single-process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
    )


def shutdown_distributed(synchronize: bool = False) -> None:
    """Leave the process group. ``synchronize`` (after a run that finished on every rank): wait for the
    others first. A rank that tore gloo down while a peer was still finishing its last collective aborted
    now and then ("terminate called without an active exception"); after a failure, do not wait (the
    peer may be gone, and the barrier would hang)."""
    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum gradients over ranks in place (one flat all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a few scalars over ranks (losses, token counts); identity when single-process."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
