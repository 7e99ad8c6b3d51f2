"""Vocabularies between GGUF metadata and our tokenizers, both ways.

GGUF stores a tokenizer as ``tokenizer.ggml.*`` fields: the model kind (``gpt2`` = byte-level BPE with
merges, ``llama`` = SentencePiece pieces with scores), the token strings and types, the merges, the
pre-tokenizer name (``tokenizer.ggml.pre``, which selects llama.cpp's splitting regex) and the special ids.

* :func:`tokenizer_json_from_gguf` builds a Hugging Face ``tokenizer.json`` (and the ``tokenizer_config``
  fields) from those fields, for both kinds, so an imported checkpoint loads in :class:`model.tokenizer_hf.HFTokenizer` and
  in ``transformers``.
* :func:`gguf_vocab_fields` goes the other way for :mod:`model.gguf_export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from model.tokenizer import Tokenizer as SentencePieceTokenizer
from model.tokenizer_base import BaseTokenizer
from model.tokenizer_hf import HFTokenizer

# llama.cpp's token types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def _byte_level_pre_tokenizer(pre: str) -> tuple[Any, bool]:
    """The tokenizers pre-tokenizer for a ``tokenizer.ggml.pre`` name, and whether BPE ignores merges for
    whole words (Llama 3). ValueError for a name whose regex we do not know."""
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("default", "gpt2", "gpt-2", ""):
        return byte_level, False
    if pre == "smollm":  # GPT-2's split with every digit on its own
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]), False
    if pre in ("llama-bpe", "llama3"):
        split = pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated", invert=False)
        no_regex = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        return pre_tokenizers.Sequence([split, no_regex]), True
    raise ValueError(f"tokenizer.ggml.pre {pre!r} is not supported (default, gpt2, smollm, llama-bpe)")


@dataclass
class ImportedVocab:
    tokenizer_json: str
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    bos_id: int | None = None
    eos_id: int | None = None


def tokenizer_json_from_gguf(meta: dict[str, Any]) -> ImportedVocab:
    """A ``tokenizer.json`` from the ``tokenizer.ggml.*`` fields of ``meta`` (field name -> value).
    ValueError naming the field for what cannot be converted."""
    kind = meta.get("tokenizer.ggml.model")
    if kind not in ("gpt2", "llama"):
        raise ValueError(
            f"tokenizer.ggml.model {kind!r} is not supported (byte-level BPE 'gpt2' or SentencePiece 'llama')"
        )
    tokens: list[str] = list(meta.get("tokenizer.ggml.tokens") or [])
    if not tokens:
        raise ValueError("tokenizer.ggml.tokens is missing or empty")
    types: list[int] = list(meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    vocab = {t: i for i, t in enumerate(tokens)}
    if kind == "gpt2":
        merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges") or []]
        pre_tokenizer, ignore_merges = _byte_level_pre_tokenizer(
            str(meta.get("tokenizer.ggml.pre", "default"))
        )
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges, fuse_unk=False))
        tok.pre_tokenizer = pre_tokenizer
        tok.decoder = decoders.ByteLevel()
    else:
        tok = _sentencepiece_bpe(meta, tokens, types, vocab)
    specials = [i for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)]
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in specials])

    def token_at(key: str) -> str | None:
        i = meta.get(key)
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else None

    bos, eos = token_at("tokenizer.ggml.bos_token_id"), token_at("tokenizer.ggml.eos_token_id")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    elif kind == "gpt2":
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(meta.get("context_length") or 0) or None,
    }
    for name, key in (
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ):
        if (value := token_at(key)) is not None:
            config[name] = value
    if isinstance(meta.get("tokenizer.chat_template"), str):
        config["chat_template"] = meta["tokenizer.chat_template"]
    config = {k: v for k, v in config.items() if v is not None}
    return ImportedVocab(
        tokenizer_json=tok.to_str(pretty=False),
        tokenizer_config=config,
        bos_id=vocab.get(bos) if bos else None,
        eos_id=vocab.get(eos) if eos else None,
    )


def _sentencepiece_bpe(meta: dict[str, Any], tokens: list[str], types: list[int], vocab: dict[str, int]):
    """A SentencePiece BPE vocabulary (pieces with scores, "▁" for spaces, byte pieces for the rest) as a
    tokenizers BPE with byte fallback. The merges are not stored: a merge of two pieces ranks as the score
    of the piece it makes, as transformers' SentencePiece converter derives them."""
    scores = list(meta.get("tokenizer.ggml.scores") or [0.0] * len(tokens))
    mergeable = {t: i for i, t in enumerate(tokens) if types[i] == NORMAL}
    merges: list[tuple[str, str, float, int, int]] = []
    for piece, i in mergeable.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                merges.append((left, right, scores[i], mergeable[left], mergeable[right]))
    merges.sort(key=lambda m: (-m[2], m[3], m[4]))
    unk = next((tokens[i] for i, t in enumerate(types) if t == UNKNOWN), None)
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=[(m[0], m[1]) for m in merges],
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
    steps = [normalizers.Prepend("\u2581")] if prefix else []
    tok.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "\u2581")])
    tail = [decoders.Strip(" ", 1, 0)] if prefix else []
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), *tail]
    )
    return tok


