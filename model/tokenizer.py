"""SentencePiece tokenizer with chat and reasoning special tokens.

The special tokens are SentencePiece *user-defined symbols*: the encoder never splits them, so the chat
template's structure does not depend on how text around it tokenizes. Byte fallback guarantees that any
UTF-8 text round-trips (unknown characters become byte pieces, never ``<unk>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from model import chat_template
from model.tokenizer_base import BaseTokenizer

SYSTEM, USER, ASSISTANT, END, THINK, THINK_END = (
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<think>",
    "</think>",
)
SPECIAL_TOKENS = [SYSTEM, USER, ASSISTANT, END, THINK, THINK_END]
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def train_tokenizer(
    text: Iterable[str] | Sequence[str | Path],
    model_prefix: str | Path,
    vocab_size: int = 8000,
    character_coverage: float = 0.9995,
    max_sentence_length: int = 8192,
    num_threads: int = 2,
    input_sentence_size: int = 2_000_000,
) -> Path:
    """Train a BPE SentencePiece model; returns the path of ``{model_prefix}.model``.

    ``text`` is either a list of file paths or an iterable of text lines (sentences).
    Digits are split one per token so arithmetic is learnable; normalisation is ``identity`` so decode(encode(x))
    returns x exactly (full-width characters stay full-width).
    """
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = dict(
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=character_coverage,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        user_defined_symbols=SPECIAL_TOKENS,
        pad_id=PAD_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        max_sentence_length=max_sentence_length,
        num_threads=num_threads,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    items = list(text) if not isinstance(text, list | tuple) else text
    if items and all(isinstance(t, Path) or (isinstance(t, str) and Path(t).is_file()) for t in items):
        spm.SentencePieceTrainer.train(input=[str(p) for p in items], **kwargs)
    else:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(items), **kwargs)
    return prefix.with_suffix(".model")


class Tokenizer(BaseTokenizer):
    """A SentencePiece ``tokenizer.model`` (the tokenizer our training pipeline writes)."""

    def __init__(self, model_file: str | Path, chat_template_text: str | None = None) -> None:
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.chat_template = chat_template_text or chat_template.DEFAULT_CHAT_TEMPLATE
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id, self.bos_id, self.eos_id = self.sp.pad_id(), self.sp.bos_id(), self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        self.special_ids = {
            i
            for i in range(self.vocab_size)
            if self.sp.is_control(i) or self.sp.id_to_piece(i) in SPECIAL_TOKENS
        }
        # A foreign tokenizer may lack our specials: fall back to eos so chat still ends.
        self.end_id = self.token_id(END) if self.token_id(END) is not None else self.eos_id
        self.think_id = self.token_id(THINK)
        self.think_end_id = self.token_id(THINK_END)
        self.stop_token_ids = sorted({i for i in (self.eos_id, self.end_id) if i is not None and i >= 0})
        self._byte_ids = [self.token_id(f"<0x{b:02X}>") for b in range(256)]
        # A tokenizer trained with a dummy prefix ("▁" before the first word) drops that space on decode.
        self.adds_dummy_prefix = self.sp.encode("a", out_type=str)[:1] == ["\u2581a"]
        self._token_bytes: dict[int, bytes] = {}
        self.special_token_strings = {
            name: self.sp.id_to_piece(i)
            for name, i in (
                ("bos_token", self.bos_id),
                ("eos_token", self.eos_id),
                ("pad_token", self.pad_id),
            )
            if i is not None and 0 <= i < self.vocab_size
        }

    @classmethod
    def from_directory(cls, directory: str | Path) -> Tokenizer:
        directory = Path(directory)
        template = None
        config_file = directory / "tokenizer_config.json"
        if config_file.exists():
            template = json.loads(config_file.read_text(encoding="utf-8")).get("chat_template")
        if (directory / "chat_template.jinja").exists():
            template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
        return cls(directory / "tokenizer.model", template)

    def token_id(self, piece: str) -> int | None:
        i = self.sp.piece_to_id(piece)
        return None if i == self.sp.unk_id() and piece != self.sp.id_to_piece(i) else i

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes a token stands for (a byte-fallback piece is a single, possibly partial, byte)."""
        cached = self._token_bytes.get(token_id)
        if cached is None:
            piece = self.sp.id_to_piece(token_id)
            if self.sp.is_byte(token_id):
                cached = bytes([int(piece[3:5], 16)])
            elif self.sp.is_unknown(token_id):
                cached = " \u2047 ".encode()  # what sp.decode writes for <unk>
            else:
                cached = piece.replace("\u2581", " ").encode()
            self._token_bytes[token_id] = cached
        return cached

    def encode(self, text: str) -> list[int]:
        """Encode plain text. A literal special-token string in the text is encoded as its bytes, so text
        from a user can never inject ``<|end|>`` or a role marker."""
        ids = self.sp.encode(text)
        if not self.special_ids.intersection(ids):
            return ids
        out: list[int] = []
        for i in ids:
            if i in self.special_ids and all(b is not None for b in self._byte_ids):
                out.extend(self._byte_ids[b] for b in self.sp.id_to_piece(i).encode("utf-8"))
            else:
                out.append(i)
        return out

    def encode_template_text(self, text: str) -> list[int]:
        """Encode text written by the template (special-token strings become special tokens)."""
        return self.sp.encode(text)

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        if skip_special:
            ids = [i for i in ids if i not in self.special_ids]
        return self.sp.decode(list(ids))
