"""Problem builders for ``training.reasoning_data`` (bare expressions and algebra here; probability is
in ``training.reasoning_probability``, word problems in ``training.reasoning_word``): parameters, step-by-step
chain and checked answer.

Each builder draws parameters for one kind and stratum, writes the solution as a chain of sentences with
one operation each (``Chain.op`` refuses negative or inexact intermediate results by raising ``Reject``),
and checks the chain's result independently with ``reasoning.calculator``: on an expression built from the
parameters, on the question text itself (bare expressions), or by substituting the solution (equations).
A disagreement raises RuntimeError: it is a bug in the generator, never a data point.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from reasoning import chain_format
from reasoning.answers import canonical_number, normalize_answer
from reasoning.calculator import check_answer, evaluate
from training import reasoning_templates as wording
from training.reasoning_verbal import say_expression
from training.template_lists import train_options


class Reject(Exception):
    """The drawn parameters broke a constraint (negative, inexact, too big): draw again."""


def column_steps(a: int, op: str, b: int) -> list[str]:
    """The columns of a written +, - (a >= b) or * by one digit, least significant first. A carry or
    borrow shows as a third term ("4+5+1=10", "8-1-1=6", "2*7+2=16"); a borrowing column writes its
    top digit plus ten ("14-7=7"). The result's digits are the last column's value and, before it, the
    units digit of every earlier column."""
    steps, carry = [], 0
    if op == "*":
        x, d = (a, b) if b < 10 else (b, a)
        for digit in reversed(str(x)):
            p = int(digit) * d + carry
            steps.append(f"{digit}*{d}+{carry}={p}" if carry else f"{digit}*{d}={p}")
            carry = p // 10
        return steps
    width = max(len(str(a)), len(str(b)))
    da, db = str(a).zfill(width)[::-1], str(b).zfill(width)[::-1]
    for top, bottom in zip(map(int, da), map(int, db), strict=True):
        if op == "+":
            s = top + bottom + carry
            steps.append(f"{top}+{bottom}+1={s}" if carry else f"{top}+{bottom}={s}")
            carry = s // 10
        else:
            value, borrow = top - carry - bottom, 0
            if value < 0:
                value, borrow, top = value + 10, 1, top + 10
            steps.append(f"{top}-{carry}-{bottom}={value}" if carry else f"{top}-{bottom}={value}")
            carry = borrow
    return steps


class Chain:
    """Collects the sentences of a step-by-step solution; ``op`` does one checked integer operation."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.sentences: list[str] = []

    def say(self, zh: str, en: str) -> None:
        """Append the sentence of the chain's language (narration written here, both languages side by side)."""
        self.write(zh if self.lang == "zh" else en)

    def write(self, text: str) -> None:
        """Append a sentence already in the chain's language (one from ``reasoning.chain_format``)."""
        self.sentences.append(self.sentence(text))

    def sentence(self, text: str) -> str:
        """``text`` as a sentence of the chain: a full stop, and an upper-case start in English."""
        return text + "。" if self.lang == "zh" else text[:1].upper() + text[1:] + "."

    def op(self, a: int, op: str, b: int) -> tuple[int, str]:
        if op == "+":
            c = a + b
        elif op == "-":
            c = a - b
        elif op == "*":
            c = a * b
        else:
            if b == 0 or a % b:
                raise Reject("inexact division")
            c = a // b
        if c < 0:
            raise Reject("negative intermediate result")
        if op == "*" and min(a, b) >= 10 and min(a, b) < 100:
            return c, self._long_multiplication(a, b, c)
        if (op in "+-" and max(a, b) >= 10) or (op == "*" and max(a, b) >= 10 and 2 <= min(a, b) <= 9):
            return c, self._columns(a, op, b, c)
        return c, f"{a}{op}{b}={c}"

    def _worked(self, a: int, op: str, b: int, c: int, steps: list[str]) -> str:
        """An operation with its partial work: "a op b: step, step, so a op b=c"."""
        return chain_format.worked(self.lang, a, op, b, c, steps)

    def _columns(self, a: int, op: str, b: int, c: int) -> str:
        """A multi-digit +, - or one-digit * worked column by column, as on paper, so that every step is a
        one-digit fact a small model can learn ("48+154: 8+4=12, 4+5+1=10, 0+1+1=2, so 48+154=202")."""
        return self._worked(a, op, b, c, column_steps(a, op, b))

    def _long_multiplication(self, a: int, b: int, c: int) -> str:
        """A two-digit multiplier is worked digit by digit, as on paper: a small model cannot multiply
        44*91 in one step, but it can learn 44*9, times 10, 44*1 and one addition (each in columns)."""
        x, m = (a, b) if a >= b else (b, a)
        tens, units = divmod(m, 10)
        steps = [self.op(x, "*", tens)[1], f"{x * tens}*10={x * tens * 10}"]
        if units:
            steps += [self.op(x, "*", units)[1], self.op(x * tens * 10, "+", x * units)[1]]
        return self._worked(a, "*", b, c, steps)

    def text(self) -> str:
        return ("" if self.lang == "zh" else " ").join(self.sentences)


