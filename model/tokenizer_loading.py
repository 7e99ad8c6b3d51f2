"""Pick a checkpoint's tokenizer by what its directory holds: ``tokenizer.json`` (Hugging Face
``tokenizers``) or ``tokenizer.model`` (SentencePiece). When both are there, ``tokenizer.json`` wins, as in
``transformers``' fast tokenizers: it carries the added tokens and the pre-tokenizer exactly."""

from __future__ import annotations

from pathlib import Path

from model.tokenizer import Tokenizer
from model.tokenizer_base import BaseTokenizer
from model.tokenizer_hf import HFTokenizer

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def tokenizer_file(directory: str | Path) -> Path | None:
    """The tokenizer file a checkpoint directory would be loaded from, or None."""
    for name in TOKENIZER_FILES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def load_tokenizer(directory: str | Path) -> BaseTokenizer:
    """The tokenizer of a checkpoint directory; FileNotFoundError when it holds none."""
    path = tokenizer_file(directory)
    if path is None:
        raise FileNotFoundError(f"{Path(directory)}: no tokenizer.json or tokenizer.model")
    if path.name == "tokenizer.json":
        return HFTokenizer.from_directory(directory)
    return Tokenizer.from_directory(directory)
