"""Word problems composed from a grammar, for ``training.reasoning_word``: the chain translates the story.

The six scenarios of ``training.reasoning_word`` each have a few fixed templates, and a model trained on
them learns to recognise a template and replay its chain; a question worded otherwise gets the nearest
template's chain with the wrong numbers. Here a story is put together from independent parts (how many
containers, what each holds, what is added, taken away, bought, paid or shared; the question last or
first), each part with several phrasings in both languages, over many worlds of nouns. The chain does not
narrate the story: it restates each number with what it counts ("28 trees, 6 boxes on each tree"), then
translates the whole into one expression ("Given: 28*6*15-81") and works it exactly as a bare expression
(``training.reasoning_problems.write_steps``). What is learnt is the translation, which transfers to
wordings never seen, and the arithmetic, which the bare expressions already train.

Numbers that play no part in the answer are never added: the chain check (``reasoning.chain_check``)
treats a question number the chain never uses as a sign that it answers another question. The nouns and
phrasings are in ``training.story_templates``.
"""

from __future__ import annotations

from collections.abc import Callable

from reasoning import chain_format
from training.reasoning_problems import (
    Chain,
    Context,
    Problem,
    Reject,
    check_same,
    numeric_answer,
    write_steps,
)
from training.story_templates import (
    ADDED,
    ASK_CHANGE,
    ASK_LEFT,
    ASK_MEASURE,
    ASK_NOW,
    ASK_OTHER,
    ASK_SHARE,
    ASK_SPENT,
    ASK_TOTAL,
    BUY,
    DAILY,
    DAILY_WORK,
    EACH,
    EXTRA,
    GAIN,
    GIVE,
    GOODS,
    HAVE,
    IN_EACH,
    LOSE,
    MEASURE,
    MEASURED,
    MORE,
    NAMES,
    OWNED,
    OWNS,
    PAY,
    PRICE,
    SHARE,
    START,
    TAKEN,
    TWO_DAYS,
    WORLDS,
    Noun,
)


def _asked(thing: Noun) -> dict[str, str]:
    """The fields a question about ``thing`` fills: "How many {things} …", "还剩多少{unit}{thing}"."""
    return {"unit": thing.unit, "thing": thing.zh, "things": thing.en_plural}


def _leaf(n: int) -> list:
    return [n]


def _node(op: str, left: list, right: list) -> list:
    value, _ = Chain("en").op(left[0], op, right[0])  # Reject on a negative or inexact step
    if value > 9999 or value == 0:
        raise Reject("outside the story's range")
    return [value, op, left, right]


class _Story:
    """The sentences of the question, the chain's restated numbers and the expression tree, built together."""

    def __init__(self, ctx: Context) -> None:
        self.ctx, self.lang = ctx, ctx.lang
        self.who = ctx.choice(NAMES[ctx.lang])
        self.sentences: list[str] = []
        self.facts: list[str] = []

    def say(self, phrasings: dict[str, list[str]], **fields: object) -> None:
        self.sentences.append(self.ctx.choice(phrasings[self.lang]).format(who=self.who, **fields))

    def fact(self, text: str) -> None:
        self.facts.append(text)

    def have(self, noun: Noun, n: int) -> list:
        """ "Nora has 17 storerooms." and its fact; the tree's first leaf."""
        self.say(HAVE, a=noun.count(self.lang, n))
        self.fact(noun.count(self.lang, n))
        return _leaf(n)

    def each(self, root: list, container: Noun, thing: Noun, n: int) -> list:
        """ "Each storeroom holds 24 stacks." and its fact; ``root`` times n."""
        outer = container.zh if self.lang == "zh" else container.en
        inner = thing.count(self.lang, n)
        self.say(EACH, outer=outer, unit=container.unit, inner=inner)
        self.fact(IN_EACH[self.lang].format(unit=container.unit, outer=outer, inner=inner))
        return _node("*", root, _leaf(n))

    def extra(self, root: list, thing: Noun, c: int) -> list:
        """ "Besides those there are 40 bricks." and its fact; ``root`` plus c."""
        self.say(EXTRA, c=thing.count(self.lang, c))
        self.fact(ADDED[self.lang].format(c=c))
        return _node("+", root, _leaf(c))

    def question(self, ask: dict[str, list[str]], **fields: object) -> str:
        self.say(ask, **fields)
        *story, asked = self.sentences
        if self.ctx.rng.random() < 0.25:  # the question first, the facts after
            story = [asked, *story]
        else:
            story = [*story, asked]
        return ("" if self.lang == "zh" else " ").join(story)


