"""Calculator-guided arithmetic: while a sample writes, every ``expression=`` it writes is completed with the
expression's exact value from the safe calculator.

Why: a small model's chains go wrong mostly on the arithmetic itself (multi-digit products, a column's carry),
not on which operation comes next. The chain format (docs/reasoning.md) writes every step as
``a op b = c``, so the model decides *what* to compute and the calculator writes *c*, the way GSM8K's
calculator annotations do (Cobbe et al. 2021), with no change to the format and no retraining.

It is a :class:`~model.sampling.TokenConstraint`: before every draw the sampler asks for the row's allowed
tokens. Nearly always that is every token; right after ``expression=`` it is the pieces that write the
value's next characters (the model picks the split), and right after the value anything but a digit (so
``16`` cannot become ``160``). Only a full arithmetic expression is completed: the longest run of digits,
``+ - * /``, ``.`` and parentheses before ``=``, starting with a digit or ``(``, not glued to a letter
(``3x+5=`` is an equation, not a sum) and holding an operator. A value the calculator refuses (too big,
division by zero) is left to the model.

The same goes for the expression the chain carries from step to step (``reasoning.expression_steps``):

* the copy (``题目：`` / ``Given:``): when the question writes its expression in symbols, the copy is the
  question's expression, exactly, as the generator's chains copy it; the model still chooses to copy (a
  word problem's chain never does);
* the rewrite after a step (``算式变成`` / ``the expression is now``): what is left once the step just
  written is done, when that step is one the expression can do next. The model picks the step; the
  calculator only substitutes its result, and drops the brackets that no longer hold anything. Where the
  model wrote its own copy or rewrite (a question in words), the guide reads it and goes on from there.
* the next step: once the chain's expression is known (a copy or a rewrite was written), the first number the
  model writes after it starts the next step, and must be one of the operations the expression can do next
  (``44*29`` or ``19*8`` in ``44*29-19*8``, never ``29-19``): the order of operations is the one rule of
  the format the model still broke most, taking ``222-23`` first in ``222-23*3``. Which of them, if there are
  several, is the model's choice; narration before it is free. After that step's value (not a column of its
  work), when something is left, the rewrite's phrase follows, then the rewrite itself.
* the closing of a worked operation: "112*19: 112*1=112, ..., so 112*19=" repeats its header, and after
  ", so" / "，所以" inside one the guide writes the innermost open header (a model that had worked 112*19
  right closed it as "1122*19=", and the calculator gave that a value).
"""

from __future__ import annotations

import bisect
import copy
import re
from dataclasses import dataclass, field
from typing import Protocol

import torch

from model.sampling import TokenConstraint
from reasoning.answers import canonical_number
from reasoning.calculator import CalculatorError, evaluate, find_expression, normalise_expression
from reasoning.chain_format import REWRITE, SO, given, rewrite
from reasoning.expression_steps import next_steps, parse, what_is_left

# The run before "=": maximal (no run character or ASCII letter right before it), starts with a digit or "(".
_EXPRESSION_AT_END = re.compile(r"(?<![0-9A-Za-z.+\-*/()])([0-9(][0-9.+\-*/()]*)=$")
_OPERATOR_INSIDE = re.compile(r".[+\-*/]")
_VARIABLE = re.compile(r"\d[A-Za-z]|[A-Za-z]\d")  # "3x+5=20": an equation, not an expression to copy


def _marker(opening: str) -> tuple[str, str]:
    """("题目：", "") and ("Given:", " "): the phrase that opens an expression, and the space before it, which
    belongs to the expression (a tokenizer may write " 41" as one piece)."""
    return opening.rstrip(), opening[len(opening.rstrip()) :]


