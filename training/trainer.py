"""One trainer for every stage (pretrain, SFT, reasoning SFT): the stages differ only in data and config.

A step: for each of ``grad_accum`` micro-batches, forward, loss summed over the batch's target tokens and
divided by the target-token count of the whole global step (every micro-batch of every rank), backward;
then (with several processes) sum gradients over ranks, clip, AdamW step. Dividing by the global count
makes the step independent of how the global batch is split across micro-batches and processes.

Run directory::

    train_config.json   this config            model_config.json   the network's config (HF Llama names)
    tokenizer.model     copy of the tokenizer  checkpoint/state.pt latest training state (for --resume)
    metrics.jsonl       per-step metrics       loss.png            loss curves
    summary.json        final figures (steps, tokens, wall time, losses), read by export
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.checkpoint import load_checkpoint
from model.config import ModelConfig
from model.transformer import Transformer
from training.batches import IGNORE, open_batches, split_size
from training.distributed import DistInfo, all_reduce_gradients, all_reduce_sum, barrier, init_distributed
from training.metrics import MetricsLog, plot_losses
from training.optim import build_optimizer


@dataclass
class TrainConfig:
    """Everything that defines a run. Stages are presets of this (see ``training.recipes``)."""

    stage: str  # pretrain | sft | reasoning-sft (a label: the data decides what is trained on)
    data: str  # prepared data directory (with train/ and val/)
    out: str  # run directory
    tokenizer: str = ""  # tokenizer.model; default: the one the data was prepared with
    init_from: str = ""  # a run directory or an exported checkpoint to start from ("" = from scratch)
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields when training from scratch
    seq_len: int = 256
    batch_size: int = 16  # sequences per micro-batch, per process
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_interval: int = 200
    eval_batches: int = 20
    checkpoint_interval: int = 200
    log_interval: int = 1  # steps between metrics records (every step by default: ~150 bytes each)
    seed: int = 1234
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; weights and optimizer stay fp32)
    threads: int = 0  # torch threads per process; 0 = CPU cores / processes on this node
    progress: bool = True

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def resolve_precision(precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. ``auto`` picks bf16 where the CPU runs bf16 matmuls
    natively (AVX512-BF16/AMX: ~1.8x faster here), since fp32 master weights keep the updates exact enough."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    return (
        torch.bfloat16
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        else None
    )


def load_model_weights(path: str | Path) -> tuple[Transformer, Path]:
    """A model to start from: a run directory (its latest state) or an exported checkpoint directory.
    Returns the model and the tokenizer.model that belongs to it."""
    path = Path(path)
    state_file = path / "checkpoint" / "state.pt"
    if state_file.exists():
        config = ModelConfig.load(path / "model_config.json")
        model = Transformer(config)
        model.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=False)["model"])
        return model, path / "tokenizer.model"
    loaded = load_checkpoint(path)
    loaded.model.train()
    return loaded.model, path / "tokenizer.model"


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class Trainer:
    def __init__(self, config: TrainConfig, resume: bool = False, dist_info: DistInfo | None = None) -> None:
        self.cfg = config
        self.dist = dist_info or init_distributed()
        self.out = Path(config.out)
        self.amp_dtype = resolve_precision(config.precision)
        threads = config.threads or max(1, (os.cpu_count() or 1) // self.dist.local_world_size)
        torch.set_num_threads(threads)
        data_meta = json.loads((Path(config.data) / "meta.json").read_text(encoding="utf-8"))
        self.kind = data_meta["kind"]
        state_file = self.out / "checkpoint" / "state.pt"
        self.state: dict[str, Any] | None = None
        if resume and state_file.exists():
            self.state = torch.load(state_file, map_location="cpu", weights_only=False)
            saved = TrainConfig(**self.state["train_config"])
            for key in (
                "data",
                "seq_len",
                "batch_size",
                "grad_accum",
                "max_steps",
                "seed",
                "lr",
                "warmup_steps",
            ):
                if getattr(saved, key) != getattr(config, key):
                    raise ValueError(
                        f"cannot resume {self.out}: {key} changed ({getattr(saved, key)!r} -> "
                        f"{getattr(config, key)!r})"
                    )

        torch.manual_seed(config.seed)
        self.model, tokenizer_file = self._build_model(config, data_meta)
        self.tokenizer_file = Path(config.tokenizer) if config.tokenizer else tokenizer_file
        if self.model.config.vocab_size < data_meta["vocab_size"]:
            raise ValueError(
                f"model vocab {self.model.config.vocab_size} < tokenizer vocab {data_meta['vocab_size']}"
            )
        if self.model.config.max_position_embeddings < config.seq_len:
            raise ValueError("seq_len exceeds the model's max_position_embeddings")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer, self.scheduler = build_optimizer(
            self.model,
            config.lr,
            config.weight_decay,
            (config.beta1, config.beta2),
            config.warmup_steps,
            config.max_steps,
            config.min_lr_ratio,
        )
        self.train_data = open_batches(
            Path(config.data) / "train", config.seq_len, config.batch_size, config.seed
        )
        n_val = split_size(Path(config.data) / "val", config.seq_len)
        self.val_data = (
            open_batches(Path(config.data) / "val", config.seq_len, min(config.batch_size, n_val))
            if n_val
            else None
        )
        self.step, self.batches_consumed, self.tokens_seen, self.elapsed = 0, 0, 0, 0.0
        if self.state is not None:
            self.model.load_state_dict(self.state["model"])
            self.optimizer.load_state_dict(self.state["optimizer"])
            self.scheduler.load_state_dict(self.state["scheduler"])
            self.step = self.state["step"]
            self.batches_consumed = self.state["batches_consumed"]
            self.tokens_seen = self.state["tokens_seen"]
            self.elapsed = self.state["elapsed"]
            _set_rng_state(self.state["rng"])
        self.model.train()

    def _build_model(self, config: TrainConfig, data_meta: dict[str, Any]) -> tuple[torch.nn.Module, Path]:
        """The network to train and the tokenizer file it serves with. A subclass may bring another network
        (``training.lora``): the trainer needs ``model(ids) -> logits``, ``model.config`` with ``vocab_size``,
        ``max_position_embeddings``, ``pad_token_id`` and ``save(path)``, and ``model.num_parameters()``."""
        if config.init_from:
            return load_model_weights(config.init_from)
        if not (config.tokenizer or data_meta.get("tokenizer")):
            # Copy drills are token ids without text: the run still needs the tokenizer it will serve with.
            raise ValueError(f"{config.data} records no tokenizer: pass --tokenizer")
        return Transformer(ModelConfig(**config.model)), Path(config.tokenizer or data_meta["tokenizer"])

    # --- pieces of a step ---------------------------------------------------------------------------

    def _loss_sum(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            logits = self.model(inputs)
        # The softmax over the vocabulary runs in fp32 even under autocast: bf16 log-probs lose the small
        # differences late training depends on.
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )

    def _step_batches(self) -> list[int]:
        """Global batch indices of this step: micro-batch m of rank r is ``consumed + m * world + r``."""
        n = self.cfg.grad_accum * self.dist.world_size
        return list(range(self.batches_consumed, self.batches_consumed + n))

    def train_step(self) -> dict[str, float]:
        indices = self._step_batches()
        total_targets = max(1, sum(self.train_data.target_count(i) for i in indices))
        mine = indices[self.dist.rank :: self.dist.world_size]
        loss_sum, tokens = 0.0, 0
        for index in mine:
            inputs, targets = self.train_data.batch(index)
            loss = self._loss_sum(inputs, targets)
            (loss / total_targets).backward()
            loss_sum += float(loss.detach())
            tokens += int((inputs != self.model.config.pad_token_id).sum())
        if self.dist.enabled:
            all_reduce_gradients(self.params)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, tokens = all_reduce_sum([loss_sum, float(tokens)], self.dist)
        self.step += 1
        self.batches_consumed += len(indices)
        self.tokens_seen += int(tokens)
        return {"loss": loss_sum / total_targets, "lr": lr, "grad_norm": grad_norm, "tokens": int(tokens)}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss per target token over a fixed set of validation batches, shared across ranks."""
        if self.val_data is None:
            return {}
        self.model.eval()
        loss_sum, count = 0.0, 0
        for index in self.val_data.eval_batches(self.cfg.eval_batches)[
            self.dist.rank :: self.dist.world_size
        ]:
            inputs, targets = self.val_data.batch(index)
            loss_sum += float(self._loss_sum(inputs, targets))
            count += int((targets != IGNORE).sum())
        self.model.train()
        loss_sum, count = all_reduce_sum([loss_sum, float(count)], self.dist)
        if count == 0:
            return {}
        val_loss = loss_sum / count
        return {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0))}

    def save_state(self) -> None:
        """Write the full training state atomically (rank 0 only; all ranks hold the same state)."""
        if not self.dist.is_main:
            return
        directory = self.out / "checkpoint"
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "batches_consumed": self.batches_consumed,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "rng": _rng_state(),
            "train_config": asdict(self.cfg),
            "world_size": self.dist.world_size,
        }
        tmp = directory / "state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, directory / "state.pt")  # a crash mid-write never leaves a truncated state.pt

    # --- the loop ----------------------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.out / "train_config.json")
        self.model.config.save(self.out / "model_config.json")
        if self.tokenizer_file.resolve() != (self.out / "tokenizer.model").resolve():
            shutil.copyfile(self.tokenizer_file, self.out / "tokenizer.model")

    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train until ``max_steps`` (or until ``stop_after`` steps, as if interrupted); returns the summary."""
        cfg, main = self.cfg, self.dist.is_main
        self._prepare_run_dir()
        barrier(self.dist)
        log = (
            MetricsLog(self.out / "metrics.jsonl", resume_step=self.step if self.state else None)
            if main
            else None
        )
        end = min(cfg.max_steps, stop_after) if stop_after is not None else cfg.max_steps
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc=cfg.stage,
            unit="step",
            dynamic_ncols=True,
            disable=not (main and cfg.progress),
            mininterval=1.0,
        )
        last_eval: dict[str, float] = {}
        metrics: dict[str, Any] = {}
        window_tokens, window_start = 0, time.time()
        while self.step < end:
            t0 = time.time()
            metrics = self.train_step()
            self.elapsed += time.time() - t0
            window_tokens += metrics["tokens"]
            if self.step % cfg.log_interval == 0 or self.step == end:
                tok_s = window_tokens / max(1e-9, time.time() - window_start)
                window_tokens, window_start = 0, time.time()
                record = {
                    "step": self.step,
                    "loss": round(metrics["loss"], 5),
                    "lr": metrics["lr"],
                    "grad_norm": round(metrics["grad_norm"], 4),
                    "tokens_seen": self.tokens_seen,
                    "tokens_per_s": round(tok_s, 1),
                    "elapsed_s": round(self.elapsed, 2),
                }
                if log:
                    log.write(record)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{tok_s:,.0f}", refresh=False)
            if cfg.eval_interval and (self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps):
                last_eval = self.evaluate()
                if last_eval and log:
                    log.write({"step": self.step, **{k: round(v, 5) for k, v in last_eval.items()}})
                    bar.write(
                        f"[{cfg.stage}] step {self.step}: val loss {last_eval['val_loss']:.4f} "
                        f"ppl {last_eval['val_ppl']:.2f}"
                    )
            if cfg.checkpoint_interval and self.step % cfg.checkpoint_interval == 0 and self.step != end:
                self.save_state()
            bar.update(1)
        bar.close()
        self.save_state()
        barrier(self.dist)
        summary = self._summary(metrics, last_eval)
        summary["replica_digests"] = replica_digests(self.model, self.dist)
        if len(set(summary["replica_digests"])) > 1:
            raise RuntimeError(f"data-parallel replicas diverged: {summary['replica_digests']}")
        if main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            plot_losses(self.out / "metrics.jsonl", self.out / "loss.png", title=cfg.stage)
        return summary

    def _summary(self, last: dict[str, float], last_eval: dict[str, float]) -> dict[str, Any]:
        train_losses = [r["loss"] for r in _read_recent(self.out / "metrics.jsonl") if "loss" in r]
        return {
            "stage": self.cfg.stage,
            "step": self.step,
            "max_steps": self.cfg.max_steps,
            "finished": self.step >= self.cfg.max_steps,
            "tokens_seen": self.tokens_seen,
            "train_seconds": round(self.elapsed, 1),
            "world_size": self.dist.world_size,
            "parameters": self.model.num_parameters(),
            "precision": "bf16-autocast" if self.amp_dtype is not None else "fp32",
            # The mean of the last few logged losses: one micro-batch's loss is noisy.
            "final_train_loss": round(float(np.mean(train_losses[-5:])), 5)
            if train_losses
            else last.get("loss"),
            "final_val_loss": last_eval.get("val_loss"),
            "final_val_ppl": last_eval.get("val_ppl"),
            "data": self.cfg.data,
            "train_examples_or_windows": _size(self.train_data),
        }


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def replica_digests(model: torch.nn.Module, info: DistInfo) -> list[str]:
    """The weights digest of every rank (one entry when single-process). With data parallelism all ranks
    must hold identical weights; the trainer checks this at the end of every distributed run."""
    digest = weights_digest(model)
    if not info.enabled:
        return [digest]
    gathered: list[str | None] = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, digest)
    return [str(d) for d in gathered]


def _read_recent(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()[-50:] if x.strip()]


def _size(data: Any) -> int:
    return int(getattr(data, "n_examples", getattr(data, "n_windows", 0)))


def train(config: TrainConfig, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
    """Build a trainer for ``config`` and run it (the entry point of the pretrain/sft commands)."""
    return Trainer(config, resume=resume).fit(stop_after=stop_after)
