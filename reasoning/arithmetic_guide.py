"""Calculator-guided arithmetic: while a sample writes, every ``expression=`` it writes is completed with the
expression's exact value from the safe calculator.

Why: a small model's chains go wrong mostly on the arithmetic itself (multi-digit products, a column's carry),
not on which operation comes next. The chain format (docs/reasoning.md) writes every step as
``a op b = c``, so the model decides *what* to compute and the calculator writes *c*, the way GSM8K's
calculator annotations do (Cobbe et al. 2021), with no change to the format and no retraining.

It is a :class:`~model.sampling.TokenConstraint`: before every draw the sampler asks for the row's allowed
tokens. Nearly always that is every token; right after ``expression=`` it is the next token of the value,
one token per step, and right after the value it is anything but a digit (so ``16`` cannot become ``160``).
Only a full arithmetic expression is completed: the longest run of digits, ``+ - * /``, ``.`` and
parentheses before ``=``, starting with a digit or ``(``, not glued to a letter (``3x+5=`` is an equation,
not a sum) and holding an operator. A value the vocabulary cannot spell digit by digit, or the calculator
refuses (too big, division by zero), is left to the model.

The same goes for the chain's copy of the question (``题目：`` / ``Given:``): when the question writes its
expression in symbols, the copy is the question's expression, exactly, as the generator's chains copy it.
The model still chooses to copy (a word problem's chain never does) and everything after.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from model.sampling import TokenConstraint
from reasoning.answers import canonical_number
from reasoning.calculator import CalculatorError, evaluate, find_expression, normalise_expression
from reasoning.chain_format import given

# The run before "=": maximal (no run character or ASCII letter right before it), starts with a digit or "(".
_EXPRESSION_AT_END = re.compile(r"(?<![0-9A-Za-z.+\-*/()])([0-9(][0-9.+\-*/()]*)=$")
_OPERATOR_INSIDE = re.compile(r".[+\-*/]")
_VARIABLE = re.compile(r"\d[A-Za-z]|[A-Za-z]\d")  # "3x+5=20": an equation, not an expression to copy


def _copy_marker(lang: str) -> tuple[str, str]:
    """("题目：", "") and ("Given:", " "): the space belongs to the copy (a tokenizer may write " 41" as one
    piece)."""
    opening = given(lang, "")
    return opening.rstrip(), opening[len(opening.rstrip()) :]


_COPY_MARKERS = dict(_copy_marker(lang) for lang in ("zh", "en"))
_TAIL_BYTES = 96  # enough for any expression the calculator accepts in a chain step
_VALUE_CHARS = "0123456789-/"


class GuideTokenizer(Protocol):
    """What the guide reads from a tokenizer (our SentencePiece one and the ``tokenizer.json`` one)."""

    vocab_size: int
    special_ids: set[int]

    def token_bytes(self, token_id: int) -> bytes: ...

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class GuideVocabulary:
    """Per tokenizer, computed once: the token that writes each character of a value, the tokens that begin
    with a digit (banned right after a completed value), and the tokenizer's encoder (for copies)."""

    char_ids: dict[str, int]
    digit_start: torch.Tensor  # int64 ids
    special_ids: frozenset[int]
    token_bytes: tuple[bytes, ...]
    encode: Callable[[str], list[int]]

    @classmethod
    def of(cls, tokenizer: GuideTokenizer) -> GuideVocabulary:
        pieces = tuple(tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size))
        char_ids: dict[str, int] = {}
        for char in _VALUE_CHARS:
            # The id the tokenizer itself writes the character with after "=" (a SentencePiece vocabulary
            # also has a byte-fallback piece for it, which the model never saw in that place).
            written = [i for i in tokenizer.encode("=" + char) if pieces[i] == char.encode()]
            any_id = [i for i, piece in enumerate(pieces) if piece == char.encode()]
            if written or any_id:
                char_ids[char] = (written or any_id)[0]
        digit_start = [i for i, piece in enumerate(pieces) if piece[:1].isdigit()]
        return cls(
            char_ids=char_ids,
            digit_start=torch.tensor(digit_start, dtype=torch.long),
            special_ids=frozenset(tokenizer.special_ids),
            token_bytes=pieces,
            encode=tokenizer.encode,
        )

    def spell(self, text: str) -> list[int] | None:
        """The token ids that write ``text`` one character each, or None if some character has none."""
        ids = [self.char_ids.get(char) for char in text]
        return None if None in ids else ids  # type: ignore[return-value]

    def copies(self, expression: str) -> dict[bytes, list[int]]:
        """For each copy marker, the tokens the tokenizer writes ``expression`` with after it (so merged
        pieces such as ``*(`` come out as in training)."""
        out = {}
        for marker, space in _COPY_MARKERS.items():
            head, whole = self.encode(marker), self.encode(marker + space + expression)
            if whole[: len(head)] == head and len(whole) > len(head):
                out[marker.encode()] = whole[len(head) :]
        return out


