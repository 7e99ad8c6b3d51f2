"""A sequence's tokens as a sparse row: the ids it has met and a number per id, for the penalties.

A sequence meets a few hundred of a vocabulary's tens of thousands of tokens, so the penalties touch those
entries of its logits row, not the whole row. The ids and values live in growing numpy buffers (appending
costs a slot write, not a list-to-tensor conversion per step), and a whole batch's tallies become one set of
index arrays for a single indexed op over the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch


class TokenTally:
    """Distinct token ids in the order first met, each with a value (a count, or 1 for "seen")."""

    __slots__ = ("ids", "values", "size", "_slot")

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self.ids = np.empty(64, dtype=np.int64)
        self.values = np.empty(64, dtype=np.float32)
        self.size = 0
        self._slot: dict[int, int] = {}
        for token_id in ids:
            self.add(token_id)

    def __len__(self) -> int:
        return self.size

    def add(self, token_id: int, amount: float = 1.0) -> None:
        """Count ``token_id`` once more (its value grows by ``amount``; a new id starts at ``amount``)."""
        slot = self._slot.get(token_id)
        if slot is not None:
            self.values[slot] += amount
            return
        if self.size == len(self.ids):
            self.ids = np.resize(self.ids, 2 * self.size)
            self.values = np.resize(self.values, 2 * self.size)
        self.ids[self.size], self.values[self.size] = token_id, amount
        self._slot[token_id] = self.size
        self.size += 1


def batch_entries(
    rows: Sequence[int],
    tallies: Sequence[TokenTally],
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, value) index tensors of every tally's entries, value = tally value * scale + offset
    per row (the tally's value where neither is given): the arguments of one ``index_put_`` (or gather)
    over the batch."""
    sizes = np.array([t.size for t in tallies])
    cols = np.concatenate([t.ids[: t.size] for t in tallies])
    values = np.concatenate([t.values[: t.size] for t in tallies])
    if scales is not None:
        values = values * np.repeat(np.asarray(scales, dtype=np.float32), sizes)
    if offsets is not None:
        values += np.repeat(np.asarray(offsets, dtype=np.float32), sizes)
    return (
        torch.from_numpy(np.repeat(np.asarray(rows, dtype=np.int64), sizes)),
        torch.from_numpy(cols),
        torch.from_numpy(values.astype(np.float32, copy=False)),
    )