_COPY_MARKERS = dict(_marker(given(lang, "")) for lang in ("zh", "en"))
# ("the expression is now", " ") and ("算式变成", ""): a rewrite's phrase and the space before what is left.
_REWRITE_MARKERS = {REWRITE[lang]: _marker(rewrite(lang, ""))[1] for lang in REWRITE}
_MARKER_LANG = {marker: lang for lang in REWRITE for marker in (_marker(given(lang, ""))[0], REWRITE[lang])}
# What a step's value is followed by when something is left: "，算式变成" / ", and the expression is now".
_REWRITE_PHRASE = {lang: _marker(rewrite(lang, ""))[0] for lang in REWRITE}
# The step a rewrite follows, right before its phrase: "so 27+18=45, and the expression is now".
_STEP_BEFORE = {
    REWRITE[lang]: re.compile(r"(\d+)([+\-*/])(\d+)=(\d+)" + re.escape(_REWRITE_PHRASE[lang]) + "$")
    for lang in REWRITE
}
# A worked operation's header, "112*19:" / "112*19：", and the phrase before its closing copy: ", so" / "，所以".
_WORKED_HEADER = re.compile(rb"(\d+[+\-*/]\d+) ?(?::|\xef\xbc\x9a)")
_CLOSING = {f", {SO['en']}".encode(): " ", f"，{SO['zh']}".encode(): ""}
_SENTENCE_END = (b".", "。".encode())
_EXPRESSION_BYTES = frozenset(b"0123456789+-*/() ")
_MAX_EXPRESSION = 200
_TAIL_BYTES = 96  # enough for any expression the calculator accepts in a chain step
_NOT_AFTER_A_COPY = {bytes([c]) for c in b"0123456789+-*/()="}  # what would extend the expression


class GuideTokenizer(Protocol):
    """What the guide reads from a tokenizer (our SentencePiece one and the ``tokenizer.json`` one)."""

    vocab_size: int
    special_ids: set[int]

    def token_bytes(self, token_id: int) -> bytes: ...

    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class GuideVocabulary:
    """Per tokenizer, computed once: the tokens that begin with a digit (banned right after a completed
    value) and an index of the pieces by their bytes (for the text the guide writes)."""

    digit_start: torch.Tensor  # int64 ids
    with_digit: torch.Tensor  # int64 ids of the pieces holding a digit anywhere
    special_ids: frozenset[int]
    token_bytes: tuple[bytes, ...]
    by_bytes: dict[bytes, list[int]]  # a piece's bytes -> the ids that write exactly them
    sorted_pieces: list[bytes]  # the distinct pieces in byte order (for prefix search)
    _continuations: dict[bytes, torch.Tensor] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, tokenizer: GuideTokenizer) -> GuideVocabulary:
        pieces = tuple(tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size))
        digit_start = [i for i, piece in enumerate(pieces) if piece[:1].isdigit()]
        with_digit = [i for i, piece in enumerate(pieces) if _has_digit(piece)]
        by_bytes: dict[bytes, list[int]] = {}
        for i, piece in enumerate(pieces):
            if piece and i not in tokenizer.special_ids:
                by_bytes.setdefault(piece, []).append(i)
        return cls(
            digit_start=torch.tensor(digit_start, dtype=torch.long),
            with_digit=torch.tensor(with_digit, dtype=torch.long),
            special_ids=frozenset(tokenizer.special_ids),
            token_bytes=pieces,
            by_bytes=by_bytes,
            sorted_pieces=sorted(by_bytes),
        )

    def continuations(self, text: bytes) -> torch.Tensor:
        """The tokens that may come next when ``text`` must be written: a piece that writes its beginning,
        or one that writes all of it and goes on with punctuation (``).`` and ``)。`` are single pieces in
        both our tokenizers; a chain that had to end a copy on a lone ``)`` stopped right there). Which of
        them, and so how the text is split into pieces, is the model's choice."""
        cached = self._continuations.get(text)
        if cached is not None:
            return cached
        ids = [i for end in range(1, len(text) + 1) for i in self.by_bytes.get(text[:end], ())]
        pieces = self.sorted_pieces
        at = bisect.bisect_right(pieces, text)  # the pieces that start with the text follow it, in a run
        while at < len(pieces) and pieces[at].startswith(text):
            if pieces[at][len(text) : len(text) + 1] not in _NOT_AFTER_A_COPY:
                ids += self.by_bytes[pieces[at]]
            at += 1
        if len(self._continuations) > 4096:
            self._continuations.clear()
        self._continuations[text] = tensor = torch.tensor(sorted(ids), dtype=torch.long)
        return tensor


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