@dataclass
class ExportedVocab:
    model: str  # tokenizer.ggml.model
    pre: str | None
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None
    add_space_prefix: bool = False
    add_bos: bool = False


def _hf_pre_name(spec: dict[str, Any]) -> str:
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    raise ValueError(f"pre_tokenizer {kinds} has no llama.cpp equivalent (ByteLevel, or Digits + ByteLevel)")


def gguf_vocab_fields(tokenizer: BaseTokenizer) -> ExportedVocab:
    """The GGUF vocabulary of one of our tokenizers (SentencePiece -> ``llama``, byte-level BPE ->
    ``gpt2``); ValueError for a tokenizer.json that llama.cpp could not reproduce."""
    if isinstance(tokenizer, SentencePieceTokenizer):
        sp = tokenizer.sp
        tokens, types, scores = [], [], []
        for i in range(sp.get_piece_size()):
            tokens.append(sp.id_to_piece(i))
            scores.append(float(sp.get_score(i)))
            if sp.is_unknown(i):
                types.append(UNKNOWN)
            elif sp.is_control(i):
                types.append(CONTROL)
            elif sp.is_byte(i):
                types.append(BYTE)
            elif sp.is_unused(i):
                types.append(UNUSED)
            elif i in tokenizer.special_ids:
                types.append(USER_DEFINED)
            else:
                types.append(NORMAL)
        return ExportedVocab(
            "llama", "default", tokens, types, scores=scores, add_space_prefix=tokenizer.adds_dummy_prefix
        )
    if isinstance(tokenizer, HFTokenizer):
        spec = json.loads(Path(tokenizer.tokenizer_file).read_text(encoding="utf-8"))
        model = spec.get("model") or {}
        decoder_kind = (spec.get("decoder") or {}).get("type")
        if model.get("type") != "BPE" or decoder_kind != "ByteLevel":
            raise ValueError(
                f"{tokenizer.tokenizer_file}: only byte-level BPE tokenizer.json files export to GGUF "
                f"(model {model.get('type')!r}, decoder {decoder_kind!r})"
            )
        tokens = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
        added = {int(t["id"]): t for t in spec.get("added_tokens") or []}
        types = [
            (CONTROL if added[i].get("special") else USER_DEFINED) if i in added else NORMAL
            for i in range(len(tokens))
        ]
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
        return ExportedVocab(
            "gpt2", _hf_pre_name(spec), tokens, types, merges=merges, add_bos=tokenizer.add_bos
        )
    raise ValueError(f"no GGUF vocabulary for {type(tokenizer).__name__}")
