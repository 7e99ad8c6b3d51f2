"""A key/value cache preallocated for a fixed pool of sequence slots.

Layout ``[layers, slots, kv_heads, max_len, head_dim]``: one slot per running sequence, each with room for
the model's whole context, so admitting a request never allocates. The engine keeps the running slots
packed at the front (``0..n_active``) which lets every layer read its active rows as a view, not a copy.
"""

from __future__ import annotations

import torch

from model.config import ModelConfig


class KVCache:
    def __init__(
        self,
        config: ModelConfig,
        num_slots: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.num_slots = num_slots
        self.max_len = max_len or config.max_position_embeddings
        shape = (
            config.num_hidden_layers,
            num_slots,
            config.num_key_value_heads,
            self.max_len,
            config.head_dim,
        )
        self.k = torch.zeros(shape, dtype=dtype)
        self.v = torch.zeros(shape, dtype=dtype)

    def copy_slot(self, src: int, dst: int, length: int, start: int = 0) -> None:
        """Copy positions ``start .. length - 1`` of slot ``src`` into slot ``dst`` (forks, compaction, the
        prefix cache)."""
        self.k[:, dst, :, start:length] = self.k[:, src, :, start:length]
        self.v[:, dst, :, start:length] = self.v[:, src, :, start:length]

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2
