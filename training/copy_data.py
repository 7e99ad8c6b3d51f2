"""Copy drills: runs of random tokens written twice, the loss on the repeat only.

Nothing but the context predicts a random token, so the only way to lower that loss is to find the earlier
occurrence of the current token and copy what followed it: the two-head circuit called an induction head (a
head that writes each token's predecessor into its position, and a later head that matches the current
token against those and copies the next one).

Why they exist: the probability chains need that circuit to look a count up in the question (which count
belongs to the asked colour), and the default model does not grow it from our pretraining corpus or from
reasoning SFT (copy score 0 % in every such run). A model trained on these drills from scratch does grow it
(`python -m training copy`); for the default shape, how fast depends on the size of its token table, and
pretraining on text afterwards undid what 1,000 steps had formed (README, "The shipped checkpoint"). So
they are a tool for those experiments, not part of the default recipe.

The drills are written as an ``sft``-kind data directory (tokens plus a loss mask), so the ordinary trainer
and batches read them; no tokenizer is needed, only its vocabulary size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.data import SPLITS, ShardWriter, token_dtype


def first_ordinary_id(vocab_size: int) -> int:
    """Token ids below this are left out of the drills: the reserved and special pieces and the 256
    byte-fallback pieces (ids 0-265 of our tokenizers), which real text rarely shows in runs. A toy
    vocabulary too small for that layout skips its first tenth."""
    return 266 if vocab_size > 2 * 266 else max(1, vocab_size // 10)


def drill(
    rng: np.random.Generator, vocab_size: int, min_run: int, max_run: int, token_pool: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One example: (token ids, loss mask). A run of ``min_run``..``max_run`` random ordinary tokens, then
    the run again from a random point in its first half; the mask marks the repeat's tokens after its first
    (the first repeated token cannot be known: the repeat may start anywhere)."""
    low = first_ordinary_id(vocab_size)
    high = vocab_size if token_pool is None else min(vocab_size, low + token_pool)
    length = int(rng.integers(min_run, max_run + 1))
    run = rng.integers(low, high, size=length)
    start = int(rng.integers(0, length // 2 + 1))
    ids = np.concatenate([run, run[start:]])
    mask = np.zeros(len(ids), dtype=np.uint8)
    mask[length + 1 :] = 1
    return ids, mask


def write_copy_data(
    out_dir: str | Path,
    vocab_size: int,
    n_train: int,
    n_val: int = 256,
    seed: int = 0,
    min_run: int = 10,
    max_run: int = 40,
    token_pool: int | None = None,
) -> dict[str, Any]:
    """Write ``n_train`` + ``n_val`` drills as a prepared ``sft`` data directory; returns its meta.

    ``token_pool``: draw tokens from this many ids only (``None``: the whole ordinary vocabulary)."""
    if max_run < min_run or min_run < 2:
        raise ValueError("need 2 <= min_run <= max_run")
    if token_pool is not None and token_pool < 2:
        raise ValueError(f"token_pool must be at least 2 ids, got {token_pool}")
    if vocab_size - first_ordinary_id(vocab_size) < 2:
        raise ValueError(f"vocab_size {vocab_size} leaves fewer than 2 ids to draw from")
    out_dir = Path(out_dir)
    dtype = token_dtype(vocab_size)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in zip(SPLITS, (n_train, n_val), strict=True):
        writer = ShardWriter(out_dir / split, dtype, with_mask=True)
        for _ in range(n):
            ids, mask = drill(rng, vocab_size, min_run, max_run, token_pool)
            writer.add(ids.tolist(), mask.tolist())
        splits[split] = writer.close()
    # "sources" as `training.data.prepare` writes it, so the manifest and model card name the generator.
    sources = [{"path": "training/copy_data.py", "bytes": (out_dir / "train" / "tokens.bin").stat().st_size}]
    meta = {
        "kind": "sft",
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "sources": sources,
        "splits": splits,
        "seed": seed,
        "min_run": min_run,
        "max_run": max_run,
        "token_pool": token_pool,
        "cleaning": {"dropped": {}},
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
