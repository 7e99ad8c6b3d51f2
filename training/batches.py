"""Batches from prepared shards, addressed by a global batch index.

Every batch is a pure function of (data, seed, batch index): the order within an epoch is a permutation
seeded by (seed, epoch). That one property gives us exact resume (the data position is just the number
of batches consumed) and data parallelism without a sampler (rank r of w takes batches r, r+w, ...).

Targets use -100 (PyTorch's ``ignore_index``) where no loss is taken: padding, and in SFT every token
that is not part of an assistant answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

IGNORE = -100


def _load_split(directory: Path) -> tuple[np.memmap, np.memmap | None, np.ndarray, dict]:
    meta = json.loads((directory.parent / "meta.json").read_text(encoding="utf-8"))
    offsets = np.load(directory / "offsets.npy")
    n = int(offsets[-1])
    tokens = np.memmap(directory / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r", shape=(n,))
    mask = None
    if meta["kind"] == "sft":
        mask = np.memmap(directory / "mask.bin", dtype=np.uint8, mode="r", shape=(n,))
    return tokens, mask, offsets, meta


class PretrainBatches:
    """Non-overlapping windows of ``seq_len + 1`` tokens over the document stream (documents end in eos)."""

    def __init__(self, directory: str | Path, seq_len: int, batch_size: int, seed: int = 0) -> None:
        self.tokens, _, _, self.meta = _load_split(Path(directory))
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.n_windows = (len(self.tokens) - 1) // seq_len
        if self.n_windows < batch_size:
            raise ValueError(
                f"{directory}: {len(self.tokens)} tokens make {self.n_windows} windows of {seq_len}; "
                f"a batch needs {batch_size} (use more data or a smaller batch/seq_len)"
            )
        self.batches_per_epoch = self.n_windows // batch_size
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _windows(self, index: int) -> np.ndarray:
        epoch, j = divmod(index, self.batches_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perm_epoch = epoch
        return self._perm[j * self.batch_size : (j + 1) * self.batch_size]

    def target_count(self, index: int) -> int:
        return self.batch_size * self.seq_len

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [
            np.asarray(self.tokens[w * self.seq_len : w * self.seq_len + self.seq_len + 1], dtype=np.int64)
            for w in self._windows(index)
        ]
        data = torch.from_numpy(np.stack(rows))
        return data[:, :-1], data[:, 1:].clone()

    def eval_batches(self, limit: int | None = None) -> list[int]:
        """Indices of the batches of epoch 0 to evaluate on (a fixed set, so val losses are comparable)."""
        n = self.batches_per_epoch
        return list(range(min(n, limit) if limit else n))


class SFTBatches:
    """Whole examples, each from position 0, batched with others of similar length to waste little padding.

    An epoch: a seeded permutation of the examples, cut into chunks of ``50 * batch_size``; each chunk is
    sorted by length and cut into batches, and the batches of the whole epoch are shuffled again so that
    lengths do not correlate with time. Examples longer than ``seq_len + 1`` tokens are truncated (the data
    step already drops those that exceed the context, so this only bites if ``seq_len`` is set lower).
    """

    def __init__(
        self, directory: str | Path, seq_len: int, batch_size: int, seed: int = 0, pad_id: int = 0
    ) -> None:
        self.tokens, self.mask, self.offsets, self.meta = _load_split(Path(directory))
        self.seq_len, self.batch_size, self.seed, self.pad_id = seq_len, batch_size, seed, pad_id
        self.n_examples = len(self.offsets) - 1
        if self.n_examples < batch_size:
            raise ValueError(f"{directory}: {self.n_examples} examples, fewer than one batch of {batch_size}")
        self.lengths = np.minimum(np.diff(self.offsets), seq_len + 1)
        # Targets of example i: mask at positions 1..len-1 (the first token is never predicted).
        starts, ends = self.offsets[:-1], self.offsets[:-1] + self.lengths
        cum = np.concatenate([[0], np.cumsum(np.asarray(self.mask, dtype=np.int64))])
        self.targets = cum[ends] - cum[starts + 1]
        self.batches_per_epoch = self.n_examples // batch_size
        self._plan_epoch, self._plan = -1, np.empty((0, batch_size), dtype=np.int64)

    def _epoch_plan(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_examples)[: self.batches_per_epoch * self.batch_size]
        chunk = 50 * self.batch_size
        pieces = []
        for c in range(0, len(order), chunk):
            part = order[c : c + chunk]
            pieces.append(part[np.argsort(self.lengths[part], kind="stable")])
        batches = np.concatenate(pieces).reshape(-1, self.batch_size)
        return batches[rng.permutation(len(batches))]

    def _examples(self, index: int) -> np.ndarray:
        epoch, j = divmod(index, self.batches_per_epoch)
        if epoch != self._plan_epoch:
            self._plan, self._plan_epoch = self._epoch_plan(epoch), epoch
        return self._plan[j]

    def target_count(self, index: int) -> int:
        return int(self.targets[self._examples(index)].sum())

    def batch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        examples = self._examples(index)
        # Widths rounded up to a multiple of 16: a few dozen distinct shapes instead of hundreds, so the CPU
        # kernels' per-shape caches (oneDNN under bf16 autocast) stop growing the process's memory. Right
        # padding is masked out of the loss and, with causal attention, never changes the real tokens.
        width = (
            min(-(-(int(self.lengths[examples].max()) - 1) // 16) * 16, self.seq_len) + 1
        )  # inputs: width - 1
        ids = np.full((len(examples), width), self.pad_id, dtype=np.int64)
        targets = np.full((len(examples), width), IGNORE, dtype=np.int64)
        for row, e in enumerate(examples):
            start, n = int(self.offsets[e]), int(self.lengths[e])
            seq = np.asarray(self.tokens[start : start + n], dtype=np.int64)
            ids[row, :n] = seq
            targets[row, :n] = np.where(np.asarray(self.mask[start : start + n]) > 0, seq, IGNORE)
        ids_t, targets_t = torch.from_numpy(ids), torch.from_numpy(targets)
        return ids_t[:, :-1], targets_t[:, 1:].clone()

    def eval_batches(self, limit: int | None = None) -> list[int]:
        n = self.batches_per_epoch
        return list(range(min(n, limit) if limit else n))


def split_size(directory: str | Path, seq_len: int) -> int:
    """How many windows (pretrain) or examples (sft) a split holds; 0 when it is empty or missing."""
    directory = Path(directory)
    if not (directory / "offsets.npy").exists():
        return 0
    offsets = np.load(directory / "offsets.npy")
    kind = json.loads((directory.parent / "meta.json").read_text(encoding="utf-8"))["kind"]
    return max(0, (int(offsets[-1]) - 1) // seq_len) if kind == "pretrain" else len(offsets) - 1


def open_batches(
    directory: str | Path, seq_len: int, batch_size: int, seed: int = 0, pad_id: int = 0
) -> PretrainBatches | SFTBatches:
    """Batches for a split directory (``data/train``), of the kind its ``meta.json`` records."""
    kind = json.loads((Path(directory).parent / "meta.json").read_text(encoding="utf-8"))["kind"]
    if kind == "pretrain":
        return PretrainBatches(directory, seq_len, batch_size, seed)
    return SFTBatches(directory, seq_len, batch_size, seed, pad_id)
