"""Ingest, clean and tokenize training data once, into binary shards the trainer memory-maps.

Layout of a prepared data directory::

    meta.json              kind ("pretrain" | "sft"), token dtype, tokenizer, sources, split sizes
    report.json            the cleaning report (what was dropped and why, what was repaired)
    {train,val}/tokens.bin token ids, all documents/examples back to back (uint16, or uint32 for big vocabs)
    {train,val}/mask.bin   sft only: uint8 per token, 1 where the token is a training target
    {train,val}/offsets.npy int64 start of every document/example, plus the end (len = count + 1)

Pretraining documents are stored as ``ids + [eos]`` and read as a continuous stream; SFT examples keep
their boundaries so each one is trained from position 0, exactly as the model sees a prompt at inference.
The train/val split is decided by a hash of the cleaned text, so it is stable when sources are reordered
or extended.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.tokenizer import Tokenizer
from training.cleaning import CleaningConfig, CleaningReport, TextCleaner
from training.formats import Conversation, FormatError, read_jsonl, to_conversation

SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def is_val(text: str, val_fraction: float) -> bool:
    """Deterministic split: the same text always lands in the same split."""
    h = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
    return (h % 1_000_000) < val_fraction * 1_000_000


# --- reading raw sources ------------------------------------------------------------------------------


def read_text_documents(path: str | Path, split: str = "paragraph") -> Iterator[bytes | str]:
    """Documents of a text file as raw bytes (decoding is the cleaner's job, so bad bytes are counted).

    ``split``: ``paragraph`` (blank-line separated), ``line`` (one per line), ``file`` (whole file).
    A ``.jsonl`` file is read as one ``{"text": ...}`` document per line; a line that is not one is
    yielded as the ``str`` reason it failed (``invalid_json``, ``missing_field``, ...).
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        for _, record, error in read_jsonl(path):
            if error:
                yield error
            elif not isinstance(record, dict) or not isinstance(record.get("text"), str):
                yield "missing_field"
            else:
                yield record["text"].encode("utf-8")
        return
    data = path.read_bytes().replace(b"\r\n", b"\n")
    if split == "file":
        yield data
    elif split == "line":
        yield from (line for line in data.split(b"\n") if line.strip())
    elif split == "paragraph":
        paragraph: list[bytes] = []
        for line in data.split(b"\n"):
            if line.strip():
                paragraph.append(line)
            elif paragraph:
                yield b"\n".join(paragraph)
                paragraph = []
        if paragraph:
            yield b"\n".join(paragraph)
    else:
        raise ValueError(f"unknown split mode {split!r}")


def iter_text(
    paths: Iterable[str | Path], cleaner: TextCleaner, split: str = "paragraph"
) -> Iterator[tuple[str, str]]:
    """Cleaned (text, source) pairs of plain-text/``{"text"}`` inputs; drops are counted in the report."""
    for path in paths:
        for raw in read_text_documents(path, split):
            if isinstance(raw, str):  # a JSONL line that holds no document
                cleaner.report.seen += 1
                cleaner.report.drop(raw, str(path))
                continue
            text = cleaner(raw, source=str(path))
            if text is not None:
                yield text, str(path)


def iter_conversations(paths: Iterable[str | Path], cleaner: TextCleaner) -> Iterator[Conversation]:
    """Cleaned conversations from instruction JSONL files of any supported format."""
    report = cleaner.report
    for path in paths:
        source = str(path)
        for _, record, error in read_jsonl(path):
            report.seen += 1
            if error:
                report.drop(error, source)
                continue
            try:
                conv = to_conversation(record, source)
            except FormatError as e:
                report.drop(e.reason, source)
                continue
            for m in conv.messages:
                m["content"] = cleaner.clean_text(m["content"])
                if m.get("reasoning"):
                    m["reasoning"] = cleaner.clean_text(m["reasoning"])
            if any("\ufffd" in t for t in conv.texts()):
                report.drop("replacement_char", source)
                continue
            if any(m["role"] == "assistant" and not m["content"] for m in conv.messages):
                report.drop("empty", source)
                continue
            n_chars = sum(len(t) for t in conv.texts())
            reason = cleaner.length_problem(n_chars)
            if reason:
                report.drop(reason, source)
                continue
            if cleaner.config.dedup and cleaner.is_duplicate(conv.text_for_dedup()):
                report.drop("duplicate", source)
                continue
            report.keep(n_chars, source)
            yield conv


def encode_conversation(tokenizer: Tokenizer, conv: Conversation) -> tuple[list[int], list[int]]:
    """Token ids and loss mask of a conversation (the mask logic lives with the chat template, in model/).

    A chain of thought is supported on the last assistant turn (the reasoning format is a generation-time
    format: earlier turns of a conversation are shown to the model without their chains).
    """
    return tokenizer.encode_sft_example(*_chat_payload(conv))


def _chat_payload(conv: Conversation) -> tuple[list[dict[str, str]], str | None]:
    messages = [{"role": m["role"], "content": m["content"]} for m in conv.messages]
    return messages, conv.messages[-1].get("reasoning") or None


# Tokenization runs in worker processes (one Tokenizer each); cleaning and de-duplication stay in the
# parent, because duplicate detection needs one shared set of hashes.
_worker_tokenizer: Tokenizer | None = None


def _init_worker(tokenizer_path: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer(tokenizer_path)


def _encode_item(item: tuple[Any, Any]) -> tuple[list[int], list[int] | None, Any]:
    """item: (payload, tag). payload is a text (pretrain) or (messages, chain) (sft); tag passes through."""
    payload, tag = item
    tok = _worker_tokenizer
    assert tok is not None
    if isinstance(payload, str):
        return tok.encode(payload) + [tok.eos_id], None, tag
    ids, mask = tok.encode_sft_example(payload[0], reasoning_chain=payload[1])
    return ids, mask, tag


def encode_parallel(
    items: Iterable[tuple[Any, Any]], tokenizer_path: str | Path, workers: int
) -> Iterator[tuple[list[int], list[int] | None, Any]]:
    """Encode items in order, in ``workers`` processes (in this process when ``workers`` <= 1)."""
    if workers <= 1:
        _init_worker(str(tokenizer_path))
        yield from map(_encode_item, items)
        return
    with mp.get_context().Pool(workers, _init_worker, (str(tokenizer_path),)) as pool:
        yield from pool.imap(_encode_item, items, chunksize=64)


# --- writing shards -----------------------------------------------------------------------------------


class ShardWriter:
    """Appends token arrays (and masks) to one split's files; offsets are kept in memory (8 bytes/doc)."""

    def __init__(self, directory: Path, dtype: np.dtype, with_mask: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.dtype = dtype
        self._tokens = open(directory / "tokens.bin", "wb")  # noqa: SIM115 - closed in close()
        self._mask = open(directory / "mask.bin", "wb") if with_mask else None  # noqa: SIM115
        self.offsets = [0]
        self.target_tokens = 0

    def add(self, ids: list[int], mask: list[int] | None = None) -> None:
        self._tokens.write(np.asarray(ids, dtype=self.dtype).tobytes())
        if self._mask is not None:
            assert mask is not None and len(mask) == len(ids)
            self._mask.write(np.asarray(mask, dtype=np.uint8).tobytes())
            self.target_tokens += int(sum(mask))
        else:
            self.target_tokens += len(ids)
        self.offsets.append(self.offsets[-1] + len(ids))

    def close(self) -> dict[str, int]:
        self._tokens.close()
        if self._mask is not None:
            self._mask.close()
        np.save(self.directory / "offsets.npy", np.asarray(self.offsets, dtype=np.int64))
        return {
            "documents": len(self.offsets) - 1,
            "tokens": self.offsets[-1],
            "target_tokens": self.target_tokens,
        }


@dataclass
class PrepareResult:
    out_dir: Path
    meta: dict[str, Any]
    report: CleaningReport = field(repr=False)


def prepare(
    kind: str,
    inputs: list[str | Path],
    tokenizer_path: str | Path,
    out_dir: str | Path,
    cleaning: CleaningConfig | None = None,
    val_fraction: float = 0.02,
    max_tokens: int | None = None,
    split: str = "paragraph",
    workers: int = 0,
) -> PrepareResult:
    """Clean and tokenize ``inputs`` into ``out_dir``; ``kind`` is ``pretrain`` or ``sft``.

    ``max_tokens`` (sft) drops examples longer than the training context, counted as ``over_context``:
    training on an answer cut in half teaches the model to stop mid-sentence. ``workers``: tokenizer
    processes (0 = one per CPU core, at most 8).
    """
    if kind not in ("pretrain", "sft"):
        raise ValueError(f"kind must be 'pretrain' or 'sft', not {kind!r}")
    started = time.time()
    out_dir = Path(out_dir)
    tokenizer = Tokenizer(tokenizer_path)
    dtype = token_dtype(tokenizer.vocab_size)
    cleaner = TextCleaner(cleaning or CleaningConfig())
    writers = {s: ShardWriter(out_dir / s, dtype, with_mask=kind == "sft") for s in SPLITS}
    workers = workers or min(8, os.cpu_count() or 1)
    formats: dict[str, int] = {}
    if kind == "pretrain":
        texts = ((text, is_val(text, val_fraction)) for text, _ in iter_text(inputs, cleaner, split))
        for ids, _, val in encode_parallel(texts, tokenizer_path, workers):
            writers["val" if val else "train"].add(ids)
    else:
        convs = (
            (_chat_payload(c), (c.fmt, c.source, is_val(c.text_for_dedup(), val_fraction)))
            for c in iter_conversations(inputs, cleaner)
        )
        # The report is updated by the thread feeding the pool while this loop runs: collect this loop's
        # findings apart and merge them once the input is exhausted.
        over_context: list[str] = []
        per_format: list[tuple[str, str]] = []
        for ids, mask, (fmt, source, val) in encode_parallel(convs, tokenizer_path, workers):
            if max_tokens and len(ids) > max_tokens:
                over_context.append(source)
                continue
            per_format.append((fmt, source))
            writers["val" if val else "train"].add(ids, mask)
        for source in over_context:
            cleaner.report.kept -= 1
            cleaner.report.per_source[source]["kept"] -= 1
            cleaner.report.drop("over_context", source)
        for fmt, source in per_format:
            formats[fmt] = formats.get(fmt, 0) + 1
            cleaner.report.per_source[source][f"format:{fmt}"] += 1
    splits = {s: w.close() for s, w in writers.items()}
    report = cleaner.report
    meta = {
        "kind": kind,
        "dtype": dtype.name,
        "tokenizer": str(Path(tokenizer_path).resolve()),
        "tokenizer_sha256": hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest(),
        "vocab_size": tokenizer.vocab_size,
        "sources": [{"path": str(p), "bytes": Path(p).stat().st_size} for p in inputs],
        "splits": splits,
        "val_fraction": val_fraction,
        "cleaning": report.to_dict(),
        "seconds": round(time.time() - started, 2),
    }
    if kind == "sft":
        meta["formats"] = formats
    (out_dir / "meta.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    report.save(out_dir / "report.json")
    return PrepareResult(out_dir=out_dir, meta=meta, report=report)
