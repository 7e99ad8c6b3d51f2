"""Grammar-constrained decoding: a :class:`~model.sampling.TokenConstraint` from a JSON schema or a
structural tag, computed by xgrammar.

Why xgrammar: measured on this CPU (``benchmarks/bench_grammar_engines.py``, docs/structured-outputs.md) it
computes a JSON-schema mask in ~5-15 us per row with our 6k SentencePiece vocabulary and a 49k byte-level BPE,
where llguidance took 40-200 us and outlines-core 10-80 us (and seconds to compile a schema on 49k). It
precompiles each schema's token masks (tens of ms, cached by schema), so a decode step only looks them up.

The grammar sees every token as the UTF-8 bytes it stands for (``VocabType.RAW``), which works the same for
a SentencePiece model (byte-fallback pieces are single bytes) and a ``tokenizer.json`` byte-level BPE.
Special tokens (roles, markers) are never part of a grammar's text; the tokenizer's stop tokens end a
sequence once the grammar is complete.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import xgrammar

from model.sampling import TokenConstraint

_CONTROL = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


class GrammarVocabulary(Protocol):
    """What a tokenizer provides for grammars (our SentencePiece ``Tokenizer`` and ``tokenizer.json`` one)."""

    vocab_size: int
    special_ids: set[int]
    stop_token_ids: list[int]

    def token_bytes(self, token_id: int) -> bytes: ...


class GrammarError(ValueError):
    """The grammar engine refused a schema or a structural tag (the message says why)."""


@dataclass(frozen=True)
class Grammar:
    """A compiled grammar and its source (``kind`` "json" or "tag", the JSON text), which is how it is
    compiled again in the engine process."""

    kind: str
    text: str
    compiled: xgrammar.CompiledGrammar


class GrammarCompiler:
    """Compiles grammars for one tokenizer's vocabulary; compiled grammars are cached by their source."""

    def __init__(
        self, vocabulary: GrammarVocabulary, vocab_size: int | None = None, threads: int = 2
    ) -> None:
        size = vocab_size or vocabulary.vocab_size
        # Specials as empty strings: xgrammar treats those as special tokens and never puts them in text.
        # <unk> too: it decodes to a placeholder, never to the text the grammar allowed.
        unwritable = set(vocabulary.special_ids) | {getattr(vocabulary, "unk_id", None)}
        encoded = [
            b"" if i in unwritable or i >= vocabulary.vocab_size else vocabulary.token_bytes(i)
            for i in range(size)
        ]
        # Control characters other than newline and carriage return, never written: xgrammar lets them
        # into length-bounded strings (where JSON forbids them raw), and no grammar here needs one.
        encoded = [b"" if _CONTROL.search(piece) else piece for piece in encoded]
        self.vocab_size = size
        self.stop_token_ids = list(vocabulary.stop_token_ids)
        info = xgrammar.TokenizerInfo(
            encoded, xgrammar.VocabType.RAW, vocab_size=size, stop_token_ids=self.stop_token_ids
        )
        self._compiler = xgrammar.GrammarCompiler(info, max_threads=threads)
        self._lock = threading.Lock()  # one compile at a time: they use every compile thread already

    def json_schema(self, schema: dict[str, Any] | None) -> Grammar:
        """Any JSON object (``schema`` None) or a document valid under ``schema``. Compact JSON: a model
        that loops on whitespace would otherwise never close the document."""
        text = json.dumps({"type": "object"} if schema is None else schema, sort_keys=True)
        return self.compile("json", text)

    def structural_tag(self, tag: dict[str, Any]) -> Grammar:
        """A structural tag (xgrammar's format): free text, tags with JSON inside, sequences of them."""
        return self.compile("tag", json.dumps(tag, sort_keys=True))

    def constraint(self, grammar: Grammar) -> GrammarConstraint:
        return GrammarConstraint(grammar, self.vocab_size)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one compiler per served model, alive with it
    def compile(self, kind: str, text: str) -> Grammar:
        """``kind`` "json" (a JSON schema's text) or "tag" (a structural tag's)."""
        with self._lock:
            try:
                if kind == "json":
                    compiled = self._compiler.compile_json_schema(
                        text, any_whitespace=False, strict_mode=True
                    )
                else:
                    compiled = self._compiler.compile_structural_tag(text)
                return Grammar(kind, text, compiled)
            except Exception as e:  # xgrammar's errors (several types) for a grammar it cannot serve
                raise GrammarError(str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)) from e


class GrammarConstraint(TokenConstraint):
    """One sequence's position in a compiled grammar.

    A token the grammar refuses (only possible when a row's logits were all NaN and the sampler fell back
    to an arbitrary token) ends the sequence: from then on only stop tokens are allowed, so one broken row
    never fails the batch it decodes in.
    """

    decides_end = True  # a finished document has nothing else to write

    def __init__(self, grammar: Grammar, vocab_size: int) -> None:
        self._grammar = grammar
        self._vocab_size = vocab_size
        self._matcher = xgrammar.GrammarMatcher(grammar.compiled)
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)
        self.broken = False

    def fill_mask(self, mask_row: torch.Tensor) -> None:
        if self.broken:
            stops = [t for t in self._matcher.stop_token_ids if t < mask_row.shape[0]]
            mask_row[stops] = True
            return
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bits = np.unpackbits(self._bitmask.numpy().view(np.uint8), count=self._vocab_size, bitorder="little")
        width = min(self._vocab_size, mask_row.shape[0])
        np.copyto(mask_row.numpy()[:width], bits[:width], casting="unsafe")  # numpy: no torch op dispatch

    def accept(self, token_id: int) -> None:
        if not (self.broken or self._matcher.is_terminated()) and not self._matcher.accept_token(token_id):
            self.broken = True

    def is_done(self) -> bool:
        return self.broken or self._matcher.is_terminated() or self._matcher.is_completed()

    def fork(self) -> GrammarConstraint:
        twin = GrammarConstraint.__new__(GrammarConstraint)
        twin._grammar, twin._vocab_size = self._grammar, self._vocab_size
        twin._matcher = self._matcher.fork()
        twin._bitmask = xgrammar.allocate_token_bitmask(1, self._vocab_size)
        twin.broken = self.broken
        return twin

    def recipe(self) -> tuple[str, tuple[str, str]]:
        return "grammar", (self._grammar.kind, self._grammar.text)
