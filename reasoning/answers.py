"""Final answers of reasoning outputs: split off the chain, extract the answer, normalise it.

Shared by the server's self-consistency vote and the training eval (through ``reasoning.vote``), so both
count "the same answer" the same way. No torch: normalisation is exact arithmetic with ``fractions.Fraction``.
The ``<think>`` markers are imported from ``model.tokenizer``: they are special tokens of our tokenizer and
chat template, defined there once.

Assistant text in reasoning format is ``<think>\\n{chain}\\n</think>\\n{final}``. The generation prompt
already ends with ``<think>``, so generated text usually starts at the chain.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from model.tokenizer import END, THINK, THINK_END

# Characters NFKC leaves alone but that mean an ASCII operator in answers people (and models) write.
_OPERATOR_TRANSLATION = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00d7": "*", "\u00f7": "/"})

_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?"
_NUMBER_RE = re.compile(_NUMBER)
# Marker phrases, longest alternatives first so "the final answer" wins over "answer". Weak markers
# ("结果", "result") are only used when no strong one leads to an answer: "答案：74，结果正确" is 74.
_CONNECTOR = r"\s*(?:is|was|为|是|应为|应该是|等于)?\s*[:=]?\s*"
_STRONG_MARKER_RE = re.compile(
    rf"(?:最终答案|正确答案|答案|the final answer|final answer|the answer|answer){_CONNECTOR}", re.IGNORECASE
)
_WEAK_MARKER_RE = re.compile(rf"(?:结果|the result|result){_CONNECTOR}", re.IGNORECASE)
# Where an answer span ends: a sentence end, a comma that is not a thousands separator, a full stop that
# is not a decimal point, or the start of a justification.
_SPAN_END_RE = re.compile(r"\n|[。；;!?]|,(?!\d{3}(?!\d))|\.(?!\d)|\s+(?:because|since|as)\b|因为|所以")
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
_ASSIGNMENT_RE = re.compile(r"([a-zA-Z])\s*=\s*(.+)")
# "74元", "74 apples", "60 km/h": a number followed by a unit. A single letter right after the number is a
# variable ("8x"), not a unit, so units need a CJK character or a word of two or more letters.
_UNIT_RE = re.compile(rf"({_NUMBER})\s*(?:[\u4e00-\u9fff].*|\s[A-Za-z]{{2,}}.*)")
_SHORT_ANSWER_RE = re.compile(rf"{_NUMBER}|[+-]?\d*\s*\*?\s*[a-zA-Z]|[a-zA-Z]\s*=\s*{_NUMBER}")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)")
_TRAILING_PUNCT = "。.！!？?，,；;：: \t\n"
_SYMBOLIC_RE = re.compile(r"[0-9a-z+\-*/^().\s]+")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(_OPERATOR_TRANSLATION)


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split generated assistant text into ``(reasoning, final)``.

    Accepts text with or without the opening ``<think>`` (the generation prompt usually holds it). Text
    without ``</think>`` is an unfinished chain (e.g. cut off by max_tokens): all reasoning, final ``""``.
    ``reasoning`` is None when the chain is empty.
    """
    if text.endswith(END):
        text = text[: -len(END)]
    chain, closed, final = text.partition(THINK_END)
    opened = chain.find(THINK)
    if opened != -1:
        chain = chain[opened + len(THINK) :]
    chain = chain.strip()
    return (chain or None), (final.strip() if closed else "")


def _clean_span(span: str) -> str | None:
    """Reduce a candidate answer span to the answer itself, or None when nothing is left."""
    span = span.strip().strip("$*`\"'“”「」").strip().rstrip(_TRAILING_PUNCT)
    if "=" in span:  # "x=5", "12*7-10=74": the answer is what the last "=" gives
        span = span.rsplit("=", 1)[1].strip()
    unit = _UNIT_RE.fullmatch(span) if parse_number(span) is None else None  # keep "3分之2" whole
    if unit:
        span = unit.group(1)
    return span or None


