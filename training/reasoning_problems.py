"""Problem builders for ``training.reasoning_data`` (bare expressions, word problems, algebra; probability is
in ``training.reasoning_probability``): parameters, step-by-step chain and checked answer.

Each builder draws parameters for one kind and stratum, writes the solution as a chain of sentences with
one operation each (``Chain.op`` refuses negative or inexact intermediate results by raising ``Reject``),
and checks the chain's result independently with ``model.calculator``: on an expression built from the
parameters, on the question text itself (bare expressions), or by substituting the solution (equations).
A disagreement raises RuntimeError: it is a bug in the generator, never a data point.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from model.answers import canonical_number, normalize_answer
from model.calculator import check_answer, evaluate
from training import reasoning_templates as wording


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
        if self.lang == "zh":
            self.sentences.append(zh + "。")
        else:
            self.sentences.append(en[:1].upper() + en[1:] + ".")

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
        if self.lang == "zh":
            return f"{a}{op}{b}：" + "，".join(steps) + f"，所以{a}{op}{b}={c}"
        return f"{a}{op}{b}: " + ", ".join(steps) + f", so {a}{op}{b}={c}"

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


@dataclass
class Context:
    rng: random.Random
    lang: str
    split: str
    hard: bool

    def pick(self, templates: dict[str, list[str]]) -> str:
        options = templates[self.lang]
        return self.rng.choice(options if self.split == "test" else options[:-1])

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


def _numeric(value: int | Fraction) -> tuple[str, str]:
    """(answer key, text for the final sentence) of a numeric answer: both "74" or "3/5"."""
    key = canonical_number(Fraction(value))
    return key, key


# ---------------------------------------------------------------- bare expressions

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_OP_WORDS = {"+": ("加法", "add", "an addition"), "-": ("减法", "subtract", "a subtraction"),
             "*": ("乘法", "multiply", "a multiplication"), "/": ("除法", "divide", "a division")}


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
    text = (_render(left, style, _needs_parens(left, op, False)) + f"{sp}{style[op]}{sp}"
            + _render(right, style, _needs_parens(right, op, True)))
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
        ready = [(n, d, pos) for n, d, pos in info if id(n) not in done
                 and all(len(c) == 1 or id(c) in done for c in (n[2], n[3]))]
        node, depth, _ = max(ready, key=lambda r: (r[1], _PREC[r[0][1]], -r[2]))
        done.add(id(node))
        order.append((node, depth > 0))
    return order


def expression(ctx: Context, ch: Chain) -> Problem:
    n_ops = ctx.num(3, 4) if ctx.hard else ctx.num(1, 2)
    root = _fill(ctx, _shape(ctx.rng, n_ops))
    wide = ctx.lang == "zh" and ctx.rng.random() < 0.5
    style = {"+": "+", "-": "-", "*": ctx.choice("*××" if ctx.lang == "zh" else "**×"),
             "(": "（" if wide else "(", ")": "）" if wide else ")",
             "space": " " if ctx.rng.random() < 0.3 else ""}
    style["/"] = "÷" if style["*"] == "×" else "/"
    shown = _render(root, style)
    steps = _schedule(root)
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
        ch.say(f"{zh_order}算{'括号里的' if inside else ''}{zh_word}：{eq}",
               f"{en_order}, {en_word}{' inside the parentheses' if inside else ''}: {eq}")
    ch.say(f"所以结果是{root[0]}", f"So the result is {root[0]}")
    user = ctx.pick(wording.EXPRESSION).format(e=shown)
    key, display = _numeric(root[0])
    check = check_answer(user, key)
    if check is None or not check.agrees:
        raise RuntimeError(f"generator bug: calculator disagrees on {user!r}")
    return Problem(user, key, display)


# ---------------------------------------------------------------- word problems

def _word_shopping(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it, cur = ctx.choice(wording.SHOP_ITEMS), ctx.t(ctx.choice(["元", "块钱"]), ctx.choice(["dollars", "euros", "yuan"]))
    f = {"name": ctx.name(), "cur": cur, **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        n, p = ctx.num(2, 6), ctx.num(2, 9)
        m = ctx.choice([m for m in (10, 20, 30, 50) if m >= n * p] or [50])
        f.update(n=ctx.qty(n), p=p, m=m)
        ch.say(f"每{f['u']}{it[0]}{p}{cur}，买了{n}{f['u']}，付了{m}{cur}",
               f"Each {it[2]} costs {p} {cur}, {n} are bought and {m} {cur} are paid")
        cost, eq = ch.op(n, "*", p)
        ch.say(f"买{it[0]}一共花了{eq}{cur}", f"The {it[3]} cost {eq} {cur}")
        left, eq = ch.op(m, "-", cost)
        ch.say(f"找回的钱是{eq}{cur}", f"The change is {eq} {cur}")
        return {**f, "tpl": wording.SHOP_EASY}, left, f"{m}-{n}*{p}"
    it2 = ctx.choice([x for x in wording.SHOP_ITEMS if x != it])
    n1, p1, n2, p2 = ctx.num(2, 9), ctx.num(11, 35), ctx.num(2, 9), ctx.num(11, 35)
    m = ctx.choice([m for m in (100, 200, 500, 1000) if m >= n1 * p1 + n2 * p2])
    f.update(n1=n1, p1=p1, n2=n2, p2=p2, m=m, **wording.item_fields(it2, ctx.lang, "2"))
    ch.say(f"{it[0]}{n1}{f['u']}，每{f['u']}{p1}{cur}；{it2[0]}{n2}{f['u2']}，每{f['u2']}{p2}{cur}",
           f"There are {n1} {it[3]} at {p1} {cur} and {n2} {it2[3]} at {p2} {cur}")
    c1, eq = ch.op(n1, "*", p1)
    ch.say(f"{it[0]}花了{eq}{cur}", f"The {it[3]} cost {eq} {cur}")
    c2, eq = ch.op(n2, "*", p2)
    ch.say(f"{it2[0]}花了{eq}{cur}", f"The {it2[3]} cost {eq} {cur}")
    total, eq = ch.op(c1, "+", c2)
    ch.say(f"一共花了{eq}{cur}", f"Together they cost {eq} {cur}")
    left, eq = ch.op(m, "-", total)
    ch.say(f"应找回{eq}{cur}", f"The change is {eq} {cur}")
    return {**f, "tpl": wording.SHOP_HARD}, left, f"{m}-({n1}*{p1}+{n2}*{p2})"


def _word_collect(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it = ctx.choice(wording.COLLECT_ITEMS)
    f = {"name": ctx.name(), "other": ctx.name(), **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        a, b = ctx.num(3, 15), ctx.num(2, 10)
        c = ctx.num(1, a + b)
        f.update(a=ctx.qty(a), b=ctx.qty(b), c=ctx.qty(c))
        ch.say(f"原来有{a}{f['u']}，得到{b}{f['u']}，又少了{c}{f['u']}",
               f"There were {a} {it[3]}, {b} were added and {c} were taken away")
        s, eq = ch.op(a, "+", b)
        ch.say(f"先算得到以后的数量：{eq}", f"After getting more there are {eq}")
        left, eq = ch.op(s, "-", c)
        ch.say(f"再减去拿走的：{eq}", f"After taking some away there are {eq}")
        return {**f, "tpl": wording.COLLECT_EASY}, left, f"{a}+{b}-{c}"
    a, b, c = ctx.num(3, 12), ctx.num(12, 48), ctx.num(10, 40)
    d = ctx.num(10, a * b + c)
    f.update(a=a, b=b, c=c, d=d)
    ch.say(f"一共有{a}份，每份{b}{f['u']}，另有{c}{f['u']}，拿走{d}{f['u']}",
           f"There are {a} groups of {b}, {c} more, and {d} are taken away")
    packed, eq = ch.op(a, "*", b)
    ch.say(f"整份的数量：{eq}", f"The full groups hold {eq}")
    total, eq = ch.op(packed, "+", c)
    ch.say(f"加上另外的：{eq}", f"With the extra ones: {eq}")
    left, eq = ch.op(total, "-", d)
    ch.say(f"减去拿走的：{eq}", f"After removing {d}: {eq}")
    return {**f, "tpl": wording.COLLECT_HARD}, left, f"{a}*{b}+{c}-{d}"


def _word_share(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it = ctx.choice(wording.COLLECT_ITEMS)
    f = {"name": ctx.name(), **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        k, q = ctx.num(2, 6), ctx.num(2, 9)
        f.update(t=ctx.qty(k * q), k=ctx.qty(k))
        ch.say(f"一共{k * q}{f['u']}，平均分成{k}份", f"There are {k * q} {it[3]} split into {k} equal parts")
        each, eq = ch.op(k * q, "/", k)
        ch.say(f"用除法：{eq}", f"Divide: {eq}")
        return {**f, "tpl": wording.SHARE_EASY}, each, f"{k * q}/{k}"
    a, b, k = ctx.num(3, 12), ctx.num(12, 40), ctx.num(3, 9)
    c0 = ctx.num(10, 40)
    c = c0 + (-(a * b + c0)) % k  # makes the total divisible by k
    f.update(a=a, b=b, c=c, k=k)
    ch.say(f"有{a}份，每份{b}{f['u']}，另有{c}{f['u']}，平均分给{k}份",
           f"There are {a} groups of {b} plus {c} more, shared among {k}")
    packed, eq = ch.op(a, "*", b)
    ch.say(f"整份的数量：{eq}", f"The full groups hold {eq}")
    total, eq = ch.op(packed, "+", c)
    ch.say(f"总数：{eq}", f"In total: {eq}")
    each, eq = ch.op(total, "/", k)
    ch.say(f"平均分：{eq}", f"Shared equally: {eq}")
    return {**f, "tpl": wording.SHARE_HARD}, each, f"({a}*{b}+{c})/{k}"


def _word_travel(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        v, t = ctx.num(2, 20), ctx.num(2, 9)
        f.update(v=v, t=ctx.qty(t))
        ch.say(f"速度是每小时{v}千米，时间是{t}小时", f"The speed is {v} km/h and the time is {t} hours")
        d, eq = ch.op(v, "*", t)
        ch.say(f"路程=速度×时间：{eq}", f"Distance is speed times time: {eq}")
        return {**f, "tpl": wording.TRAVEL_EASY}, d, f"{v}*{t}"
    v1, t1, v2, t2 = ctx.num(40, 120), ctx.num(2, 6), ctx.num(40, 120), ctx.num(2, 6)
    d = v1 * t1 + v2 * t2 + ctx.num(10, 300)
    f.update(v1=v1, t1=t1, v2=v2, t2=t2, d=d)
    ch.say(f"全程{d}千米，分两段行驶", f"The whole trip is {d} km, driven in two parts")
    d1, eq = ch.op(v1, "*", t1)
    ch.say(f"第一段：{eq}千米", f"First part: {eq} km")
    d2, eq = ch.op(v2, "*", t2)
    ch.say(f"第二段：{eq}千米", f"Second part: {eq} km")
    done, eq = ch.op(d1, "+", d2)
    ch.say(f"已经行驶：{eq}千米", f"Driven so far: {eq} km")
    left, eq = ch.op(d, "-", done)
    ch.say(f"剩下的路程：{eq}千米", f"Still to go: {eq} km")
    return {**f, "tpl": wording.TRAVEL_HARD}, left, f"{d}-({v1}*{t1}+{v2}*{t2})"


def _word_ages(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        a, d, n = ctx.num(3, 15), ctx.num(2, 12), ctx.num(2, 10)
        f.update(a=ctx.qty(a), d=ctx.qty(d), n=ctx.qty(n))
        ch.say(f"年龄差是{d}岁，过{n}年每个人都长{n}岁", f"The age gap is {d} years, and everyone ages {n} years")
        now, eq = ch.op(a, "+", d)
        ch.say(f"年长的人今年：{eq}岁", f"The older one is now {eq}")
        later, eq = ch.op(now, "+", n)
        ch.say(f"{n}年后：{eq}岁", f"In {n} years: {eq}")
        return {**f, "tpl": wording.AGES_EASY}, later, f"{a}+{d}+{n}"
    c, n = ctx.num(5, 15), ctx.num(5, 20)
    k = ctx.num(3, max(3, min(6, 90 // c)))
    f.update(c=c, k=k, n=n)
    ch.say(f"年幼的人{c}岁，年长的人是{k}倍", f"The younger one is {c}, the older one is {k} times as old")
    old, eq = ch.op(c, "*", k)
    ch.say(f"年长的人今年：{eq}岁", f"The older one is now {eq}")
    young_later, eq = ch.op(c, "+", n)
    ch.say(f"{n}年后年幼的人：{eq}岁", f"In {n} years the younger one is {eq}")
    old_later, eq = ch.op(old, "+", n)
    ch.say(f"{n}年后年长的人：{eq}岁", f"In {n} years the older one is {eq}")
    total, eq = ch.op(young_later, "+", old_later)
    ch.say(f"年龄之和：{eq}岁", f"The sum of their ages: {eq}")
    return {**f, "tpl": wording.AGES_HARD}, total, f"({c}+{n})+({c}*{k}+{n})"


def _word_production(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        p, h = ctx.num(2, 20), ctx.num(2, 9)
        f.update(p=p, h=ctx.qty(h))
        ch.say(f"每小时完成{p}，一共{h}小时", f"The rate is {p} per hour, for {h} hours")
        total, eq = ch.op(p, "*", h)
        ch.say(f"总数=效率×时间：{eq}", f"Total is rate times time: {eq}")
        return {**f, "tpl": wording.PRODUCTION_EASY}, total, f"{p}*{h}"
    p, h, d = ctx.num(12, 60), ctx.num(6, 10), ctx.num(3, 7)
    q = ctx.num(10, 99)
    f.update(p=p, h=h, d=d, q=q)
    ch.say(f"每小时{p}个，每天{h}小时，共{d}天，减去{q}个", f"{p} an hour, {h} hours a day, {d} days, minus {q}")
    daily, eq = ch.op(p, "*", h)
    ch.say(f"每天生产：{eq}个", f"Each day: {eq}")
    total, eq = ch.op(daily, "*", d)
    ch.say(f"{d}天一共：{eq}个", f"In {d} days: {eq}")
    left, eq = ch.op(total, "-", q)
    ch.say(f"去掉{q}个：{eq}个", f"Without the {q}: {eq}")
    return {**f, "tpl": wording.PRODUCTION_HARD}, left, f"{p}*{h}*{d}-{q}"


_WORD_SCENARIOS: list[Callable[[Context, Chain], tuple[dict, int, str]]] = [
    _word_shopping, _word_collect, _word_share, _word_travel, _word_ages, _word_production]


def word(ctx: Context, ch: Chain) -> Problem:
    fields, value, check_expression = ctx.choice(_WORD_SCENARIOS)(ctx, ch)
    check_same(check_expression, value)
    ch.say(f"所以答案是{value}", f"So the answer is {value}")
    key, display = _numeric(value)
    return Problem(ctx.pick(fields.pop("tpl")).format(**fields), key, display)


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
        ch.say(f"一共是{coefficient}个{v}：{coefficient}*{v}={coefficient}{v}",
               f"That is {coefficient} times {v}: {coefficient}*{v}={coefficient}{v}")
        answer = f"{coefficient}{v}"
        ch.say(f"所以答案是{answer}", f"So the answer is {answer}")
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
    ch.sentences.insert(0, ctx.t(f"方程是{equation}。", f"The equation is {equation}."))
    ch.say(f"所以{v}={x}", f"So {v} = {x}")
    left, right = substitute(equation, v, x)
    if left != right:
        raise RuntimeError(f"generator bug: {v}={x} does not solve {equation}")
    user = ctx.pick(wording.EQUATION).format(eq=equation, v=v)
    return Problem(user, canonical_number(Fraction(x)), ctx.t(f"{v}={x}", f"{v} = {x}"))
