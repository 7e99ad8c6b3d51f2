"""Wording for ``training.reasoning_data``: names, objects, system prompts, and the question templates of
bare expressions, probability and algebra (word problems: ``training.word_templates``).

Template lists follow ``training.template_lists``: the LAST template of each language is held out for the
test split; ``"train:zh"`` / ``"train:en"`` are templates only train draws. Those train-only ones exist
because the held-out misses showed the model reading quantities by position: with three train templates that
all give the total before the number of people, "6 people share 36" was read as "6 shared among 3". So they
put the same quantities in other orders (the time before the speed, the question before the facts, the last
event first) and use other objects and verbs. They are written not to copy a held-out template's structure
(its opening, its question form); ``training.reasoning_data`` also refuses any train prompt that a held-out
template could have produced. Fields in braces are filled by the problem builders; counts may arrive as
number words ("三", "three").
"""

from __future__ import annotations

import re

from training import word_templates
from training.template_lists import templates

ZH_NUMBERS = ["零", "一", "两", "三", "四", "五", "六", "七", "八", "九", "十"]
EN_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

NAMES = {
    "zh": [
        "小明",
        "小红",
        "小刚",
        "小丽",
        "小华",
        "小军",
        "小芳",
        "王阿姨",
        "李叔叔",
        "张老师",
        "小雨",
        "乐乐",
    ],
    "en": ["Tom", "Anna", "Ben", "Lily", "Sam", "Maria", "Jack", "Emma", "Leo", "Grace", "Omar", "Mia"],
}
SYSTEMS = {
    "zh": [
        "你是严谨的中文推理助手。",
        "你是一个擅长数学的助手，请一步一步地思考。",
        "请先推理，再给出最终答案。",
        "你是耐心的数学老师。",
    ],
    "en": [
        "You are a careful reasoning assistant.",
        "You are a helpful math tutor. Think step by step.",
        "Reason step by step, then give the final answer.",
        "You are a patient math teacher.",
    ],
}

# (zh name, zh measure word, en singular, en plural)
SHOP_ITEMS = [
    ("铅笔", "支", "pencil", "pencils"),
    ("笔记本", "本", "notebook", "notebooks"),
    ("苹果", "个", "apple", "apples"),
    ("面包", "个", "bread roll", "bread rolls"),
    ("牛奶", "盒", "carton of milk", "cartons of milk"),
    ("气球", "个", "balloon", "balloons"),
    ("玩具车", "辆", "toy car", "toy cars"),
    ("橙子", "个", "orange", "oranges"),
    ("贴纸", "张", "sticker", "stickers"),
    ("故事书", "本", "storybook", "storybooks"),
]
COLLECT_ITEMS = [
    ("苹果", "个", "apple", "apples"),
    ("贴纸", "张", "sticker", "stickers"),
    ("邮票", "枚", "stamp", "stamps"),
    ("弹珠", "颗", "marble", "marbles"),
    ("书", "本", "book", "books"),
    ("卡片", "张", "card", "cards"),
    ("糖果", "颗", "sweet", "sweets"),
    ("橘子", "个", "tangerine", "tangerines"),
    ("饼干", "块", "biscuit", "biscuits"),
]
DRAW_OBJECTS = [
    ("球", "个", "ball", "balls"),
    ("弹珠", "颗", "marble", "marbles"),
    ("糖果", "颗", "sweet", "sweets"),
    ("卡片", "张", "card", "cards"),
    ("积木", "块", "block", "blocks"),
]
COLOURS = [
    ("红色", "red"),
    ("蓝色", "blue"),
    ("绿色", "green"),
    ("黄色", "yellow"),
    ("白色", "white"),
    ("黑色", "black"),
    ("紫色", "purple"),
]
CONTAINERS = {
    "zh": ["盒子", "袋子", "罐子", "箱子", "口袋", "篮子"],
    "en": ["box", "bag", "jar", "crate", "pouch", "basket"],
}

EXPRESSION_INTROS = [
    (
        "按运算顺序计算：先算括号里的，再算乘除，最后算加减",
        "Follow the order of operations: parentheses first, then multiplication and division, then addition "
        "and subtraction",
    ),
    ("这道题要注意运算顺序，一步一步算", "Work step by step and keep the order of operations"),
    ("先乘除后加减，有括号先算括号", "Brackets first, then times and divide, then plus and minus"),
]


def item_fields(item: tuple[str, str, str, str], lang: str, suffix: str = "") -> dict[str, str]:
    zh, measure, singular, plural = item
    return {
        f"item{suffix}": zh if lang == "zh" else singular,
        f"items{suffix}": zh if lang == "zh" else plural,
        f"u{suffix}": measure,
    }