def _nested(ctx: Context, s: _Story) -> tuple[str, list]:
    outer, middle, inner, gone_en, gone_zh = ctx.choice(WORLDS)
    lang, hard = ctx.lang, ctx.hard
    three = hard and ctx.rng.random() < 0.7
    levels = (outer, middle, inner) if three else ctx.choice([(outer, middle), (middle, inner)])
    counts = [ctx.num(2, 30) if hard else ctx.num(2, 9) for _ in levels]
    root = s.have(levels[0], counts[0])
    for up, down, n in zip(levels, levels[1:], counts[1:], strict=False):
        root = s.each(root, up, down, n)
    thing = levels[-1]
    changes = ctx.choice(["", "+", "-", "--", "+-"] if hard else ["", "+", "-"])
    if changes == "" and not three and hard:
        changes = "-"
    removed = 0
    for change in changes:
        if change == "+":
            root = s.extra(root, thing, ctx.num(2, 40))
            continue
        d = ctx.num(2, max(2, min(99, root[0] - 1)))
        if removed:
            s.say(GIVE, d=thing.count(lang, d))
        elif lang == "zh":
            s.sentences.append(f"其中{thing.count(lang, d)}{gone_zh}。")
        else:
            s.sentences.append(f"Of these, {thing.count(lang, d)} {gone_en}.")
        removed += 1
        s.fact(TAKEN[lang].format(d=d))
        root = _node("-", root, _leaf(d))
    fields = _asked(thing)
    return s.question(ASK_LEFT if "-" in changes else ASK_TOTAL, **fields), root


def _daily(ctx: Context, s: _Story) -> tuple[str, list]:
    zh_verb, en_verb, done, holds = ctx.choice(DAILY_WORK)
    lang = ctx.lang
    days, per_day = ctx.num(2, 9), ctx.num(2, 40) if ctx.hard else ctx.num(2, 9)
    s.say(DAILY, a=days, b=done.count(lang, per_day), verb=zh_verb if lang == "zh" else en_verb)
    s.fact(
        f"{days}天，每天{done.count(lang, per_day)}"
        if lang == "zh"
        else f"{days} days, {done.count(lang, per_day)} a day"
    )
    root = _node("*", _leaf(days), _leaf(per_day))
    thing = done
    if ctx.hard:
        root, thing = s.each(root, done, holds, ctx.num(2, 40)), holds
    fields = _asked(thing)
    return s.question(ASK_TOTAL, **fields), root


def _shopping(ctx: Context, s: _Story) -> tuple[str, list]:
    lang = ctx.lang
    cur = ctx.choice(["元", "块钱"]) if lang == "zh" else ctx.choice(["dollars", "euros", "pounds"])
    g1 = ctx.choice(GOODS)
    x, p = (ctx.num(2, 9), ctx.num(2, 30)) if ctx.hard else (ctx.num(2, 6), ctx.num(2, 9))
    cost = _node("*", _leaf(x), _leaf(p))
    fields = {"cur": cur, "p": p, "u1": g1.unit, "g1": g1.zh if lang == "zh" else g1.en, "g1s": g1.en_plural}
    if ctx.hard:
        g2 = ctx.choice([g for g in GOODS if g != g1])
        y, q = ctx.num(2, 9), ctx.num(2, 30)
        fields |= {"q": q, "u2": g2.unit, "g2": g2.zh if lang == "zh" else g2.en, "g2s": g2.en_plural}
        s.say(PRICE, **fields)
        s.say(BUY, x=g1.count(lang, x), y=g2.count(lang, y))
        cost = _node("+", cost, _node("*", _leaf(y), _leaf(q)))
        s.fact(_bought(lang, g1, x, p, cur) + ("，" if lang == "zh" else ", ") + _bought(lang, g2, y, q, cur))
    else:
        if lang == "zh":
            s.sentences.append(f"{g1.zh}每{g1.unit}{p}{cur}，{s.who}买了{g1.count(lang, x)}。")
        else:
            s.sentences.append(f"{s.who} buys {g1.count(lang, x)} at {p} {cur} each.")
        s.fact(_bought(lang, g1, x, p, cur))
    if ctx.rng.random() < 0.3:
        return s.question(ASK_SPENT, cur=cur), cost
    m = next((m for m in (10, 20, 50, 100, 200, 500) if m > cost[0]), 0)
    if not m:
        raise Reject("no note large enough")
    s.say(PAY, m=m, cur=cur)
    s.fact(f"付了{m}{cur}" if lang == "zh" else f"{m} {cur} paid")
    return s.question(ASK_CHANGE, cur=cur), _node("-", _leaf(m), cost)


def _bought(lang: str, good: Noun, n: int, price: int, cur: str) -> str:
    return (
        f"{good.count(lang, n)}，每{good.unit}{price}{cur}"
        if lang == "zh"
        else f"{good.count(lang, n)} at {price} {cur}"
    )


def _sharing(ctx: Context, s: _Story) -> tuple[str, list]:
    outer, middle, inner, _, _ = ctx.choice(WORLDS)
    lang, k = ctx.lang, ctx.num(2, 9)
    container, thing = ctx.choice([(outer, middle), (middle, inner)])
    a = ctx.num(2, 20) if ctx.hard else ctx.num(2, 5)
    b = ctx.num(2, 30) if ctx.hard else k * ctx.num(1, 3)
    total = s.each(s.have(container, a), container, thing, b)
    if ctx.hard:
        c = (-total[0]) % k + k * ctx.num(0, 3)  # keeps the total divisible by k
        if c < 2:
            raise Reject("nothing extra")
        total = s.extra(total, thing, c)
    fields = {**_asked(thing), "thing": thing.zh or thing.unit, "k": k}  # "这些{thing}" needs a noun
    s.say(SHARE, **fields)
    s.fact(f"分成{k}份" if lang == "zh" else f"shared by {k}")
    return s.question(ASK_SHARE, **fields), _node("/", total, _leaf(k))