SPOKEN_SHARE = 0.4  # train expression questions asked in words rather than symbols


@dataclass
class Context:
    rng: random.Random
    lang: str
    split: str
    hard: bool
    spoken_share: float = SPOKEN_SHARE  # of train expressions asked in words
    story_share: float = 0.0  # of train word problems composed by training.reasoning_story

    def pick(self, templates: dict[str, list[str]]) -> str:
        options = templates[self.lang]
        return self.rng.choice(options if self.split == "test" else train_options(templates, self.lang))

    def num(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, items: Sequence):
        return self.rng.choice(items)

    def t(self, zh: str, en: str) -> str:
        return zh if self.lang == "zh" else en

    def qty(self, n: int) -> str:
        """A count as digits, or (easy problems, sometimes) as a number word: generalise over both."""
        if self.hard or n > 10 or self.rng.random() > 0.3:
            return str(n)
        return wording.ZH_NUMBERS[n] if self.lang == "zh" else wording.EN_NUMBERS[n]

    def name(self) -> str:
        return self.choice(wording.NAMES[self.lang])


@dataclass
class Problem:
    user: str
    answer: str  # canonical key
    display: str  # as written in the final sentence ("74", "x=5", "3/5", "8x")


def check_same(check_expression: str, value: int | Fraction) -> None:
    """Independent check of the chain's result with the calculator; a mismatch is a generator bug."""
    if evaluate(check_expression) != value:
        raise RuntimeError(f"generator bug: {check_expression} != {value}")


def numeric_answer(value: int | Fraction) -> tuple[str, str]:
    """(answer key, text for the final sentence) of a numeric answer: both "74" or "3/5"."""
    key = canonical_number(Fraction(value))
    return key, key


# ---------------------------------------------------------------- bare expressions

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_OP_WORDS = {
    "+": ("加法", "add", "an addition"),
    "-": ("减法", "subtract", "a subtraction"),
    "*": ("乘法", "multiply", "a multiplication"),
    "/": ("除法", "divide", "a division"),
}


def _shape(rng: random.Random, n_ops: int) -> list | None:
    if n_ops == 0:
        return None
    left = rng.randint(0, n_ops - 1)
    return [rng.choice("+-*/"), _shape(rng, left), _shape(rng, n_ops - 1 - left)]