def _first_span(text: str) -> str:
    end = _SPAN_END_RE.search(text)
    return text[: end.start()] if end else text


def extract_answer(final_text: str | None) -> str | None:
    """The answer inside a final sentence, e.g. ``"答案：74。"`` -> ``"74"``, ``"x = 5"`` -> ``"5"``.

    Order: the last ``\\boxed{}``; the last marker phrase ("答案", "The answer is", "Answer:", ...) followed
    by an answer; the whole text when it is a bare short answer ("74", "3/5", "8x", "x = 5"); the right side
    of the last "="; the last number. None when none of these finds anything.
    """
    if not final_text:
        return None
    text = _nfkc(final_text).strip()
    boxed = _BOXED_RE.findall(text)
    if boxed and _clean_span(boxed[-1]):
        return _clean_span(boxed[-1])
    for marker_re in (_STRONG_MARKER_RE, _WEAK_MARKER_RE):
        for marker in reversed(list(marker_re.finditer(text))):
            answer = _clean_span(_first_span(text[marker.end() :]))
            if answer:
                return answer
    bare = text.rstrip(_TRAILING_PUNCT)
    if _SHORT_ANSWER_RE.fullmatch(bare):
        return _clean_span(bare)
    if "=" in text:
        answer = _clean_span(_first_span(text.rsplit("=", 1)[1]))
        if answer:
            return answer
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


def canonical_number(value: Fraction) -> str:
    """``Fraction`` -> voting key: ``"74"``, ``"3/5"``, ``"-1/2"``."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def parse_number(text: str) -> Fraction | None:
    """An exact number from ``"74"``, ``"74.0"``, ``"3/5"``, ``"60%"``, ``"1,000"``, ``"3分之2"``; else None."""
    compact = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), re.sub(r"\s+", "", text))
    if len(compact) > 64:  # no exact value worth voting on is this long; bounds the parsing cost
        return None
    chinese = re.fullmatch(r"([+-]?)(\d+)分之(\d+)", compact)
    if chinese:
        compact = f"{chinese.group(1)}{chinese.group(3)}/{chinese.group(2)}"
    percent = compact.endswith("%")
    body = compact[:-1] if percent else compact
    try:
        if re.fullmatch(r"[+-]?\d+/\d+", body):
            value = Fraction(body)
        elif re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", body):
            value = Fraction(Decimal(body))
        else:
            return None
    except (ZeroDivisionError, InvalidOperation, ValueError):
        return None
    return value / 100 if percent else value


def normalize_answer(answer: str | None) -> str:
    """Canonical key for voting: equal keys mean the same answer.

    Numbers become exact fractions (``"74.0"`` -> ``"74"``, ``"0.6"``/``"3/5"``/``"60%"`` -> ``"3/5"``);
    ``"x = 5"`` -> ``"5"``; symbolic answers lose spaces and implicit ``*`` (``"8 x"``/``"8*x"`` -> ``"8x"``);
    other text is lower-cased with whitespace collapsed. ``""`` means no answer.
    """
    if answer is None:
        return ""
    text = _nfkc(answer).strip().strip("$").strip()
    boxed = _BOXED_RE.fullmatch(text)
    if boxed:
        text = boxed.group(1).strip()
    text = text.rstrip(_TRAILING_PUNCT)
    assignment = _ASSIGNMENT_RE.fullmatch(text)
    if assignment:
        text = assignment.group(2).strip().rstrip(_TRAILING_PUNCT)
    value = parse_number(text)
    if value is not None:
        return canonical_number(value)
    lowered = text.lower()
    # Algebra ("8 x", "3x + 5"), not words ("red ball"): needs a digit or operator, or is a lone variable.
    if _SYMBOLIC_RE.fullmatch(lowered) and (re.search(r"[0-9+\-*/^()]", lowered) or len(lowered) == 1):
        compact = re.sub(r"\s+", "", lowered)
        return re.sub(r"(?<=[0-9)])\*(?=[a-z(])", "", compact)  # 8*x -> 8x, as written by hand
    return " ".join(lowered.split())