def question_expression(question: str) -> str | None:
    """The arithmetic a question writes in symbols, as a chain copies it (``"计算：12 × (3+4) − 10"`` ->
    ``"12*(3+4)-10"``); None when it has none, has a variable, or has numbers outside it (then the
    expression is not the whole question, and copying it alone would mislead the chain)."""
    if _VARIABLE.search(question):
        return None
    found = find_expression(question)
    expression = re.sub(r"\s+", "", found) if found else None
    if not expression or not _OPERATOR_INSIDE.search(expression):
        return None
    numbers = sorted(re.findall(r"\d+(?:\.\d+)?", normalise_expression(question)))
    return expression if numbers == sorted(re.findall(r"\d+(?:\.\d+)?", expression)) else None


def value_to_write(text: str) -> str | None:
    """The value that must follow ``text`` when it ends with a complete ``expression=``; None otherwise."""
    match = _EXPRESSION_AT_END.search(text)
    if match is None or not _OPERATOR_INSIDE.search(match.group(1)):
        return None
    try:
        # An integer, or a fraction in lowest terms: what the chain format writes (``18/30=3/5``).
        return canonical_number(evaluate(match.group(1)))
    except CalculatorError:
        return None


class ArithmeticGuide(TokenConstraint):
    """One sequence's guide (a :class:`~model.sampling.TokenConstraint`); ``fork`` gives each sample its own.
    ``question`` (the last user message) gives the expression a copy marker is completed with, if any.
    ``completed`` counts the values the calculator wrote."""

    # The guide never decides when a sequence ends: ignore_eos and min_tokens still apply.
    decides_end = False

    def __init__(self, vocabulary: GuideVocabulary, question: str | None = None) -> None:
        self._vocab = vocabulary
        self._tail = bytearray()
        self._pending: list[int] = []  # the value's (or copy's) remaining tokens, written one per step
        self._ban_digits = False  # the step right after a completed value or copy
        expression = question_expression(question) if question else None
        self._copies = vocabulary.copies(expression) if expression else {}  # used once, then emptied
        self.completed = 0

    def fill_mask(self, mask_row: torch.Tensor) -> None:
        if self._pending:
            mask_row[self._pending[0]] = True
            return
        mask_row.fill_(True)
        if self._ban_digits:
            mask_row[self._vocab.digit_start[self._vocab.digit_start < mask_row.shape[0]]] = False

    def accept(self, token_id: int) -> None:
        self._ban_digits = False
        if self._pending:
            if token_id == self._pending[0]:
                self._pending.pop(0)
                self._ban_digits = not self._pending
            else:  # only when the row's logits were all NaN and the sampler fell back: give up this value
                self._pending.clear()
        if token_id in self._vocab.special_ids or token_id >= len(self._vocab.token_bytes):
            self._tail.clear()  # a role or reasoning marker: no expression spans it
            return
        self._tail += self._vocab.token_bytes[token_id]
        del self._tail[:-_TAIL_BYTES]
        if self._pending:
            return
        for marker, ids in self._copies.items():
            if self._tail.endswith(marker):
                self._pending, self._copies = list(ids), {}
                return
        if not self._tail.endswith(b"="):
            return
        value = value_to_write(self._tail.decode("utf-8", errors="ignore"))
        ids = self._vocab.spell(value) if value is not None else None
        if ids:
            self._pending = ids
            self.completed += 1

    def is_done(self) -> bool:
        return False

    def fork(self) -> ArithmeticGuide:
        twin = ArithmeticGuide(self._vocab)
        twin._tail = bytearray(self._tail)
        twin._pending = list(self._pending)
        twin._ban_digits = self._ban_digits
        twin._copies = self._copies
        twin.completed = self.completed
        return twin