def _fill(ctx: Context, shape: list | None) -> list:
    """Nodes are [value] leaves or [value, op, left, right]; leaves are chosen to keep every
    intermediate result a non-negative integer of reasonable size."""
    lo, hi, limit = (10, 99, 10000) if ctx.hard else (1, 20, 100)
    if shape is None:
        return [ctx.num(lo, hi)]
    op, left_shape, right_shape = shape
    if op == "/" and left_shape is None:  # build the dividend from divisor * quotient
        right = _fill(ctx, right_shape) if right_shape else [ctx.num(2, 12 if ctx.hard else 9)]
        if right[0] == 0:
            raise Reject("division by zero")
        left = [right[0] * ctx.num(2, 12 if ctx.hard else 9)]
    else:
        left = _fill(ctx, left_shape)
        if right_shape is not None:
            right = _fill(ctx, right_shape)
        elif op == "-":
            right = [ctx.num(min(lo, left[0]), min(hi, left[0]))]
        elif op == "*":
            right = [ctx.num(2, max(2, min(hi if ctx.hard else 9, limit // max(left[0], 1))))]
        elif op == "/":
            divisors = [d for d in range(2, hi + 1) if left[0] % d == 0 and d != left[0]]
            if not divisors:
                raise Reject("no divisor")
            right = [ctx.choice(divisors)]
        else:
            right = [ctx.num(lo, hi)]
    value, _ = Chain("en").op(left[0], op, right[0])
    if value > limit or max(left[0], right[0]) > limit:
        raise Reject("too large")
    if value == 0:  # a zero makes the rest of the expression trivial
        raise Reject("zero intermediate")
    return [value, op, left, right]


_PLAIN = {"+": "+", "-": "-", "*": "*", "/": "/", "(": "(", ")": ")", "space": ""}


def _needs_parens(child: list, parent_op: str, is_right: bool) -> bool:
    """Parentheses when precedence needs them, and around every right operand of equal precedence:
    "4+(4-4)" rather than "4+4-4", so the chain's order is always the order a pupil would follow."""
    if len(child) == 1:
        return False
    return _PREC[child[1]] < _PREC[parent_op] or (is_right and _PREC[child[1]] == _PREC[parent_op])


def _render(node: list, style: dict[str, str], parens: bool = False) -> str:
    if len(node) == 1:
        return str(node[0])
    _, op, left, right = node
    sp = style["space"]
    text = (
        _render(left, style, _needs_parens(left, op, False))
        + f"{sp}{style[op]}{sp}"
        + _render(right, style, _needs_parens(right, op, True))
    )
    return f"{style['(']}{text}{style[')']}" if parens else text


def _schedule(root: list) -> list[tuple[list, bool]]:
    """Operations in school order: innermost parentheses first, then * and / before + and -, left to
    right. Returns (node, inside_parentheses) pairs."""
    info = []  # (node, paren depth, in-order position)

    def walk(node: list, depth: int, parens: bool) -> None:
        if len(node) == 1:
            return
        depth += parens
        walk(node[2], depth, _needs_parens(node[2], node[1], False))
        info.append((node, depth, len(info)))
        walk(node[3], depth, _needs_parens(node[3], node[1], True))

    walk(root, 0, False)
    done: set[int] = set()
    order = []
    while len(order) < len(info):
        ready = [
            (n, d, pos)
            for n, d, pos in info
            if id(n) not in done and all(len(c) == 1 or id(c) in done for c in (n[2], n[3]))
        ]
        node, depth, _ = max(ready, key=lambda r: (r[1], _PREC[r[0][1]], -r[2]))
        done.add(id(node))
        order.append((node, depth > 0))
    return order


def write_steps(ctx: Context, ch: Chain, root: list) -> str:
    """Write the chain of an expression tree: its ASCII copy ("Given: ..."), then one sentence per
    operation in school order, each rewriting what is left. Returns the copy; ``root[0]`` is the value."""
    steps = _schedule(root)
    # The chain starts by copying the expression in plain ASCII: later steps read their operands there, and
    # the kind of problem shows in what was copied, not in the question's (possibly unseen) wording.
    plain = _render(root, _PLAIN)
    ch.write(chain_format.given(ch.lang, plain))
    if len(steps) == 1:
        zh_word, _, en_noun = _OP_WORDS[root[1]]
        ch.say(f"这是一道{zh_word}题，只有一步", f"There is only one operation, {en_noun}")
    else:
        ch.say(*ctx.choice(wording.EXPRESSION_INTROS))
    for i, (node, inside) in enumerate(steps):
        _, eq = ch.op(node[2][0], node[1], node[3][0])
        zh_word, en_word, _ = _OP_WORDS[node[1]]
        if len(steps) == 1:
            ch.say(f"计算{zh_word}：{eq}", f"{en_word.capitalize()}: {eq}")
            continue
        first, last = i == 0, i == len(steps) - 1
        zh_order = "先" if first else "最后" if last else ctx.choice(["再", "然后", "接着"])
        en_order = "First" if first else "Finally" if last else ctx.choice(["Then", "Next"])
        zh_rest = en_rest = ""
        if not last:
            # Rewrite what is left, as a pupil does: the next step's operands are then side by side in the
            # latest line, not scattered over a long chain, where a small model copies the wrong number.
            del node[1:]  # the operation is done: the node is now a leaf holding its value
            rest = _render(root, _PLAIN)
            zh_rest, en_rest = chain_format.rewrite("zh", rest), chain_format.rewrite("en", rest)
        ch.say(
            f"{zh_order}算{'括号里的' if inside else ''}{zh_word}：{eq}{zh_rest}",
            f"{en_order}, {en_word}{' inside the parentheses' if inside else ''}: {eq}{en_rest}",
        )
    return plain


def expression(ctx: Context, ch: Chain) -> Problem:
    n_ops = ctx.num(3, 4) if ctx.hard else ctx.num(1, 2)
    root = _fill(ctx, _shape(ctx.rng, n_ops))
    wide = ctx.lang == "zh" and ctx.rng.random() < 0.5
    style = {
        "+": "+",
        "-": "-",
        "*": ctx.choice("*××" if ctx.lang == "zh" else "**×"),
        "(": "（" if wide else "(",
        ")": "）" if wide else ")",
        "space": " " if ctx.rng.random() < 0.3 else "",
    }
    style["/"] = "÷" if style["*"] == "×" else "/"
    shown = _render(root, style)
    # Train questions are sometimes read out in words (training.reasoning_verbal); test ones never, so the
    # test split's figures stay comparable across versions.
    spoken = None
    if ctx.split == "train" and ctx.rng.random() < ctx.spoken_share:
        spoken = say_expression(root, ctx.lang, ctx.rng, _needs_parens)
    plain = write_steps(ctx, ch, root)
    ch.write(chain_format.result(ch.lang, root[0]))
    user = spoken or ctx.pick(wording.EXPRESSION).format(e=shown)
    key, display = numeric_answer(root[0])
    check = check_answer(plain if spoken else user, key)
    if check is None or not check.agrees:
        raise RuntimeError(f"generator bug: calculator disagrees on {user!r}")
    return Problem(user, key, display)


# ---------------------------------------------------------------- algebra


def substitute(equation: str, var: str, value: int | Fraction) -> tuple[Fraction, Fraction]:
    """Both sides of "3x+5=20" with the variable replaced, evaluated by the calculator."""
    text = re.sub(r"(\d)\s*(?=[a-z(])", r"\1*", equation.replace(" ", ""))  # 3x -> 3*x, 2(x+1) -> 2*(x+1)
    left, right = text.replace(var, f"({value})").split("=")
    return evaluate(left), evaluate(right)


def algebra(ctx: Context, ch: Chain) -> Problem:
    v = ctx.choice("xxxyn")
    if ctx.rng.random() < 0.3:  # write an expression ("8x"), not solve for a number
        f = {"v": v, "name": ctx.name()}
        if not ctx.hard:
            coefficient, template = ctx.num(2, 20), wording.SYMBOLIC_EASY
            f["a"] = coefficient
            ch.say(f"每份是{v}，一共有{coefficient}份", f"Each unit is {v} and there are {coefficient} units")
        else:
            a, b, c = ctx.num(2, 12), ctx.num(2, 12), ctx.num(2, 12)
            f.update(a=a, b=b, c=c)
            ch.say(f"每份都是{v}，份数分三部分", f"Every unit is {v}, and the units come in three parts")
            s, eq = ch.op(a, "+", b)
            ch.say(f"前两部分：{eq}", f"The first two parts: {eq}")
            coefficient, eq = ch.op(s, "+", c)
            ch.say(f"一共：{eq}份", f"In all: {eq} units")
            check_same(f"{a}+{b}+{c}", coefficient)
            template = wording.SYMBOLIC_HARD
        ch.say(
            f"一共是{coefficient}个{v}：{coefficient}*{v}={coefficient}{v}",
            f"That is {coefficient} times {v}: {coefficient}*{v}={coefficient}{v}",
        )
        answer = f"{coefficient}{v}"
        ch.write(chain_format.answer(ch.lang, answer))
        return Problem(ctx.pick(template).format(**f), normalize_answer(answer), answer)
    x = ctx.num(2, 30) if ctx.hard else ctx.num(1, 12)
    sp = " " if ctx.rng.random() < 0.3 else ""
    form = ctx.choice(["ax+b=c", "a(x+b)+d=c", "ax+b=cx+d"] if ctx.hard else ["ax+b=c", "x+b=c", "ax=c"])
    a, b, d = ctx.num(2, 9), ctx.num(10, 50) if ctx.hard else ctx.num(1, 20), ctx.num(10, 50)
    if form == "ax+b=c":
        c = a * x + b
        equation = f"{a}{v}{sp}+{sp}{b}{sp}={sp}{c}"
        rhs, eq = ch.op(c, "-", b)
        ch.say(f"两边同时减去{b}：{eq}", f"Subtract {b} from both sides: {eq}")
        _, eq = ch.op(rhs, "/", a)
        ch.say(f"两边同时除以{a}：{eq}", f"Divide both sides by {a}: {eq}")
    elif form == "x+b=c":
        c = x + b
        equation = f"{v}{sp}+{sp}{b}{sp}={sp}{c}"
        _, eq = ch.op(c, "-", b)
        ch.say(f"两边同时减去{b}：{eq}", f"Subtract {b} from both sides: {eq}")
    elif form == "ax=c":
        c = a * x
        equation = f"{a}{v}{sp}={sp}{c}"
        _, eq = ch.op(c, "/", a)
        ch.say(f"两边同时除以{a}：{eq}", f"Divide both sides by {a}: {eq}")
    elif form == "a(x+b)+d=c":
        c = a * (x + b) + d
        equation = f"{a}({v}{sp}+{sp}{b}){sp}+{sp}{d}{sp}={sp}{c}"
        rhs, eq = ch.op(c, "-", d)
        ch.say(f"两边同时减去{d}：{eq}", f"Subtract {d} from both sides: {eq}")
        rhs, eq = ch.op(rhs, "/", a)
        ch.say(f"两边同时除以{a}：{eq}", f"Divide both sides by {a}: {eq}")
        _, eq = ch.op(rhs, "-", b)
        ch.say(f"再减去{b}：{eq}", f"Subtract {b}: {eq}")
    else:  # ax+b=cx+d with a > c and d > b
        c = ctx.num(1, a - 1)
        d = (a - c) * x + b
        equation = f"{a}{v}{sp}+{sp}{b}{sp}={sp}{c if c > 1 else ''}{v}{sp}+{sp}{d}"
        coefficient, eq = ch.op(a, "-", c)
        ch.say(f"把含{v}的项移到左边，系数：{eq}", f"Collect the {v} terms on the left, coefficient: {eq}")
        constant, eq = ch.op(d, "-", b)
        ch.say(f"把常数移到右边：{eq}", f"Move the numbers to the right: {eq}")
        _, eq = ch.op(constant, "/", coefficient)
        ch.say(f"两边同时除以{coefficient}：{eq}", f"Divide both sides by {coefficient}: {eq}")
    ch.sentences.insert(0, ch.sentence(chain_format.given(ch.lang, equation)))  # as for expressions
    ch.write(chain_format.solution(ch.lang, v, x))
    left, right = substitute(equation, v, x)
    if left != right:
        raise RuntimeError(f"generator bug: {v}={x} does not solve {equation}")
    user = ctx.pick(wording.EQUATION).format(eq=equation, v=v)
    return Problem(user, canonical_number(Fraction(x)), ctx.t(f"{v}={x}", f"{v} = {x}"))
