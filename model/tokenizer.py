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


class Tokenizer:
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

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        return chat_template.render(self.chat_template, messages, add_generation_prompt, reasoning, tools)

    def encode_chat(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:
        return self.encode_chat_segments(messages, add_generation_prompt, reasoning, tools)[0]

    def encode_chat_segments(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[list[int], list[int]]:
        """Token ids of a rendered conversation and, per token, the index of the message whose content it
        belongs to (-1 for template tokens). Training uses the owners to build the assistant-only loss mask."""
        ids: list[int] = []
        owners: list[int] = []
        for text, owner in chat_template.render_segments(
            self.chat_template, messages, add_generation_prompt, reasoning, tools
        ):
            piece = self.encode(text) if owner >= 0 else self.encode_template_text(text)
            ids.extend(piece)
            owners.extend([owner] * len(piece))
        return ids, owners

    def encode_sft_example(
        self, messages: Sequence[dict[str, Any]], reasoning_chain: str | None = None
    ) -> tuple[list[int], list[int]]:
        """Token ids of a training conversation and its loss mask (1 = a token the model learns to write).

        The mask covers every assistant message's content and the ``<|end|>`` that closes it, never the
        system/user text or the template. With ``reasoning_chain`` the last (assistant) message is the final
        answer and is written in reasoning format, exactly as generated at inference time:
        ``<|assistant|><think>`` (prompt) then ``\\n{chain}\\n</think>\\n{final}<|end|>`` (target).
        """
        if reasoning_chain is None:
            ids, owners = self.encode_chat_segments(messages, add_generation_prompt=False)
            return ids, self._assistant_mask(messages, ids, owners)
        if not messages or messages[-1]["role"] != "assistant" or self.think_end_id is None:
            raise ValueError(
                "a reasoning example needs a final assistant message and a tokenizer with </think>"
            )
        ids, owners = self.encode_chat_segments(messages[:-1], add_generation_prompt=True, reasoning=True)
        mask = self._assistant_mask(messages[:-1], ids, owners)
        final = chat_template.message_text(messages[-1]["content"])
        target = (
            self.encode("\n" + reasoning_chain + "\n")
            + [self.think_end_id]
            + self.encode("\n" + final)
            + [self.end_id]
        )
        tail = self.encode_template_text("\n")
        return ids + target + tail, mask + [1] * len(target) + [0] * len(tail)

    def _assistant_mask(
        self, messages: Sequence[dict[str, Any]], ids: list[int], owners: list[int]
    ) -> list[int]:
        is_assistant = [m["role"] == "assistant" for m in messages]
        mask = [1 if o >= 0 and is_assistant[o] else 0 for o in owners]
        for i in range(1, len(ids)):  # the <|end|> closing an assistant message is part of its target
            if ids[i] == self.end_id and owners[i] < 0 and owners[i - 1] >= 0 and is_assistant[owners[i - 1]]:
                mask[i] = 1
        return mask
