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
treats a question number the chain never uses as a sign that it answers another question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reasoning import chain_format
from reasoning.calculator import evaluate
from training.reasoning_problems import (
    _PLAIN,
    Chain,
    Context,
    Problem,
    Reject,
    _render,
    numeric_answer,
    write_steps,
)


@dataclass(frozen=True)
class Noun:
    zh: str  # may be empty where the measure word names the thing ("8箱", "120页")
    unit: str  # the Chinese measure word
    en: str
    en_plural: str

    def count(self, lang: str, n: int | str) -> str:
        """ "12 bottles" / "12瓶水"."""
        if lang == "zh":
            return f"{n}{self.unit}{self.zh}"
        return f"{n} {self.en if n == 1 else self.en_plural}"


def _n(zh: str, unit: str, en: str, en_plural: str | None = None) -> Noun:
    return Noun(zh, unit, en, en_plural or en + "s")


# Three levels, outer to inner, and what may happen to the inner things (en: "… were broken", zh: "…摔碎了").
WORLDS: list[tuple[Noun, Noun, Noun, str, str]] = [
    (_n("卡车", "辆", "truck"), _n("", "箱", "crate"), _n("水", "瓶", "bottle"), "got broken", "摔碎了"),
    (
        _n("楼", "栋", "block"),
        _n("", "层", "floor"),
        _n("房间", "间", "room"),
        "are being repaired",
        "在维修",
    ),
    (
        _n("书柜", "个", "bookcase"),
        _n("", "层", "shelf", "shelves"),
        _n("书", "本", "book"),
        "are on loan",
        "被借走了",
    ),
    (
        _n("菜园", "块", "vegetable plot"),
        _n("", "行", "row"),
        _n("白菜", "棵", "cabbage"),
        "were eaten by pests",
        "被虫咬坏了",
    ),
    (
        _n("纸箱", "个", "carton"),
        _n("", "盒", "pack"),
        _n("铅笔", "支", "pencil"),
        "were handed out",
        "发出去了",
    ),
    (
        _n("年级", "个", "year group"),
        _n("班", "个", "class", "classes"),
        _n("学生", "名", "pupil"),
        "are off sick",
        "请假了",
    ),
    (_n("货架", "个", "rack"), _n("", "排", "tier"), _n("罐头", "个", "tin"), "were sold", "卖掉了"),
    (_n("鸡舍", "个", "hen house"), _n("", "笼", "cage"), _n("鸡蛋", "个", "egg"), "cracked", "打破了"),
    (
        _n("相册", "本", "album"),
        _n("", "页", "page"),
        _n("照片", "张", "photo"),
        "were taken out",
        "被取走了",
    ),
    (_n("仓库", "间", "storeroom"), _n("", "堆", "stack"), _n("砖", "块", "brick"), "were used up", "用掉了"),
    (_n("船", "艘", "boat"), _n("", "舱", "cabin"), _n("乘客", "位", "passenger"), "went ashore", "上岸了"),
    (_n("停车场", "个", "car park"), _n("", "排", "lane"), _n("汽车", "辆", "car"), "drove away", "开走了"),
]

# Repetition over days: (zh verb, en verb, what is done each day, what each of those holds).
DAILY: list[tuple[str, str, Noun, Noun]] = [
    ("读", "reads", _n("", "章", "chapter"), _n("", "页", "page")),
    ("写", "writes", _n("", "页", "page"), _n("字", "行", "line")),
    ("烤", "bakes", _n("", "盘", "tray"), _n("饼干", "块", "biscuit")),
    ("装", "fills", _n("", "袋", "sack"), _n("土豆", "个", "potato", "potatoes")),
    ("折", "folds", _n("", "串", "string"), _n("纸鹤", "只", "paper crane")),
    ("搭", "builds", _n("", "座", "tower"), _n("积木", "块", "block")),
]

GOODS: list[Noun] = [
    _n("笔记本", "本", "notebook"),
    _n("钢笔", "支", "fountain pen"),
    _n("蛋糕", "块", "slice of cake", "slices of cake"),
    _n("车票", "张", "bus ticket"),
    _n("邮票", "枚", "stamp"),
    _n("杯子", "个", "mug"),
    _n("足球", "个", "football"),
    _n("风筝", "只", "kite"),
    _n("围巾", "条", "scarf", "scarves"),
    _n("西瓜", "个", "watermelon"),
]