EXPRESSION = templates(
    zh=["计算：{e}", "{e}=？", "求{e}的值。", "请算出{e}等于多少。", "口算：{e}", "{e}等于几？"],
    en=[
        "Compute {e}.",
        "What is {e}?",
        "Evaluate {e}.",
        "Calculate: {e}",
        "Work out {e}.",
        "Find the value of {e}.",
    ],
)
# Probability: the LAST template of each language stays the held-out one; new phrasings go before it.
PROB_EASY = templates(
    zh=[
        "一个{container}里有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，随机取一{u}，取到{ask}{item}的概率是多少？",
        "{container}里装着{n1}{u}{c1}{item}、{n2}{u}{c2}{item}，从中任意摸出一{u}，是{ask}{item}的概率是多少？",
        "{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}。闭上眼睛摸一{u}，摸到{ask}{item}的概率是多少？",
        "摸到{ask}{item}的概率是几分之几？{container}里有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，从里面随机摸一{u}。",
        "{name}的{container}里放着{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，{name}不看就抓出一{u}。抓到{ask}{item}的机会是多少？",
        "有{n1}{u}{c1}{item}、{n2}{u}{c2}{item}放在同一个{container}中。任意抽出一{u}，抽到{ask}{item}的可能性是几分之几？",
        "{container}中{c1}{item}有{n1}{u}，{c2}{item}有{n2}{u}，每{u}被摸到的机会相同。摸一次，摸到{ask}{item}的概率用分数怎么表示？",
        "从装有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}的{container}里随便拿一{u}，拿到{ask}{item}的可能性是多少？（用分数表示）",
    ],
    en=[
        "A {container} contains {n1} {c1} {items} and {n2} {c2} {items}. One is picked at random. "
        "What is the probability that it is {ask}?",
        "A {container} holds {n1} {c1} {items} and {n2} {c2} {items}. If you draw one {item} without looking, "
        "what is the probability of drawing a {ask} one?",
        "There are {n1} {c1} and {n2} {c2} {items} in a {container}. What is the chance that a randomly "
        "chosen {item} is {ask}?",
        "What is the probability of picking a {ask} {item} from a {container} with {n1} {c1} {items} and "
        "{n2} {c2} {items}?",
        "{name} reaches into a {container} holding {n1} {c1} {items} and {n2} {c2} {items} and pulls one out "
        "without looking. What is the likelihood that it is {ask}?",
        "In a {container} there are {n1} {c1} {items} and {n2} {c2} {items}, all the same size. Expressed as "
        "a fraction, what are the odds that one {item} drawn at random is {ask}?",
        "Find the chance of getting a {ask} {item} when one {item} is taken at random from {n1} {c1} and "
        "{n2} {c2} {items} in a {container}.",
        "You take one {item} at random from {n1} {c1} {items} and {n2} {c2} {items}. As a fraction, how likely "
        "is it to be {ask}?",
    ],
)
PROB_HARD = templates(
    zh=[
        "一个{container}里有{n1}{u}{c1}{item}、{n2}{u}{c2}{item}和{n3}{u}{c3}{item}。随机取出一{u}，{ask}的概率是多少？",
        "{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}，{c3}{item}{n3}{u}。任意摸一{u}，{ask}的概率是多少？",
        "抽奖{container}里放了{n1}{u}{c1}{item}，{n2}{u}{c2}{item}，还有{n3}{u}{c3}{item}。从中随机抽一{u}，求{ask}的概率。",
        "{ask}的概率是几分之几？{container}里共有{c1}{item}{n1}{u}、{c2}{item}{n2}{u}、{c3}{item}{n3}{u}，随机摸出一{u}。",
        "{name}把{n1}{u}{c1}{item}、{n2}{u}{c2}{item}和{n3}{u}{c3}{item}放进一个{container}，摇匀后任意拿出一{u}。"
        "{ask}的机会有多大？请写成分数。",
        "一个{container}中装有{n1}{u}{c1}{item}，{n2}{u}{c2}{item}，{n3}{u}{c3}{item}，这些{item}除颜色外完全相同。"
        "从中随机抽取一{u}，求{ask}的可能性。",
        "从{container}里随机取出一{u}{item}，{ask}的概率是多少？{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}，"
        "{c3}{item}{n3}{u}。",
        "{n1}{u}{c1}{item}、{n2}{u}{c2}{item}、{n3}{u}{c3}{item}混在一起，随便拿一{u}，{ask}的可能性有多大？",
    ],
    en=[
        "A {container} has {n1} {c1}, {n2} {c2} and {n3} {c3} {items}. One {item} is drawn at random. "
        "What is the probability that {ask}?",
        "In a {container} there are {n1} {c1} {items}, {n2} {c2} {items} and {n3} {c3} {items}. If one is "
        "taken without looking, what is the probability that {ask}?",
        "A prize {container} holds {n1} {c1} {items}, {n2} {c2} {items} and {n3} {c3} {items}. One {item} is "
        "drawn. Find the probability that {ask}.",
        "What is the probability that {ask}, if one {item} is picked at random from a {container} with "
        "{n1} {c1}, {n2} {c2} and {n3} {c3} {items}?",
        "{name} has a {container} of {items}: {n1} {c1}, {n2} {c2} and {n3} {c3}. {name} draws one without "
        "looking. How likely is it that {ask}? Give the answer as a fraction.",
        "A {container} is filled with {n1} {c1} {items}, {n2} {c2} {items} and {n3} {c3} {items}, identical "
        "except for colour. One {item} is chosen at random. As a fraction, what is the chance that {ask}?",
        "One {item} is taken at random from a {container} containing {n1} {c1}, {n2} {c2} and {n3} {c3} "
        "{items}. Find the odds, written as a fraction, that {ask}.",
        "{n1} {c1}, {n2} {c2} and {n3} {c3} {items} are mixed together. Picking one at random, what are the "
        "chances that {ask}?",
    ],
)
SYMBOLIC_EASY = templates(
    zh=[
        "如果每小时生产{v}个零件，{a}小时一共生产多少？",
        "一支笔{v}元，买{a}支笔要多少元？",
        "每箱有{v}个苹果，{a}箱一共有多少个苹果？",
        "{name}每天读{v}页书，{a}天读了多少页？",
        "每个篮子装{v}个鸡蛋，{a}个篮子能装几个鸡蛋？",
    ],
    en=[
        "A machine makes {v} parts per hour. How many parts does it make in {a} hours?",
        "One pen costs {v} dollars. How much do {a} pens cost?",
        "Each box holds {v} apples. How many apples are in {a} boxes?",
        "{name} reads {v} pages a day. How many pages does {name} read in {a} days?",
        "Each basket holds {v} eggs. Write the number of eggs in {a} baskets.",
    ],
    train_zh=[
        "{name}每分钟跳绳{v}下，{a}分钟跳了多少下？",
        "一盒巧克力有{v}块，{a}盒一共有几块？",
        "一本书{v}元，买{a}本需要多少元？",
    ],
    train_en=[
        "A bus carries {v} people. How many people do {a} buses carry?",
        "{name} walks {v} steps a minute. How many steps does {name} walk in {a} minutes?",
        "There are {v} seats in each row. How many seats are in {a} rows?",
    ],
)
SYMBOLIC_HARD = templates(
    zh=[
        "工人上午工作{a}小时，下午工作{b}小时，晚上工作{c}小时，每小时生产{v}个零件，一天一共生产多少个零件？",
        "{name}买了{a}本故事书、{b}本科学书和{c}本字典，每本书都是{v}元，一共要付多少元？",
        "一辆车第一天行驶{a}小时，第二天行驶{b}小时，第三天行驶{c}小时，速度都是每小时{v}千米，三天共行驶多少千米？",
        "每盒有{v}支铅笔，红盒子有{a}个，蓝盒子有{b}个，绿盒子有{c}个，一共有多少支铅笔？",
    ],
    en=[
        "A worker works {a} hours in the morning, {b} hours in the afternoon and {c} hours in the evening, "
        "making {v} parts each hour. How many parts are made in the day?",
        "{name} buys {a} storybooks, {b} science books and {c} dictionaries. Every book costs {v} dollars. "
        "What is the total cost?",
        "A car drives {a} hours on the first day, {b} hours on the second and {c} hours on the third, always "
        "at {v} km/h. How far does it travel in total?",
        "Each box holds {v} pencils. There are {a} red boxes, {b} blue boxes and {c} green boxes. How many "
        "pencils are there altogether?",
    ],
)
EQUATION = templates(
    zh=[
        "解方程：{eq}",
        "已知{eq}，求{v}的值。",
        "{eq}，{v}等于多少？",
        "求满足{eq}的{v}。",
        "方程{eq}的解是多少？",
    ],
    en=[
        "Solve {eq}.",
        "Find {v} if {eq}.",
        "What value of {v} satisfies {eq}?",
        "Solve for {v}: {eq}",
        "If {eq}, what is {v}?",
    ],
    train_zh=["{eq}，这里的{v}是多少？", "请解出{v}：{eq}", "当{eq}时，求{v}。"],
    train_en=["We know that {eq}. What is {v}?", "Given {eq}, find {v}.", "Determine {v} from {eq}."],
)

TEMPLATE_LISTS = [
    EXPRESSION,
    PROB_EASY,
    PROB_HARD,
    SYMBOLIC_EASY,
    SYMBOLIC_HARD,
    EQUATION,
    *word_templates.WORD_LISTS,
]


def _held_out_pattern(template: str) -> tuple[list[str], re.Pattern[str]]:
    parts = re.split(r"\{\w+\}", template)
    return parts, re.compile(".+?".join(re.escape(p) for p in parts), re.DOTALL)


# (lang, literal parts, full pattern) of every list's held-out template
_HELD_OUT = [(lang, *_held_out_pattern(tl[lang][-1])) for tl in TEMPLATE_LISTS for lang in ("zh", "en")]


def uses_held_out_template(user: str, lang: str) -> bool:
    """Whether ``user`` could have been written with a held-out template (literal parts first: the lazy
    full pattern is only tried on prompts that start, end and contain the template's fixed text)."""
    return any(
        held_lang == lang
        and user.startswith(parts[0])
        and user.endswith(parts[-1])
        and all(part in user for part in parts)
        and pattern.fullmatch(user)
        for held_lang, parts, pattern in _HELD_OUT
    )