def _change(ctx: Context, s: _Story) -> tuple[str, list]:
    """One kind of thing gained and lost: a+b, a-b, a+b-c, a-b+c (hard: two changes)."""
    thing, lang = ctx.choice(OWNED), ctx.lang
    fields = _asked(thing)
    top = 99 if ctx.hard else 20
    a = ctx.num(2, top)
    if not ctx.hard and ctx.rng.random() < 0.3:
        b = ctx.num(2, top)
        s.say(TWO_DAYS, a=thing.count(lang, a), b=thing.count(lang, b))
        s.fact(f"{a}，{b}" if lang == "zh" else f"{a} and {b}")
        return s.question(ASK_TOTAL, **fields), _node("+", _leaf(a), _leaf(b))
    s.say(START, a=thing.count(lang, a))
    s.fact(thing.count(lang, a))
    root = _leaf(a)
    for _ in range(2 if ctx.hard else 1):
        gain = ctx.rng.random() < 0.5 or root[0] < 3
        b = ctx.num(2, top) if gain else ctx.num(1, root[0] - 1)
        s.say(GAIN if gain else LOSE, b=thing.count(lang, b))
        s.fact((ADDED if gain else TAKEN)[lang].format(c=b, d=b))
        root = _node("+" if gain else "-", root, _leaf(b))
    return s.question(ASK_NOW, **fields), root


def _compare(ctx: Context, s: _Story) -> tuple[str, list]:
    """Another's count from one's: b more, b fewer, b times as many (hard: then more or fewer than that)."""
    thing, lang = ctx.choice(OWNED), ctx.lang
    names = [n for n in NAMES[lang] if n != s.who]
    other = ctx.choice(names)
    fields = {**_asked(thing), "other": other}
    a = ctx.num(2, 30 if ctx.hard else 20)
    s.say(OWNS, a=thing.count(lang, a))
    s.fact(f"{s.who}{thing.count(lang, a)}" if lang == "zh" else f"{s.who} {thing.count(lang, a)}")
    root = _leaf(a)
    ops = [ctx.choice("*+-")] if not ctx.hard else ["*", ctx.choice("+-")]
    for i, op in enumerate(ops):
        b = ctx.num(2, 9) if op == "*" else ctx.num(1, min(20, root[0] - 1)) if op == "-" else ctx.num(2, 20)
        if i:  # a third person, compared with the second
            s.who, other = other, ctx.choice([n for n in names if n != other])
            fields["other"] = other
        s.sentences.append(MORE[lang][op].format(who=s.who, other=other, b=b, unit=thing.unit))
        zh = {"+": "{o}比{w}多{b}", "-": "{o}比{w}少{b}", "*": "{o}是{w}的{b}倍"}[op]
        en = {"+": "{o} {b} more", "-": "{o} {b} fewer", "*": "{o} {b} times as many"}[op]
        s.fact((zh if lang == "zh" else en).format(o=other, w=s.who, b=b))
        root = _node(op, root, _leaf(b))
    return s.question(ASK_OTHER, **fields), root


def _measure(ctx: Context, s: _Story) -> tuple[str, list]:
    """Many of one thing, each of one weight or length: n*w (hard: and some more, or some taken)."""
    thing, zh_measure, en_measure = ctx.choice(MEASURED)
    lang = ctx.lang
    measure = zh_measure if lang == "zh" else en_measure
    n, w = (ctx.num(2, 30), ctx.num(2, 40)) if ctx.hard else (ctx.num(2, 9), ctx.num(2, 20))
    s.say(
        MEASURE,
        n=n,
        w=w,
        measure=measure,
        unit=thing.unit,
        thing=thing.zh,
        item=thing.en,
        items=thing.en_plural,
    )
    s.fact(
        f"{n}{thing.unit}，每{thing.unit}{w}{measure}"
        if lang == "zh"
        else f"{n} {thing.en_plural}, {w} {measure} each"
    )
    return s.question(ASK_MEASURE, measure=measure), _node("*", _leaf(n), _leaf(w))


_SHAPES: list[Callable[[Context, _Story], tuple[str, list]]] = [
    _nested,
    _nested,
    _daily,
    _shopping,
    _sharing,
    _change,
    _compare,
    _measure,
]


def story(ctx: Context, ch: Chain) -> Problem:
    """A composed word problem; its chain restates the numbers, copies the expression and works it."""
    s = _Story(ctx)
    user, root = ctx.choice(_SHAPES)(ctx, s)
    ch.say("数量关系：" + "，".join(s.facts), "The numbers: " + "; ".join(s.facts))
    plain = write_steps(ctx, ch, root)
    value = root[0]
    check_same(plain, value)
    ch.write(chain_format.answer(ch.lang, value))
    key, display = numeric_answer(value)
    return Problem(user, key, display)