# Things weighed or measured: (zh container, measure word, en container, its plural, zh/en unit of measure).
MEASURED: list[tuple[Noun, str, str]] = [
    (_n("大米", "袋", "sack of rice", "sacks of rice"), "千克", "kg"),
    (_n("绳子", "根", "rope"), "米", "metres"),
    (_n("书", "箱", "carton of books", "cartons of books"), "千克", "kg"),
    (_n("油", "桶", "drum of oil", "drums of oil"), "升", "litres"),
    (_n("布", "卷", "roll of cloth", "rolls of cloth"), "米", "metres"),
]
# Things people own, for the changes and comparisons of one kind of thing.
OWNED: list[Noun] = [
    _n("邮票", "枚", "stamp"),
    _n("贝壳", "个", "seashell"),
    _n("彩笔", "支", "crayon"),
    _n("积木", "块", "building block"),
    _n("书签", "张", "bookmark"),
    _n("玻璃杯", "个", "glass", "glasses"),
    _n("种子", "颗", "seed"),
]

NAMES = {
    "zh": ["小林", "周阿姨", "赵老师", "小月", "阿强", "孙爷爷", "小雪", "马叔叔"],
    "en": ["Nora", "Felix", "Ines", "Ravi", "Chloe", "Hugo", "Yara", "Dev"],
}

# ---------------------------------------------------------------- phrasings of the parts