def _has_digit(piece: bytes) -> bool:
    return any(48 <= byte <= 57 for byte in piece)


def value_to_write(text: str) -> str | None:
    """The value that must follow ``text`` when it ends with a complete ``expression=``; None otherwise."""
    return _value_of(_EXPRESSION_AT_END.search(text))


def _value_of(match: re.Match[str] | None) -> str | None:
    """The value of the expression ``_EXPRESSION_AT_END`` found, if it is one the calculator computes."""
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
    ``completed`` counts the values the calculator wrote, ``rewritten`` the rewrites, ``stepped`` the steps
    held to the order of operations."""

    # The guide never decides when a sequence ends: ignore_eos and min_tokens still apply.
    decides_end = False

    def __init__(self, vocabulary: GuideVocabulary, question: str | None = None) -> None:
        self._vocab = vocabulary
        self._question_text = question
        self._tail = bytearray()
        self._text = b""  # what is left to write of a value, copy or rewrite, in pieces the model picks
        self._ban_digits = False  # the step right after a completed value or copy
        self._question = question_expression(question) if question else None
        self._copy_due = self._question is not None  # the question's expression is copied once
        self._expression: str | None = None  # what is left of the chain's expression, as last written
        self._reading: bytearray | None = None  # an expression the model is writing after its marker
        self._writing = ""  # what self._text is: "value", "expression" (a copy, a rewrite) or "phrase"
        self._lang: str | None = None  # the chain's language, from the phrases it wrote
        self._steps: tuple[bytes, ...] = ()  # what is left to write of each step the next one may be
        self._step_names: tuple[bytes, ...] = ()  # those steps, whole
        self._step_started = False  # the model began writing one of self._steps
        self._taken: str | None = None  # the step it wrote, until that step's value
        self._worked: bool | None = None  # that step is worked in columns ("18*7: 8*7=56, ..., so 18*7=")
        self._rewrite_due: tuple[str, str] | None = None  # that step and its value, while it is written
        # The rest after a step, worked out where its phrase was decided, kept for the rewrite: what_is_left's
        # arguments (it is a pure function) and its result.
        self._known_rest: tuple[tuple[str | None, ...], str | None] | None = None
        # Worked operations opened ("112*19:") and not yet closed ("so 112*19="), innermost last.
        self._open_work: list[str] = []
        self.completed = 0
        self.rewritten = 0
        self.stepped = 0

    def fill_mask(self, mask_row: torch.Tensor) -> None:
        size = mask_row.shape[0]
        if self._text:
            ids = self._vocab.continuations(self._text)
            mask_row[ids[ids < size]] = True
            return
        if self._steps:
            if not self._step_started:  # narration first, or a piece that starts a step (" 44" too)
                mask_row.fill_(True)
                mask_row[self._vocab.with_digit[self._vocab.with_digit < size]] = False
            for step in self._steps:
                for text in (step, b" " + step) if not self._step_started else (step,):
                    ids = self._vocab.continuations(text)
                    mask_row[ids[ids < size]] = True
            return
        mask_row.fill_(True)
        if self._ban_digits:
            mask_row[self._vocab.digit_start[self._vocab.digit_start < size]] = False

    def accept(self, token_id: int) -> None:
        self._ban_digits = False
        special = token_id in self._vocab.special_ids or token_id >= len(self._vocab.token_bytes)
        piece = b"" if special else self._vocab.token_bytes[token_id]
        if self._text:
            if piece and (self._text.startswith(piece) or piece.startswith(self._text)):
                beyond = piece[len(self._text) :]  # punctuation the last piece merged with the text
                self._text = self._text[len(piece) :]
                self._ban_digits = not self._text
                if not self._text and self._writing == "expression":
                    self._await_step()
                elif not self._text and self._writing == "value" and self._rewrite_due:
                    self._phrase_rewrite(beyond)
            else:  # only when the row's logits were all NaN and the sampler fell back: give up the text
                self._text = b""
        elif self._steps:
            self._accept_step(piece)
        elif self._taken is not None and self._worked is None:
            self._worked = not piece.startswith(b"=")  # "3+4=7", or a worked step's header "18*7:"
        if special:
            self._tail.clear()  # a role or reasoning marker: no expression spans it
            self._reading = None
            self._steps = ()
            self._taken = None
            return
        self._tail += piece
        del self._tail[:-_TAIL_BYTES]
        self._follow_work(piece)
        if self._reading is not None:
            self._read(piece)
        if self._text:
            return
        if self._open_expression(piece) or self._close_work():
            return
        if not self._tail.endswith(b"="):
            return
        tail = self._tail.decode("utf-8", errors="ignore")
        expression = _EXPRESSION_AT_END.search(tail)
        value = _value_of(expression)
        if value is not None:
            self._text = value.encode()
            self._writing = "value"
            self.completed += 1
            # The value of the step the model took, not of a column inside its work ("11-3: 11-3=8, 1-1-0=0,
            # so 11-3=8"): the rewrite follows.
            before = tail[: expression.start()].rstrip()
            done = expression.group(1) == self._taken and (
                not self._worked or before.endswith(SO.get(self._lang or "", "\0"))
            )
            self._rewrite_due = (self._taken, value) if done else None
            self._taken = None if done else self._taken
            if self._open_work and before.endswith(SO.get(self._lang or "", "\0")):
                self._open_work.pop()

    def _follow_work(self, piece: bytes) -> None:
        """Keep the worked operations that are open: a header opens one, a sentence's end drops them all."""
        if any(end in piece for end in _SENTENCE_END):
            self._open_work.clear()
            return
        if b":" not in piece and b"\x9a" not in piece:  # no colon ends here ("：" ends in 0x9a): no header
            return
        for header in _WORKED_HEADER.finditer(self._tail):
            if header.end() > len(self._tail) - len(piece):  # its colon is in this piece
                self._open_work.append(header.group(1).decode())

    def _close_work(self) -> bool:
        """At ", so" / "，所以" inside a worked operation: its closing copies the innermost open header. A
        model that worked 112*19 right wrote "so 1122*19=", and the calculator gave that a value."""
        if not self._open_work:
            return False
        for phrase, space in _CLOSING.items():
            if self._tail.endswith(phrase):
                self._lang = "en" if space else "zh"
                self._text = (space + self._open_work[-1]).encode()
                self._writing = "closing"
                return True
        return False

    def _phrase_rewrite(self, beyond: bytes) -> None:
        """After the value of the step the model took, when something is left to compute: the rewrite's
        phrase, as the format writes it after every step but the last (a model that skipped it lost track
        of the expression: "so 15*16=240", then "240*9" for 15*16+9). The calculator then writes the rest."""
        (step, value), self._rewrite_due = self._rewrite_due, None
        a, op, b = re.fullmatch(r"(\d+)([+\-*/])(\d+)", step).groups()
        rest = what_is_left(self._expression, a, op, b, value) if self._expression else None
        self._known_rest = ((self._expression, a, op, b, value), rest)
        phrase = _REWRITE_PHRASE.get(self._lang or "", "").encode()
        if rest is None or not next_steps(rest) or not phrase or not phrase.startswith(beyond):
            return
        self._text = phrase[len(beyond) :]
        self._writing = "phrase"
        self._ban_digits = False

    def _await_step(self) -> None:
        """The chain's expression was just written: its next step must be one the expression can do next."""
        self._steps = self._step_names = tuple(step.encode() for step in next_steps(self._expression or ""))
        self._step_started = False

    def _accept_step(self, piece: bytes) -> None:
        """Follow the step being written; done at its end (or when the model left it: a sampler fallback)."""
        if not self._step_started:
            if not _has_digit(piece):
                return  # narration
            self._step_started = True
            self.stepped += 1
            piece = piece.removeprefix(b" ")
        kept = [
            (step[len(piece) :] if step.startswith(piece) else b"", name)  # b"": ended inside the piece
            for step, name in zip(self._steps, self._step_names, strict=True)
            if step.startswith(piece) or piece.startswith(step)
        ]
        ended = [name for rest, name in kept if not rest]
        if not kept or ended:  # the model left the steps (a sampler fallback), or one ended
            self._steps = self._step_names = ()
            self._ban_digits = bool(kept)
            self._taken = ended[0].decode() if ended else None
            self._worked = None
        else:
            self._steps, self._step_names = tuple(r for r, _ in kept), tuple(n for _, n in kept)

    def _open_expression(self, piece: bytes) -> bool:
        """At a copy's or a rewrite's phrase (it may end inside the last piece: ``：(``), start its text:
        the question's expression after the first copy phrase, what is left after a rewrite phrase when the
        calculator knows it; else read what the model writes there."""
        for marker, space in (*_COPY_MARKERS.items(), *_REWRITE_MARKERS.items()):
            written = _written_after(self._tail, marker.encode(), len(piece))
            if written is None:
                continue
            self._lang = _MARKER_LANG[marker]
            self._taken = None
            if marker in _COPY_MARKERS:
                text = space + self._question if self._copy_due else None
                self._copy_due = False
                self._expression = self._question if text else None
            else:
                text = self._rest_after_step(marker)
                text = space + text if text else None
            self._steps = ()
            if text is not None and text.encode().startswith(written):
                self._text = text.encode()[len(written) :]
                self._writing = "expression"
                self.rewritten += marker in _REWRITE_MARKERS
                if not self._text:
                    self._ban_digits = True
                    self._await_step()
            else:
                self._reading = bytearray()
                self._read(written)
            return True
        return False

    def _rest_after_step(self, marker: str) -> str | None:
        """What is left of the expression after the step written right before the rewrite phrase, if that
        step is one the expression can do next (the model still picks the step)."""
        step = _STEP_BEFORE[marker].search(self._tail.decode("utf-8", errors="ignore"))
        known, self._known_rest = self._known_rest, None
        if step and known and known[0] == (self._expression, *step.groups()):  # worked out for the phrase
            rest = known[1]
        else:
            rest = what_is_left(self._expression, *step.groups()) if step and self._expression else None
        self._expression = rest
        return rest

    def _read(self, piece: bytes) -> None:
        """Collect the expression the model writes after a phrase, up to the first byte that cannot be in
        one; then it is what is left of the chain's expression."""
        for byte in piece:
            if byte not in _EXPRESSION_BYTES:
                written = self._reading.decode().replace(" ", "")
                self._reading = None
                self._expression = written if parse(written) is not None else None
                self._await_step()
                return
            self._reading.append(byte)
        if len(self._reading) > _MAX_EXPRESSION:
            self._reading = None

    def is_done(self) -> bool:
        return False

    def fork(self) -> ArithmeticGuide:
        twin = copy.copy(self)  # every field; the two mutable buffers get copies of their own
        twin._tail = bytearray(self._tail)
        twin._reading = None if self._reading is None else bytearray(self._reading)
        twin._open_work = list(self._open_work)
        return twin

    def recipe(self) -> tuple[str, tuple[str | None]]:
        return "arithmetic_guide", (self._question_text,)


def _written_after(tail: bytearray, marker: bytes, piece_length: int) -> bytes | None:
    """The bytes after ``marker`` if the marker ends inside the last piece (b"" if the tail ends with it)."""
    window = bytes(tail[-(piece_length + len(marker) - 1) :]) if piece_length else b""
    at = window.rfind(marker)
    return None if at < 0 else window[at + len(marker) :]
