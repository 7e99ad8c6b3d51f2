"""Probability problems for ``training.reasoning_data``: draw one object at random from a container.

The chain first restates every colour with its count, in the question's order ("红色球3个，蓝色球2个" /
"Counts: red 3, blue 2"), then the total. An easy problem then needs the asked colour's count, which a small
model cannot look up by colour: that takes an induction head (find the colour earlier, read what followed
it), and the default model has none (README, "The shipped checkpoint"; it picked the other colour's count
half the time in English). So the chain does not look it up. ``check_each`` names the asked colour and goes
through the colours in order, each written with its count, saying whether it is the asked one:

    Asked: blue; red 3 is not blue, blue 2 is blue, so favourable 2.
    所求：蓝色；红色3个，不是蓝色；蓝色2个，蓝色正是所求，所以所求的有2个。

Every step is within reach of a model without an induction head: the colours and counts are copied in the
restatement's order; the verdict compares two colours a few tokens back; the count is copied from right
before the verdict. The verdict's first word is the asked colour itself when it matches ("is blue",
"蓝色正是所求"), so equal colours read from two places add up to one word. Written with "是"/"不是" first,
the Chinese verdict stayed at chance in the screens; written so, it rose (README). The hard problems ask for
two colours or "not" one, which the chain already writes as positional copies ("red or green: 3+5").

The reduction is explicit and checkable: with g = gcd(favourable, total) > 1 it names the divisor and
divides both ("约分：6和10都除以2，6/2=3，10/2=5，所以6/10=3/5"), every part an equation the checker
recomputes; with g = 1 it says the fraction cannot be reduced. ``reduction_errors`` re-checks those claims
from the chain's text (``verify_record`` uses it).
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd

from reasoning import chain_format
from training import reasoning_templates as wording
from training.reasoning_problems import Chain, Context, Problem, check_same, numeric_answer


def restate(ch: Chain, obj: tuple[str, str, str, str], col: list[str], counts: list[int]) -> None:
    """Every colour with its count, in the question's order: "红色球3个，蓝色球2个" / "Counts: red 3, blue 2"
    (a fixed first word keeps every English colour lower-case, the same token where it is looked up)."""
    ch.write(chain_format.counts(ch.lang, col, counts, obj[0], obj[1]))


def check_each(ch: Chain, obj: tuple[str, str, str, str], col: list[str], counts: list[int], ask: int) -> int:
    """The asked colour, then each colour in turn (with its count) checked against it until it is found;
    returns the asked colour's count. "Asked: green; red 8 is not green, green 7 is green, so favourable 7"."""
    ch.write(chain_format.colour_checks(ch.lang, col[ask], col[: ask + 1], counts[: ask + 1], obj[1]))
    return counts[ask]


def _reduce(ch: Chain, favourable: int, total: int) -> Fraction:
    """The reduction step: divide both by their gcd, or say that there is nothing to divide by."""
    g = gcd(favourable, total)
    if g == 1:
        ch.write(chain_format.irreducible(ch.lang, favourable, total))
        return Fraction(favourable, total)
    a, eq_a = ch.op(favourable, "/", g)
    b, eq_b = ch.op(total, "/", g)
    reduced = str(a) if b == 1 else f"{a}/{b}"  # a whole number cannot occur (0 < p < 1); kept correct
    ch.write(chain_format.reduction(ch.lang, favourable, total, g, eq_a, eq_b, reduced))
    return Fraction(a, b)