_HAVE = {
    "zh": ["{who}有{a}。", "一共有{a}。", "{who}那里有{a}。", "数一数，有{a}。"],
    "en": ["{who} has {a}.", "There are {a}.", "{who} looks after {a}.", "We count {a}."],
}
_EACH = {  # A holds n B; fields: outer (singular / zh noun with unit), inner (a count)
    "zh": ["每{unit}{outer}有{inner}。", "每{unit}{outer}里有{inner}。", "一{unit}{outer}放着{inner}。"],
    "en": [
        "Each {outer} holds {inner}.",
        "There are {inner} in every {outer}.",
        "Inside one {outer} there are {inner}.",
    ],
}
_EXTRA = {
    "zh": ["另外还有{c}。", "旁边还多出{c}。"],
    "en": ["On top of that there are {c}.", "{c} more are kept to one side.", "Besides those there are {c}."],
}
_GIVE = {
    "zh": ["{who}又送给邻居{d}。", "后来拿走了{d}。"],
    "en": ["{who} then gives {d} to a neighbour.", "Later {d} are taken away."],
}
_ASK_TOTAL = {
    "zh": ["一共有多少{unit}{thing}？", "总共是几{unit}{thing}？", "算一算，{thing}共有多少{unit}？"],
    "en": [
        "How many {things} is that altogether?",
        "What is the total number of {things}?",
        "Count the {things}: how many are there?",
    ],
}
_ASK_LEFT = {
    "zh": ["现在还有多少{unit}{thing}？", "剩下几{unit}{thing}？", "最后剩多少{unit}{thing}？"],
    "en": [
        "How many {things} are still there?",
        "What number of {things} remains?",
        "How many {things} are there now?",
    ],
}
_DAILY = {
    "zh": ["{who}连着{a}天，每天{verb}{b}。", "{a}天里，{who}每天都{verb}{b}。"],
    "en": ["{who} {verb} {b} a day for {a} days.", "For {a} days in a row, {who} {verb} {b} each day."],
}
_PRICE = {
    "zh": ["{g1}每{u1}{p}{cur}，{g2}每{u2}{q}{cur}。", "一{u1}{g1}卖{p}{cur}，一{u2}{g2}卖{q}{cur}。"],
    "en": [
        "A {g1} costs {p} {cur} and a {g2} costs {q} {cur}.",
        "The shop sells {g1s} at {p} {cur} and {g2s} at {q} {cur}.",
    ],
}
_BUY = {
    "zh": ["{who}买了{x}和{y}。", "{who}挑了{x}，还有{y}。"],
    "en": ["{who} picks {x} and {y}.", "{who} orders {x} as well as {y}."],
}
_PAY = {
    "zh": ["{who}拿出{m}{cur}付钱。", "{who}给了店员{m}{cur}。"],
    "en": ["{who} hands over {m} {cur}.", "{who} pays {m} {cur} in cash."],
}
_ASK_CHANGE = {
    "zh": ["店员应该找给{who}多少{cur}？", "{who}能拿回几{cur}？"],
    "en": ["How much change comes back, in {cur}?", "What change does {who} get, in {cur}?"],
}
_ASK_SPENT = {
    "zh": ["{who}一共要付多少{cur}？", "这些东西一共多少{cur}？"],
    "en": ["How many {cur} does it all cost?", "What does {who} spend, in {cur}?"],
}
_SHARE = {
    "zh": ["这些{thing}平均分给{k}个人。", "把{thing}平分成{k}份。"],
    "en": [
        "The {things} are split evenly between {k} people.",
        "They share the {things} out equally in {k} parts.",
    ],
}
_ASK_SHARE = {
    "zh": ["每人分到几{unit}？", "每份有多少{unit}{thing}？"],
    "en": ["How many {things} does each get?", "How many {things} go into each part?"],
}
_START = {
    "zh": ["{who}原来有{a}。", "一开始，{who}手上有{a}。", "早上{who}数了数，有{a}。"],
    "en": ["{who} starts out with {a}.", "At first {who} owns {a}.", "This morning {who} counted {a}."],
}
_GAIN = {
    "zh": ["后来{who}又得到{b}。", "朋友又送给{who}{b}。", "{who}又找到了{b}。"],
    "en": ["Later {who} is given {b}.", "A friend adds {b} to them.", "Then {who} finds {b} more."],
}
_LOSE = {
    "zh": ["后来{who}送出去{b}。", "不小心丢了{b}。", "{who}用掉了{b}。"],
    "en": ["Later {who} gives {b} away.", "Sadly {b} get lost.", "{who} uses up {b}."],
}
_TWO_DAYS = {
    "zh": ["{who}第一天收集了{a}，第二天又收集了{b}。", "上午{who}收到{a}，下午收到{b}。"],
    "en": [
        "{who} collects {a} on the first day and {b} on the second.",
        "{who} gets {a} before lunch and {b} after.",
    ],
}
_ASK_NOW = {
    "zh": ["现在{who}有多少{unit}{thing}？", "{who}最后有几{unit}{thing}？"],
    "en": ["How many {things} does {who} have now?", "At the end, how many {things} are there?"],
}
_MORE = {  # the other has b more / fewer / k times as many
    "zh": {
        "+": "{other}比{who}多{b}{unit}。",
        "-": "{other}比{who}少{b}{unit}。",
        "*": "{other}的是{who}的{b}倍。",
    },
    "en": {
        "+": "{other} has {b} more than {who}.",
        "-": "{other} has {b} fewer than {who}.",
        "*": "{other} has {b} times as many as {who}.",
    },
}
_OWNS = {
    "zh": ["{who}有{a}。", "{who}手里有{a}。"],
    "en": ["{who} has {a}.", "{who} keeps {a}."],
}
_ASK_OTHER = {
    "zh": ["{other}有多少{unit}{thing}？", "那么{other}有几{unit}？"],
    "en": ["How many {things} does {other} have?", "What is {other}'s count of {things}?"],
}
_MEASURE = {
    "zh": [
        "每{unit}{thing}有{w}{measure}。{who}搬来{n}{unit}。",
        "{who}买了{n}{unit}{thing}，每{unit}{w}{measure}。",
    ],
    "en": [
        "A single {item} measures {w} {measure}. {who} brings {n} of them.",
        "{who} buys {n} {items}, {w} {measure} each.",
    ],
}
_ASK_MEASURE = {
    "zh": ["一共有多少{measure}？", "合起来是几{measure}？"],
    "en": ["In all, how many {measure} are there?", "What is the total, in {measure}?"],
}
# Restating the numbers in the chain: "12 crates, 24 bottles in each crate".
_IN_EACH = {"zh": "每{unit}{outer}{inner}", "en": "{inner} in each {outer}"}
_TAKEN = {"zh": "去掉{d}", "en": "{d} taken away"}
_ADDED = {"zh": "加上{c}", "en": "{c} added"}


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
        self.say(_HAVE, a=noun.count(self.lang, n))
        self.fact(noun.count(self.lang, n))
        return _leaf(n)

    def each(self, root: list, container: Noun, thing: Noun, n: int) -> list:
        """ "Each storeroom holds 24 stacks." and its fact; ``root`` times n."""
        outer = container.zh if self.lang == "zh" else container.en
        inner = thing.count(self.lang, n)
        self.say(_EACH, outer=outer, unit=container.unit, inner=inner)
        self.fact(_IN_EACH[self.lang].format(unit=container.unit, outer=outer, inner=inner))
        return _node("*", root, _leaf(n))

    def extra(self, root: list, thing: Noun, c: int) -> list:
        """ "Besides those there are 40 bricks." and its fact; ``root`` plus c."""
        self.say(_EXTRA, c=thing.count(self.lang, c))
        self.fact(_ADDED[self.lang].format(c=c))
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
            s.say(_GIVE, d=thing.count(lang, d))
        elif lang == "zh":
            s.sentences.append(f"其中{thing.count(lang, d)}{gone_zh}。")
        else:
            s.sentences.append(f"Of these, {thing.count(lang, d)} {gone_en}.")
        removed += 1
        s.fact(_TAKEN[lang].format(d=d))
        root = _node("-", root, _leaf(d))
    fields = {"unit": thing.unit, "thing": thing.zh or "", "things": thing.en_plural}
    return s.question(_ASK_LEFT if "-" in changes else _ASK_TOTAL, **fields), root


