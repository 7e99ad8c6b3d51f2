"""Word problems for ``training.reasoning_data``: shopping, collecting, sharing, travel, ages, production.

Each scenario draws its numbers, writes the chain (one operation per sentence, ``Chain.op``) and returns the
template fields, the answer and the expression the calculator checks it against; :func:`word` picks a
scenario and renders its question.
"""

from __future__ import annotations

from collections.abc import Callable

from reasoning import chain_format
from training import reasoning_templates as wording
from training import word_templates
from training.reasoning_problems import Chain, Context, Problem, check_same, numeric_answer
from training.reasoning_story import story


def _word_shopping(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it, cur = (
        ctx.choice(wording.SHOP_ITEMS),
        ctx.t(ctx.choice(["元", "块钱"]), ctx.choice(["dollars", "euros", "yuan"])),
    )
    f = {"name": ctx.name(), "cur": cur, **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        n, p = ctx.num(2, 6), ctx.num(2, 9)
        m = ctx.choice([m for m in (10, 20, 30, 50) if m >= n * p] or [50])
        f.update(n=ctx.qty(n), p=p, m=m)
        ch.say(
            f"每{f['u']}{it[0]}{p}{cur}，买了{n}{f['u']}，付了{m}{cur}",
            f"Each {it[2]} costs {p} {cur}, {n} are bought and {m} {cur} are paid",
        )
        cost, eq = ch.op(n, "*", p)
        ch.say(f"买{it[0]}一共花了{eq}{cur}", f"The {it[3]} cost {eq} {cur}")
        left, eq = ch.op(m, "-", cost)
        ch.say(f"找回的钱是{eq}{cur}", f"The change is {eq} {cur}")
        return {**f, "tpl": word_templates.SHOP_EASY}, left, f"{m}-{n}*{p}"
    it2 = ctx.choice([x for x in wording.SHOP_ITEMS if x != it])
    n1, p1, n2, p2 = ctx.num(2, 9), ctx.num(11, 35), ctx.num(2, 9), ctx.num(11, 35)
    m = ctx.choice([m for m in (100, 200, 500, 1000) if m >= n1 * p1 + n2 * p2])
    f.update(n1=n1, p1=p1, n2=n2, p2=p2, m=m, **wording.item_fields(it2, ctx.lang, "2"))
    ch.say(
        f"{it[0]}{n1}{f['u']}，每{f['u']}{p1}{cur}；{it2[0]}{n2}{f['u2']}，每{f['u2']}{p2}{cur}",
        f"There are {n1} {it[3]} at {p1} {cur} and {n2} {it2[3]} at {p2} {cur}",
    )
    c1, eq = ch.op(n1, "*", p1)
    ch.say(f"{it[0]}花了{eq}{cur}", f"The {it[3]} cost {eq} {cur}")
    c2, eq = ch.op(n2, "*", p2)
    ch.say(f"{it2[0]}花了{eq}{cur}", f"The {it2[3]} cost {eq} {cur}")
    total, eq = ch.op(c1, "+", c2)
    ch.say(f"一共花了{eq}{cur}", f"Together they cost {eq} {cur}")
    left, eq = ch.op(m, "-", total)
    ch.say(f"应找回{eq}{cur}", f"The change is {eq} {cur}")
    return {**f, "tpl": word_templates.SHOP_HARD}, left, f"{m}-({n1}*{p1}+{n2}*{p2})"


def _word_collect(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it = ctx.choice(wording.COLLECT_ITEMS)
    f = {"name": ctx.name(), "other": ctx.name(), **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        a, b = ctx.num(3, 15), ctx.num(2, 10)
        c = ctx.num(1, a + b)
        f.update(a=ctx.qty(a), b=ctx.qty(b), c=ctx.qty(c))
        ch.say(
            f"原来有{a}{f['u']}，得到{b}{f['u']}，又少了{c}{f['u']}",
            f"There were {a} {it[3]}, {b} were added and {c} were taken away",
        )
        s, eq = ch.op(a, "+", b)
        ch.say(f"先算得到以后的数量：{eq}", f"After getting more there are {eq}")
        left, eq = ch.op(s, "-", c)
        ch.say(f"再减去拿走的：{eq}", f"After taking some away there are {eq}")
        return {**f, "tpl": word_templates.COLLECT_EASY}, left, f"{a}+{b}-{c}"
    a, b, c = ctx.num(3, 12), ctx.num(12, 48), ctx.num(10, 40)
    d = ctx.num(10, a * b + c)
    f.update(a=a, b=b, c=c, d=d)
    ch.say(
        f"一共有{a}份，每份{b}{f['u']}，另有{c}{f['u']}，拿走{d}{f['u']}",
        f"There are {a} groups of {b}, {c} more, and {d} are taken away",
    )
    packed, eq = ch.op(a, "*", b)
    ch.say(f"整份的数量：{eq}", f"The full groups hold {eq}")
    total, eq = ch.op(packed, "+", c)
    ch.say(f"加上另外的：{eq}", f"With the extra ones: {eq}")
    left, eq = ch.op(total, "-", d)
    ch.say(f"减去拿走的：{eq}", f"After removing {d}: {eq}")
    return {**f, "tpl": word_templates.COLLECT_HARD}, left, f"{a}*{b}+{c}-{d}"


def _word_share(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    it = ctx.choice(wording.COLLECT_ITEMS)
    f = {"name": ctx.name(), **wording.item_fields(it, ctx.lang)}
    if not ctx.hard:
        k, q = ctx.num(2, 6), ctx.num(2, 9)
        f.update(t=ctx.qty(k * q), k=ctx.qty(k))
        ch.say(f"一共{k * q}{f['u']}，平均分成{k}份", f"There are {k * q} {it[3]} split into {k} equal parts")
        each, eq = ch.op(k * q, "/", k)
        ch.say(f"用除法：{eq}", f"Divide: {eq}")
        return {**f, "tpl": word_templates.SHARE_EASY}, each, f"{k * q}/{k}"
    a, b, k = ctx.num(3, 12), ctx.num(12, 40), ctx.num(3, 9)
    c0 = ctx.num(10, 40)
    c = c0 + (-(a * b + c0)) % k  # makes the total divisible by k
    f.update(a=a, b=b, c=c, k=k)
    ch.say(
        f"有{a}份，每份{b}{f['u']}，另有{c}{f['u']}，平均分给{k}份",
        f"There are {a} groups of {b} plus {c} more, shared among {k}",
    )
    packed, eq = ch.op(a, "*", b)
    ch.say(f"整份的数量：{eq}", f"The full groups hold {eq}")
    total, eq = ch.op(packed, "+", c)
    ch.say(f"总数：{eq}", f"In total: {eq}")
    each, eq = ch.op(total, "/", k)
    ch.say(f"平均分：{eq}", f"Shared equally: {eq}")
    return {**f, "tpl": word_templates.SHARE_HARD}, each, f"({a}*{b}+{c})/{k}"


def _word_travel(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        v, t = ctx.num(2, 20), ctx.num(2, 9)
        f.update(v=v, t=ctx.qty(t))
        ch.say(f"速度是每小时{v}千米，时间是{t}小时", f"The speed is {v} km/h and the time is {t} hours")
        d, eq = ch.op(v, "*", t)
        ch.say(f"路程=速度×时间：{eq}", f"Distance is speed times time: {eq}")
        return {**f, "tpl": word_templates.TRAVEL_EASY}, d, f"{v}*{t}"
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
    return {**f, "tpl": word_templates.TRAVEL_HARD}, left, f"{d}-({v1}*{t1}+{v2}*{t2})"


def _word_ages(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        a, d, n = ctx.num(3, 15), ctx.num(2, 12), ctx.num(2, 10)
        f.update(a=ctx.qty(a), d=ctx.qty(d), n=ctx.qty(n))
        ch.say(
            f"年龄差是{d}岁，过{n}年每个人都长{n}岁", f"The age gap is {d} years, and everyone ages {n} years"
        )
        now, eq = ch.op(a, "+", d)
        ch.say(f"年长的人今年：{eq}岁", f"The older one is now {eq}")
        later, eq = ch.op(now, "+", n)
        ch.say(f"{n}年后：{eq}岁", f"In {n} years: {eq}")
        return {**f, "tpl": word_templates.AGES_EASY}, later, f"{a}+{d}+{n}"
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
    return {**f, "tpl": word_templates.AGES_HARD}, total, f"({c}+{n})+({c}*{k}+{n})"


def _word_production(ctx: Context, ch: Chain) -> tuple[dict, int, str]:
    f = {"name": ctx.name()}
    if not ctx.hard:
        p, h = ctx.num(2, 20), ctx.num(2, 9)
        f.update(p=p, h=ctx.qty(h))
        ch.say(f"每小时完成{p}，一共{h}小时", f"The rate is {p} per hour, for {h} hours")
        total, eq = ch.op(p, "*", h)
        ch.say(f"总数=效率×时间：{eq}", f"Total is rate times time: {eq}")
        return {**f, "tpl": word_templates.PRODUCTION_EASY}, total, f"{p}*{h}"
    p, h, d = ctx.num(12, 60), ctx.num(6, 10), ctx.num(3, 7)
    q = ctx.num(10, 99)
    f.update(p=p, h=h, d=d, q=q)
    ch.say(
        f"每小时{p}个，每天{h}小时，共{d}天，减去{q}个", f"{p} an hour, {h} hours a day, {d} days, minus {q}"
    )
    daily, eq = ch.op(p, "*", h)
    ch.say(f"每天生产：{eq}个", f"Each day: {eq}")
    total, eq = ch.op(daily, "*", d)
    ch.say(f"{d}天一共：{eq}个", f"In {d} days: {eq}")
    left, eq = ch.op(total, "-", q)
    ch.say(f"去掉{q}个：{eq}个", f"Without the {q}: {eq}")
    return {**f, "tpl": word_templates.PRODUCTION_HARD}, left, f"{p}*{h}*{d}-{q}"


_WORD_SCENARIOS: list[Callable[[Context, Chain], tuple[dict, int, str]]] = [
    _word_shopping,
    _word_collect,
    _word_share,
    _word_travel,
    _word_ages,
    _word_production,
]


def word(ctx: Context, ch: Chain) -> Problem:
    # A share of train word problems is composed from parts; the test split keeps the scenarios below, so
    # its figures stay comparable across versions. No draw at share 0: the recipes' data stays as it was.
    if ctx.split == "train" and ctx.story_share and ctx.rng.random() < ctx.story_share:
        return story(ctx, ch)
    fields, value, check_expression = ctx.choice(_WORD_SCENARIOS)(ctx, ch)
    check_same(check_expression, value)
    ch.write(chain_format.answer(ch.lang, value))
    key, display = numeric_answer(value)
    return Problem(ctx.pick(fields.pop("tpl")).format(**fields), key, display)