def probability(ctx: Context, ch: Chain) -> Problem:
    obj = ctx.choice(wording.DRAW_OBJECTS)
    colours = ctx.rng.sample(wording.COLOURS, 3)
    col = [c[0] if ctx.lang == "zh" else c[1] for c in colours]
    f = {
        "c1": col[0],
        "c2": col[1],
        "c3": col[2],
        "container": ctx.choice(wording.CONTAINERS[ctx.lang]),
        "name": ctx.name(),
        **wording.item_fields(obj, ctx.lang),
    }
    if not ctx.hard:
        n1, n2 = ctx.num(2, 9), ctx.num(2, 9)
        ask = ctx.num(0, 1)
        f.update(n1=ctx.qty(n1), n2=ctx.qty(n2), ask=col[ask])
        restate(ch, obj, col[:2], [n1, n2])
        total, eq = ch.op(n1, "+", n2)
        ch.say(f"总数：{eq}", f"Total: {eq}")
        favourable = check_each(ch, obj, col[:2], [n1, n2], ask)
        check = f"{favourable}/({n1}+{n2})"
        template = wording.PROB_EASY
    else:
        n1, n2, n3 = ctx.num(2, 15), ctx.num(2, 15), ctx.num(2, 15)
        restate(ch, obj, col, [n1, n2, n3])
        s, eq = ch.op(n1, "+", n2)
        ch.say(f"先把前两种加起来：{eq}", f"The first two colours: {eq}")
        total, eq = ch.op(s, "+", n3)
        ch.say(f"总数：{eq}", f"Total: {eq}")
        if ctx.rng.random() < 0.5:
            f["ask"] = ctx.t(f"取到{col[0]}{obj[0]}或{col[2]}{obj[0]}", f"it is {col[0]} or {col[2]}")
            favourable, eq = ch.op(n1, "+", n3)
            ch.say(f"{col[0]}和{col[2]}一共：{eq}", f"{col[0]} or {col[2]}: {eq}")
            check = f"({n1}+{n3})/({n1}+{n2}+{n3})"
        else:
            f["ask"] = ctx.t(f"取到的不是{col[1]}{obj[0]}", f"it is not {col[1]}")
            favourable, eq = ch.op(total, "-", n2)
            ch.say(f"不是{col[1]}的：{eq}", f"Not {col[1]}: {eq}")
            check = f"({n1}+{n2}+{n3}-{n2})/({n1}+{n2}+{n3})"
        f.update(n1=n1, n2=n2, n3=n3)
        template = wording.PROB_HARD
    ch.write(chain_format.probability(ch.lang, obj[1], obj[2], favourable, total))
    p = _reduce(ch, favourable, total)
    check_same(check, p)
    key, display = numeric_answer(p)
    return Problem(ctx.pick(template).format(**f), key, display)


def _reduction_error(groups: tuple[str, ...]) -> list[str]:
    f, t, g, f1, g1, a, t2, g2, b, f3, t3, result = groups
    errors = []
    if (f1, g1, t2, g2, f3, t3) != (f, g, t, g, f, t) or result != (a if b == "1" else f"{a}/{b}"):
        errors.append(f"reduction of {f}/{t} by {g} does not divide both by {g} and write the quotients")
    if int(g) != gcd(int(f), int(t)):
        errors.append(
            f"reduction of {f}/{t} by {g}, but their greatest common factor is {gcd(int(f), int(t))}"
        )
    return errors


def reduction_errors(cot: str, answer: str) -> list[str]:
    """Problems with a probability chain's reduction, from its text: it must say exactly once either
    "divide both by g" with g the greatest common factor (and divide both by it) or "cannot be reduced"
    with no common factor, and that verdict must give ``answer``. Equations are checked elsewhere."""
    errors, verdicts = [], []
    for lang, regex in chain_format.REDUCTION_RE.items():
        for m in regex.finditer(cot):
            errors += _reduction_error(m.groups() if lang == "zh" else (m[2], m[5], *m.groups()))
            verdicts.append(m.groups()[-1])
    for m in (match for regex in chain_format.IRREDUCIBLE_RE.values() for match in regex.finditer(cot)):
        f, t, f2, t2 = m.groups()
        if (f2, t2) != (f, t):
            errors.append(f"irreducibility claim mixes {f}/{t} and {f2}/{t2}")
        elif gcd(int(f), int(t)) != 1:
            errors.append(f"{f}/{t} is said to be in lowest terms, but both divide by {gcd(int(f), int(t))}")
        verdicts.append(f"{f}/{t}")
    if len(chain_format.REDUCTION_START_RE.findall(cot)) != sum(
        len(regex.findall(cot)) for regex in chain_format.REDUCTION_RE.values()
    ):
        errors.append("malformed reduction step")
    if len(verdicts) != 1:
        errors.append(f"expected one reduction verdict, found {len(verdicts)}")
    elif verdicts[0] != answer:
        errors.append(f"reduction gives {verdicts[0]}, answer is {answer}")
    return errors
