"""The arithmetic steps of a reasoning chain, checked exactly.

A chain writes one operation per step, ``a op b=c`` ("3+4=7", "18/6=3", "18/30=3/5" when reducing), and
multi-digit work in columns with a carry or borrow as a third term ("4+5+1=10", "8-1-1=6", "2*7+2=16").
Every such step can be recomputed, so a chain that writes a false one is known to have slipped somewhere.
The training data verifier (``training.reasoning_data.verify_record``) rejects records with a false step;
the server's checked vote (``reasoning.vote.vote`` with ``eligible``) leaves out samples that made one.
"""

from __future__ import annotations

import re

from reasoning.calculator import CalculatorError, evaluate

# "a op b=c" (c may be a fraction: "6/10=3/5"). The look-arounds keep "7*8-5=51" from being read as
# "8-5=51" and let an English sentence end with "=7.".
EQUATION_RE = re.compile(r"(?<![\d.)+\-*/])(\d+)\s*([+\-*/])\s*(\d+)\s*=\s*(\d+(?:/\d+)?)(?![\d/]|\.\d)")
# "8*x=8x": a coefficient times a variable, written by hand.
SYMBOLIC_EQUATION_RE = re.compile(r"(?<![\d.a-zA-Z])(\d+)\s*\*\s*([a-z])\s*=\s*(\d+)([a-z])(?![a-zA-Z\d])")
# A column with a carry or borrow: "4+5+1=10", "8-1-1=6", "2*7+2=16".
COLUMN_STEP_RE = re.compile(r"(?<![\d.)+\-*/])(\d+)([+\-*])(\d+)([+\-])(\d+)=(\d+)(?!\d)")


def chain_equations(cot: str) -> list[tuple[str, str, str, str]]:
    """Every "a op b=c" in a chain as (a, op, b, c), in order, including symbolic "8*x=8x"."""
    found = [(m.start(), m.groups()) for m in EQUATION_RE.finditer(cot)]
    found += [(m.start(), (m[1], "*", m[2], m[3] + m[4])) for m in SYMBOLIC_EQUATION_RE.finditer(cot)]
    return [groups for _, groups in sorted(found)]


def _holds(left: str, right: str) -> bool:
    """Both sides exactly equal, by the safe calculator (which also gives "2*7+2" its precedence)."""
    try:
        return evaluate(left) == evaluate(right)
    except CalculatorError:  # "5/0=1"
        return False


def equation_holds(a: str, op: str, b: str, c: str) -> bool:
    if b.isalpha():  # symbolic: coefficient times variable
        return op == "*" and c == f"{a}{b}"
    return _holds(f"{a}{op}{b}", c)


def false_steps(cot: str) -> list[str]:
    """The steps of ``cot`` that do not hold, as written ("48+154=212"); [] when every step checks out."""
    wrong = [f"{a}{op}{b}={c}" for a, op, b, c in chain_equations(cot) if not equation_holds(a, op, b, c)]
    wrong += [
        f"{a}{op}{b}{op2}{d}={c}"
        for a, op, b, op2, d, c in COLUMN_STEP_RE.findall(cot)
        if not _holds(f"{a}{op}{b}{op2}{d}", c)
    ]
    return wrong
