"""The nouns and phrasings of the composed word problems (``training.reasoning_story``), per language.

Names, things and sentences here share no frame with the independent held-out set: its frame test (in
``tests/training``) reads the questions they compose.
"""

from __future__ import annotations

from dataclasses import dataclass


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
DAILY_WORK: list[tuple[str, str, Noun, Noun]] = [
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

HAVE = {
    "zh": ["{who}有{a}。", "一共有{a}。", "{who}那里有{a}。", "数一数，有{a}。"],
    "en": ["{who} has {a}.", "There are {a}.", "{who} looks after {a}.", "We count {a}."],
}
EACH = {  # A holds n B; fields: outer (singular / zh noun with unit), inner (a count)
    "zh": ["每{unit}{outer}有{inner}。", "每{unit}{outer}里有{inner}。", "一{unit}{outer}放着{inner}。"],
    "en": [
        "Each {outer} holds {inner}.",
        "There are {inner} in every {outer}.",
        "Inside one {outer} there are {inner}.",
    ],
}
EXTRA = {
    "zh": ["另外还有{c}。", "旁边还多出{c}。"],
    "en": ["On top of that there are {c}.", "{c} more are kept to one side.", "Besides those there are {c}."],
}
GIVE = {
    "zh": ["{who}又送给邻居{d}。", "后来拿走了{d}。"],
    "en": ["{who} then gives {d} to a neighbour.", "Later {d} are taken away."],
}
ASK_TOTAL = {
    "zh": ["一共有多少{unit}{thing}？", "总共是几{unit}{thing}？", "算一算，{thing}共有多少{unit}？"],
    "en": [
        "How many {things} is that altogether?",
        "What is the total number of {things}?",
        "Count the {things}: how many are there?",
    ],
}
ASK_LEFT = {
    "zh": ["现在还有多少{unit}{thing}？", "剩下几{unit}{thing}？", "最后剩多少{unit}{thing}？"],
    "en": [
        "How many {things} are still there?",
        "What number of {things} remains?",
        "How many {things} are there now?",
    ],
}
DAILY = {
    "zh": ["{who}连着{a}天，每天{verb}{b}。", "{a}天里，{who}每天都{verb}{b}。"],
    "en": ["{who} {verb} {b} a day for {a} days.", "For {a} days in a row, {who} {verb} {b} each day."],
}
PRICE = {
    "zh": ["{g1}每{u1}{p}{cur}，{g2}每{u2}{q}{cur}。", "一{u1}{g1}卖{p}{cur}，一{u2}{g2}卖{q}{cur}。"],
    "en": [
        "A {g1} costs {p} {cur} and a {g2} costs {q} {cur}.",
        "The shop sells {g1s} at {p} {cur} and {g2s} at {q} {cur}.",
    ],
}
BUY = {
    "zh": ["{who}买了{x}和{y}。", "{who}挑了{x}，还有{y}。"],
    "en": ["{who} picks {x} and {y}.", "{who} orders {x} as well as {y}."],
}
PAY = {
    "zh": ["{who}拿出{m}{cur}付钱。", "{who}给了店员{m}{cur}。"],
    "en": ["{who} hands over {m} {cur}.", "{who} pays {m} {cur} in cash."],
}
ASK_CHANGE = {
    "zh": ["店员应该找给{who}多少{cur}？", "{who}能拿回几{cur}？"],
    "en": ["How much change comes back, in {cur}?", "What change does {who} get, in {cur}?"],
}
ASK_SPENT = {
    "zh": ["{who}一共要付多少{cur}？", "这些东西一共多少{cur}？"],
    "en": ["How many {cur} does it all cost?", "What does {who} spend, in {cur}?"],
}
SHARE = {
    "zh": ["这些{thing}平均分给{k}个人。", "把{thing}平分成{k}份。"],
    "en": [
        "The {things} are split evenly between {k} people.",
        "They share the {things} out equally in {k} parts.",
    ],
}
ASK_SHARE = {
    "zh": ["每人分到几{unit}？", "每份有多少{unit}{thing}？"],
    "en": ["How many {things} does each get?", "How many {things} go into each part?"],
}
START = {
    "zh": ["{who}原来有{a}。", "一开始，{who}手上有{a}。", "早上{who}数了数，有{a}。"],
    "en": ["{who} starts out with {a}.", "At first {who} owns {a}.", "This morning {who} counted {a}."],
}
GAIN = {
    "zh": ["后来{who}又得到{b}。", "朋友又送给{who}{b}。", "{who}又找到了{b}。"],
    "en": ["Later {who} is given {b}.", "A friend adds {b} to them.", "Then {who} finds {b} more."],
}
LOSE = {
    "zh": ["后来{who}送出去{b}。", "不小心丢了{b}。", "{who}用掉了{b}。"],
    "en": ["Later {who} gives {b} away.", "Sadly {b} get lost.", "{who} uses up {b}."],
}
TWO_DAYS = {
    "zh": ["{who}第一天收集了{a}，第二天又收集了{b}。", "上午{who}收到{a}，下午收到{b}。"],
    "en": [
        "{who} collects {a} on the first day and {b} on the second.",
        "{who} gets {a} before lunch and {b} after.",
    ],
}
ASK_NOW = {
    "zh": ["现在{who}有多少{unit}{thing}？", "{who}最后有几{unit}{thing}？"],
    "en": ["How many {things} does {who} have now?", "At the end, how many {things} are there?"],
}
MORE = {  # the other has b more / fewer / k times as many
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
OWNS = {
    "zh": ["{who}有{a}。", "{who}手里有{a}。"],
    "en": ["{who} has {a}.", "{who} keeps {a}."],
}
ASK_OTHER = {
    "zh": ["{other}有多少{unit}{thing}？", "那么{other}有几{unit}？"],
    "en": ["How many {things} does {other} have?", "What is {other}'s count of {things}?"],
}
MEASURE = {
    "zh": [
        "每{unit}{thing}有{w}{measure}。{who}搬来{n}{unit}。",
        "{who}买了{n}{unit}{thing}，每{unit}{w}{measure}。",
    ],
    "en": [
        "A single {item} measures {w} {measure}. {who} brings {n} of them.",
        "{who} buys {n} {items}, {w} {measure} each.",
    ],
}
ASK_MEASURE = {
    "zh": ["一共有多少{measure}？", "合起来是几{measure}？"],
    "en": ["In all, how many {measure} are there?", "What is the total, in {measure}?"],
}
# Restating the numbers in the chain: "12 crates, 24 bottles in each crate".
IN_EACH = {"zh": "每{unit}{outer}{inner}", "en": "{inner} in each {outer}"}
TAKEN = {"zh": "去掉{d}", "en": "{d} taken away"}
ADDED = {"zh": "加上{c}", "en": "{c} added"}
