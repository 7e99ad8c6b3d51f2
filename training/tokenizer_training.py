"""Train the SentencePiece tokenizer on the same cleaned text the model will be trained on.

Inputs may be plain text, ``{"text"}`` JSONL, or instruction JSONL in any supported format (the
human-language fields are used; the template markers are reserved as special tokens anyway). The text is
cleaned exactly as the data step cleans it, so the vocabulary is learnt on what the model will see.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from model.tokenizer import train_tokenizer
from training.cleaning import CleaningConfig, TextCleaner
from training.data import read_text_documents
from training.formats import FormatError, read_jsonl, to_conversation


def iter_training_text(inputs: list[str | Path], cleaner: TextCleaner) -> Iterator[str]:
    """Cleaned texts of every input, whatever its format."""
    for path in inputs:
        path = Path(path)
        if path.suffix != ".jsonl":
            for raw in read_text_documents(path):
                text = cleaner(raw, str(path)) if isinstance(raw, bytes) else None
                if text:
                    yield text
            continue
        for _, record, error in read_jsonl(path):
            if error or not isinstance(record, dict):
                continue
            if isinstance(record.get("text"), str):
                text = cleaner(record["text"], str(path))
                if text:
                    yield text
                continue
            try:
                conv = to_conversation(record, str(path))
            except FormatError:
                continue
            for t in conv.texts():
                t = cleaner.clean_text(t)
                if t:
                    yield t


def train_from_inputs(
    inputs: list[str | Path],
    model_prefix: str | Path,
    vocab_size: int = 8000,
    max_lines: int = 1_000_000,
    character_coverage: float = 0.9995,
    seed: int = 0,
) -> dict:
    """Train ``{model_prefix}.model`` on (a seeded sample of up to ``max_lines`` lines of) ``inputs``."""
    cleaner = TextCleaner(CleaningConfig(dedup=True))
    lines = [
        line for text in iter_training_text(inputs, cleaner) for line in text.split("\n") if line.strip()
    ]
    if len(lines) > max_lines:
        lines = random.Random(seed).sample(lines, max_lines)
    if not lines:
        raise ValueError("no text to train the tokenizer on")
    try:
        path = train_tokenizer(
            lines, model_prefix, vocab_size=vocab_size, character_coverage=character_coverage
        )
    except RuntimeError as e:
        if "required_chars" in str(e):  # SentencePiece's own message is a C++ assertion
            raise ValueError(
                f"vocab_size {vocab_size} is smaller than the number of distinct characters the "
                f"text needs at character_coverage {character_coverage}; raise --vocab-size or "
                "lower --character-coverage (rarer characters then become byte tokens)"
            ) from e
        raise
    info = {
        "model": str(path),
        "vocab_size": vocab_size,
        "lines": len(lines),
        "chars": sum(len(x) for x in lines),
        "inputs": [str(p) for p in inputs],
    }
    Path(str(model_prefix) + ".json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return info
