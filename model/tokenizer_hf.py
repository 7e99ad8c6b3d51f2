"""A Hugging Face ``tokenizer.json`` (byte-level BPE as in GPT-2/Llama 3/SmolLM2, or SentencePiece-style
BPE with byte fallback as in Llama 2/Mistral), through the ``tokenizers`` library.

Special tokens and BOS/EOS come from ``tokenizer_config.json`` (then ``special_tokens_map.json``), the chat
template from ``chat_template.jinja`` or ``tokenizer_config.json``. User text is encoded with the library's
``encode_special_tokens`` switch on, so ``<|im_end|>`` typed by a user stays text. Each token's exact bytes are
computed once from the decoder the file declares, so a stream can be decoded byte by byte (a byte-level
token may hold half of a UTF-8 character; the incremental decoder waits for the rest).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as _LibTokenizer

from model import chat_template
from model.tokenizer import THINK, THINK_END
from model.tokenizer_base import BaseTokenizer

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters (what byte-level BPE vocabularies
    are written in): printable Latin-1 bytes stand for themselves, the rest are shifted past U+0100."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


def _token_string(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


def _decoder_steps(decoder: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not decoder:
        return []
    if decoder.get("type") == "Sequence":
        return [step for d in decoder.get("decoders", []) for step in _decoder_steps(d)]
    return [decoder]


class HFTokenizer(BaseTokenizer):
    """A ``tokenizer.json`` checkpoint tokenizer with the project's tokenizer interface."""

    def __init__(
        self,
        tokenizer_file: str | Path,
        tokenizer_config: dict[str, Any] | None = None,
        chat_template_text: str | None = None,
    ) -> None:
        self.tokenizer_file = Path(tokenizer_file)
        spec = json.loads(self.tokenizer_file.read_text(encoding="utf-8"))
        self._tok = _LibTokenizer.from_file(str(self.tokenizer_file))
        # A second instance for user text: special-token strings in it are split like any other text.
        self._plain = _LibTokenizer.from_file(str(self.tokenizer_file))
        self._plain.encode_special_tokens = True
        config = tokenizer_config or {}
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        added = spec.get("added_tokens") or []
        self.special_ids = {int(t["id"]) for t in added if t.get("special")}
        self.special_token_strings = {
            name: s for name in SPECIAL_TOKEN_NAMES if (s := _token_string(config.get(name))) is not None
        }
        self.bos_id = self._id_of(self.special_token_strings.get("bos_token"))
        self.eos_id = self._id_of(self.special_token_strings.get("eos_token"))
        self.pad_id = self._id_of(self.special_token_strings.get("pad_token"))
        self.end_id = self.eos_id
        self.think_id = self._id_of(THINK)
        self.think_end_id = self._id_of(THINK_END)
        self.stop_token_ids = [self.eos_id] if self.eos_id is not None else []
        self.chat_template = chat_template_text or chat_template.DEFAULT_CHAT_TEMPLATE
        # BOS before a raw prompt: tokenizer_config.json's add_bos_token, else what the post-processor adds.
        post = self._tok.encode("", add_special_tokens=True).ids
        self.add_bos = bool(
            config.get("add_bos_token", self.bos_id is not None and post[:1] == [self.bos_id])
        )
        self._build_token_bytes(spec)

    def _id_of(self, piece: str | None) -> int | None:
        return None if piece is None else self._tok.token_to_id(piece)

    def _build_token_bytes(self, spec: dict[str, Any]) -> None:
        steps = _decoder_steps(spec.get("decoder"))
        kinds = {step.get("type") for step in steps}
        byte_level = "ByteLevel" in kinds
        byte_fallback = "ByteFallback" in kinds
        replacements = [
            (step["pattern"].get("String"), step.get("content", ""))
            for step in steps
            if step.get("type") == "Replace" and isinstance(step.get("pattern"), dict)
        ]
        metaspace = next((step for step in steps if step.get("type") == "Metaspace"), None)
        if metaspace is not None:
            replacements.append((metaspace.get("replacement", "\u2581"), " "))
        strips = [step for step in steps if step.get("type") == "Strip" and step.get("start", 0) > 0]
        self.adds_dummy_prefix = bool(strips) or (
            metaspace is not None and metaspace.get("prepend_scheme", "always") != "never"
        )
        from_char = {c: b for b, c in byte_level_alphabet().items()}
        added = {int(t["id"]) for t in spec.get("added_tokens") or []}
        table: list[bytes] = []
        for i in range(self.vocab_size):
            piece = self._tok.id_to_token(i)
            if piece is None:
                table.append(b"")
            elif i in added:  # an added token is its literal content
                table.append(piece.encode("utf-8"))
            elif byte_level and all(c in from_char for c in piece):
                table.append(bytes(from_char[c] for c in piece))
            elif byte_fallback and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                table.append(bytes([int(piece[3:5], 16)]))
            else:
                for old, new in replacements:
                    if old:
                        piece = piece.replace(old, new)
                table.append(piece.encode("utf-8"))
        self._token_bytes = table

    @classmethod
    def from_directory(cls, directory: str | Path) -> HFTokenizer:
        directory = Path(directory)
        config = _read_json(directory / "special_tokens_map.json")
        config.update(_read_json(directory / "tokenizer_config.json"))
        template = config.get("chat_template")
        if isinstance(template, list):  # several named templates: the "default" one
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        if (directory / "chat_template.jinja").is_file():
            template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
        return cls(directory / "tokenizer.json", config, template if isinstance(template, str) else None)

    def token_id(self, piece: str) -> int | None:
        return self._tok.token_to_id(piece)

    def id_to_piece(self, token_id: int) -> str:
        return self._tok.id_to_token(token_id) or ""

    def token_bytes(self, token_id: int) -> bytes:
        return self._token_bytes[token_id]

    def encode(self, text: str) -> list[int]:
        """Encode user text: a special-token string in it is encoded as ordinary text."""
        return self._plain.encode(text, add_special_tokens=False).ids if text else []

    def encode_template_text(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids if text else []

    def encode_prompt(self, text: str) -> list[int]:
        ids = self.encode(text)
        return [self.bos_id, *ids] if self.add_bos and self.bos_id is not None else ids

    def encode_chat_segments(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[list[int], list[int]]:
        """As ``apply_chat_template`` tokenizes: the whole rendering at once, since byte-level BPE merges
        across the seams between template and content ("\\n" + " Hi" is one token). If a special token of
        that encoding lies inside a message's content (a user typed it), the content is encoded on its own
        as text instead, seam by seam."""
        segments = chat_template.render_segments(
            self.chat_template,
            messages,
            add_generation_prompt,
            reasoning,
            tools=tools,
            special_tokens=self.special_token_strings,
        )
        owner_at: list[int] = []
        for text, owner in segments:
            owner_at.extend([owner] * len(text))
        encoding = self._tok.encode("".join(text for text, _ in segments), add_special_tokens=False)
        owners = [owner_at[start] if start < len(owner_at) else -1 for start, _ in encoding.offsets]
        if not any(i in self.special_ids and o >= 0 for i, o in zip(encoding.ids, owners, strict=True)):
            return list(encoding.ids), owners
        return super().encode_chat_segments(messages, add_generation_prompt, reasoning, tools)

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ``ids`` as a stream writes it: bytes joined, an invalid or incomplete sequence dropped."""
        data = b"".join(
            self._token_bytes[i] for i in ids if not (skip_special and i in self.special_ids)
        ).decode("utf-8", errors="ignore")
        return data.removeprefix(" ") if self.adds_dummy_prefix else data