def _daily(ctx: Context, s: _Story) -> tuple[str, list]:
    zh_verb, en_verb, done, holds = ctx.choice(DAILY)
    lang = ctx.lang
    days, per_day = ctx.num(2, 9), ctx.num(2, 40) if ctx.hard else ctx.num(2, 9)
    s.say(_DAILY, a=days, b=done.count(lang, per_day), verb=zh_verb if lang == "zh" else en_verb)
    s.fact(
        f"{days}天，每天{done.count(lang, per_day)}"
        if lang == "zh"
        else f"{days} days, {done.count(lang, per_day)} a day"
    )
    root = _node("*", _leaf(days), _leaf(per_day))
    thing = done
    if ctx.hard:
        root, thing = s.each(root, done, holds, ctx.num(2, 40)), holds
    fields = {"unit": thing.unit, "thing": thing.zh or "", "things": thing.en_plural}
    return s.question(_ASK_TOTAL, **fields), root


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
        s.say(_PRICE, **fields)
        s.say(_BUY, x=g1.count(lang, x), y=g2.count(lang, y))
        cost = _node("+", cost, _node("*", _leaf(y), _leaf(q)))
        s.fact(_bought(lang, g1, x, p, cur) + ("，" if lang == "zh" else ", ") + _bought(lang, g2, y, q, cur))
    else:
        if lang == "zh":
            s.sentences.append(f"{g1.zh}每{g1.unit}{p}{cur}，{s.who}买了{g1.count(lang, x)}。")
        else:
            s.sentences.append(f"{s.who} buys {g1.count(lang, x)} at {p} {cur} each.")
        s.fact(_bought(lang, g1, x, p, cur))
    if ctx.rng.random() < 0.3:
        return s.question(_ASK_SPENT, cur=cur), cost
    m = next((m for m in (10, 20, 50, 100, 200, 500) if m > cost[0]), 0)
    if not m:
        raise Reject("no note large enough")
    s.say(_PAY, m=m, cur=cur)
    s.fact(f"付了{m}{cur}" if lang == "zh" else f"{m} {cur} paid")
    return s.question(_ASK_CHANGE, cur=cur), _node("-", _leaf(m), cost)


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
    fields = {"unit": thing.unit, "thing": thing.zh or thing.unit, "things": thing.en_plural, "k": k}
    s.say(_SHARE, **fields)
    s.fact(f"分成{k}份" if lang == "zh" else f"shared by {k}")
    return s.question(_ASK_SHARE, **fields), _node("/", total, _leaf(k))


