"""A safe arithmetic calculator: exact results for + - * / and parentheses, nothing else.

The design notes evaluate extracted expressions with ``eval``; even with empty builtins that runs attacker
text. Here the expression is parsed with ``ast`` and walked by a tiny interpreter that knows only numbers,
binary + - * /, unary + - and parentheses. Everything else (names, calls, attributes, ``**``, ``//``,
subscripts, strings) is rejected before any evaluation. Input size, node count and the magnitude of every
value are bounded, so no input can make it slow or make it allocate big integers. Arithmetic is exact
(``Fraction``): 0.1+0.2 is 3/10, and 1/3*3 is 1.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from reasoning.answers import canonical_number, extract_answer, normalize_answer

MAX_CHARS = 200
MAX_NODES = 100
MAX_MAGNITUDE = 10**15  # bound on |numerator| and denominator of every literal and intermediate result

# NFKC turns full-width digits, （）＋－＊／ into ASCII; these symbols it leaves alone.
_SYMBOLS = str.maketrans({"\u00d7": "*", "\u00f7": "/", "\u2212": "-", "\u2013": "-", "\u2217": "*"})
_TIMES_X = re.compile(r"(?<=[\d)]) [xX] (?=[\d(])")
_ALLOWED_CHARS = re.compile(r"[0-9.+\-*/()\s]*")
_RUN = re.compile(r"[0-9.+\-*/()\s]+")
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.UAdd, ast.USub, *_OPERATORS)


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, is too big, or has no value (division by zero)."""


@dataclass(frozen=True)
class CalcCheck:
    expression: str  # the expression found in the question, normalised to ASCII
    value: str  # its exact value as a voting key ("74", "3/5")
    agrees: bool  # whether the given answer has the same key


def normalise_expression(text: str) -> str:
    """Full-width digits and brackets, × ÷ and the minus sign to plain ASCII arithmetic; a letter x between
    two spaced operands is a times sign ("41 x 7", "(3 + 4) x 2"; "3x" stays a variable)."""
    return _TIMES_X.sub("*", unicodedata.normalize("NFKC", text).translate(_SYMBOLS))


def _checked(value: Fraction) -> Fraction:
    if abs(value.numerator) > MAX_MAGNITUDE or value.denominator > MAX_MAGNITUDE:
        raise CalculatorError("number too large")
    return value


def _parse(expr: str) -> tuple[ast.Expression, str]:
    text = normalise_expression(expr).strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"expression longer than {MAX_CHARS} characters")
    if not _ALLOWED_CHARS.fullmatch(text):
        bad = next(ch for ch in text if not _ALLOWED_CHARS.fullmatch(ch))
        raise CalculatorError(f"unsupported character {bad!r}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError("not a valid arithmetic expression") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise CalculatorError(f"expression has more than {MAX_NODES} parts")
    for node in nodes:
        # The character filter already excludes names and calls; this whitelist is the real guarantee.
        if not isinstance(node, _ALLOWED_NODES) or (
            isinstance(node, ast.Constant)
            and (isinstance(node.value, bool) or not isinstance(node.value, int | float))
        ):
            raise CalculatorError(f"unsupported syntax: {type(node).__name__}")
    return tree, text


def _evaluate(node: ast.AST, source: str) -> Fraction:
    if isinstance(node, ast.Constant):
        # Read the literal from the source text: float(0.1) is not 1/10, Decimal("0.1") is.
        literal = ast.get_source_segment(source, node) or repr(node.value)
        try:
            return _checked(Fraction(Decimal(literal)))
        except InvalidOperation as exc:
            raise CalculatorError(f"bad number {literal!r}") from exc
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, source), _evaluate(node.right, source)
        if isinstance(node.op, ast.Add):
            return _checked(left + right)
        if isinstance(node.op, ast.Sub):
            return _checked(left - right)
        if isinstance(node.op, ast.Mult):
            return _checked(left * right)
        if right == 0:
            raise CalculatorError("division by zero")
        return _checked(left / right)
    raise CalculatorError(f"unsupported syntax: {type(node).__name__}")


def evaluate(expr: str) -> Fraction:
    """Exact value of an arithmetic expression; raises CalculatorError for anything else."""
    tree, source = _parse(expr)
    return _evaluate(tree.body, source)


def is_expression(text: str) -> bool:
    """Whether text parses as arithmetic with at least one binary operation ("12" and "-5" do not)."""
    try:
        tree, _ = _parse(text)
    except CalculatorError:
        return False
    return any(isinstance(node, ast.BinOp) for node in ast.walk(tree))


def _trim(candidate: str) -> str:
    """Strip what cannot start or end an expression: dangling operators, sentence full stops and
    parentheses left unmatched at either end ("(见 3+4)" -> "3+4")."""
    previous = None
    while candidate != previous:
        previous = candidate
        candidate = candidate.strip().lstrip("*/.)").rstrip("+-*/.(").strip()
        if candidate.endswith(")") and candidate.count(")") > candidate.count("("):
            candidate = candidate[:-1]
        if candidate.startswith("(") and candidate.count("(") > candidate.count(")"):
            candidate = candidate[1:]
    return candidate


def find_expression(question: str) -> str | None:
    """The longest arithmetic expression in a question, e.g. "计算：12*(3+4)-10" -> "12*(3+4)-10"."""
    text = normalise_expression(question)
    best: str | None = None
    best_size = 0
    for run in _RUN.finditer(text):
        # "2024 年 3+4" gives the run "2024 3+4": if the whole run is not arithmetic, try its pieces.
        pieces = [run.group()] + re.split(r"(?<=[\d.)])\s+(?=[\d.(])", run.group())
        for piece in pieces:
            candidate = _trim(piece)
            size = len(re.sub(r"\s+", "", candidate))
            if size > best_size and is_expression(candidate):
                best, best_size = candidate, size
    return best


def check_answer(question: str, answer: str | None) -> CalcCheck | None:
    """Compare an answer with the calculator's value of the question's expression.

    ``answer`` may be a bare answer or a final sentence ("答案：74。"). None when the question has no
    arithmetic expression or it has no value (e.g. division by zero).
    """
    expression = find_expression(question)
    if expression is None:
        return None
    try:
        value = canonical_number(evaluate(expression))
    except CalculatorError:
        return None
    given = normalize_answer(extract_answer(answer) if answer else None)
    return CalcCheck(expression=re.sub(r"\s+", "", expression), value=value, agrees=given == value)