def _change(ctx: Context, s: _Story) -> tuple[str, list]:
    """One kind of thing gained and lost: a+b, a-b, a+b-c, a-b+c (hard: two changes)."""
    thing, lang = ctx.choice(OWNED), ctx.lang
    fields = {"unit": thing.unit, "thing": thing.zh, "things": thing.en_plural}
    top = 99 if ctx.hard else 20
    a = ctx.num(2, top)
    if not ctx.hard and ctx.rng.random() < 0.3:
        b = ctx.num(2, top)
        s.say(_TWO_DAYS, a=thing.count(lang, a), b=thing.count(lang, b))
        s.fact(f"{a}，{b}" if lang == "zh" else f"{a} and {b}")
        return s.question(_ASK_TOTAL, **fields), _node("+", _leaf(a), _leaf(b))
    s.say(_START, a=thing.count(lang, a))
    s.fact(thing.count(lang, a))
    root = _leaf(a)
    for _ in range(2 if ctx.hard else 1):
        gain = ctx.rng.random() < 0.5 or root[0] < 3
        b = ctx.num(2, top) if gain else ctx.num(1, root[0] - 1)
        s.say(_GAIN if gain else _LOSE, b=thing.count(lang, b))
        s.fact((_ADDED if gain else _TAKEN)[lang].format(c=b, d=b))
        root = _node("+" if gain else "-", root, _leaf(b))
    return s.question(_ASK_NOW, **fields), root


def _compare(ctx: Context, s: _Story) -> tuple[str, list]:
    """Another's count from one's: b more, b fewer, b times as many (hard: then more or fewer than that)."""
    thing, lang = ctx.choice(OWNED), ctx.lang
    names = [n for n in NAMES[lang] if n != s.who]
    other = ctx.choice(names)
    fields = {"unit": thing.unit, "thing": thing.zh, "things": thing.en_plural, "other": other}
    a = ctx.num(2, 30 if ctx.hard else 20)
    s.say(_OWNS, a=thing.count(lang, a))
    s.fact(f"{s.who}{thing.count(lang, a)}" if lang == "zh" else f"{s.who} {thing.count(lang, a)}")
    root = _leaf(a)
    ops = [ctx.choice("*+-")] if not ctx.hard else ["*", ctx.choice("+-")]
    for i, op in enumerate(ops):
        b = ctx.num(2, 9) if op == "*" else ctx.num(1, min(20, root[0] - 1)) if op == "-" else ctx.num(2, 20)
        if i:  # a third person, compared with the second
            s.who, other = other, ctx.choice([n for n in names if n != other])
            fields["other"] = other
        s.sentences.append(_MORE[lang][op].format(who=s.who, other=other, b=b, unit=thing.unit))
        zh = {"+": "{o}比{w}多{b}", "-": "{o}比{w}少{b}", "*": "{o}是{w}的{b}倍"}[op]
        en = {"+": "{o} {b} more", "-": "{o} {b} fewer", "*": "{o} {b} times as many"}[op]
        s.fact((zh if lang == "zh" else en).format(o=other, w=s.who, b=b))
        root = _node(op, root, _leaf(b))
    return s.question(_ASK_OTHER, **fields), root


def _measure(ctx: Context, s: _Story) -> tuple[str, list]:
    """Many of one thing, each of one weight or length: n*w (hard: and some more, or some taken)."""
    thing, zh_measure, en_measure = ctx.choice(MEASURED)
    lang = ctx.lang
    measure = zh_measure if lang == "zh" else en_measure
    n, w = (ctx.num(2, 30), ctx.num(2, 40)) if ctx.hard else (ctx.num(2, 9), ctx.num(2, 20))
    s.say(
        _MEASURE,
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
    return s.question(_ASK_MEASURE, measure=measure), _node("*", _leaf(n), _leaf(w))


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
    plain = _render(root, _PLAIN)
    ch.say("数量关系：" + "，".join(s.facts), "The numbers: " + "; ".join(s.facts))
    value = write_steps(ctx, ch, root)
    if evaluate(plain) != value:
        raise RuntimeError(f"generator bug: {plain} != {value}")
    ch.write(chain_format.answer(ch.lang, value))
    key, display = numeric_answer(value)
    return Problem(user, key, display)
