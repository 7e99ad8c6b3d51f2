"""Wording for ``training.reasoning_data``: question templates, names, objects, system prompts.

Every template list is ``{"zh": [...], "en": [...]}`` built with ``_templates``; the LAST template of each
list is held out for the test split (train never uses it). ``uses_held_out_template`` recognises prompts
written with a held-out template, so disjointness of phrasing can be checked on finished data.

Some lists also carry train-only templates (``"train:zh"`` / ``"train:en"``): more sentence structures for
the same problem, never drawn for test, so the test set (and every eval figure) stays what it was. They
exist because the held-out misses showed the model reading quantities by position: with three train
templates that all give the total before the number of people, "6 people share 36" was read as "6 shared
among 3". So they put the same quantities in other orders (the time before the speed, the question before
the facts, the last event first) and use other objects and verbs. They are written not to copy a
held-out template's structure (its opening, its question form); ``training.reasoning_data`` also refuses
any train prompt that a held-out template could have produced.
Fields in braces are filled by the problem builders; counts may arrive as number words ("三", "three").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ZH_NUMBERS = ["零", "一", "两", "三", "四", "五", "六", "七", "八", "九", "十"]
EN_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

NAMES = {
    "zh": ["小明", "小红", "小刚", "小丽", "小华", "小军", "小芳", "王阿姨", "李叔叔", "张老师", "小雨", "乐乐"],
    "en": ["Tom", "Anna", "Ben", "Lily", "Sam", "Maria", "Jack", "Emma", "Leo", "Grace", "Omar", "Mia"],
}
SYSTEMS = {
    "zh": ["你是严谨的中文推理助手。", "你是一个擅长数学的助手，请一步一步地思考。", "请先推理，再给出最终答案。",
           "你是耐心的数学老师。"],
    "en": ["You are a careful reasoning assistant.", "You are a helpful math tutor. Think step by step.",
           "Reason step by step, then give the final answer.", "You are a patient math teacher."],
}

# (zh name, zh measure word, en singular, en plural)
SHOP_ITEMS = [("铅笔", "支", "pencil", "pencils"), ("笔记本", "本", "notebook", "notebooks"),
              ("苹果", "个", "apple", "apples"), ("面包", "个", "bread roll", "bread rolls"),
              ("牛奶", "盒", "carton of milk", "cartons of milk"), ("气球", "个", "balloon", "balloons"),
              ("玩具车", "辆", "toy car", "toy cars"), ("橙子", "个", "orange", "oranges"),
              ("贴纸", "张", "sticker", "stickers"), ("故事书", "本", "storybook", "storybooks")]
COLLECT_ITEMS = [("苹果", "个", "apple", "apples"), ("贴纸", "张", "sticker", "stickers"),
                 ("邮票", "枚", "stamp", "stamps"), ("弹珠", "颗", "marble", "marbles"),
                 ("书", "本", "book", "books"), ("卡片", "张", "card", "cards"), ("糖果", "颗", "sweet", "sweets"),
                 ("橘子", "个", "tangerine", "tangerines"), ("饼干", "块", "biscuit", "biscuits")]
DRAW_OBJECTS = [("球", "个", "ball", "balls"), ("弹珠", "颗", "marble", "marbles"),
                ("糖果", "颗", "sweet", "sweets"), ("卡片", "张", "card", "cards"), ("积木", "块", "block", "blocks")]
COLOURS = [("红色", "red"), ("蓝色", "blue"), ("绿色", "green"), ("黄色", "yellow"), ("白色", "white"),
           ("黑色", "black"), ("紫色", "purple")]
CONTAINERS = {"zh": ["盒子", "袋子", "罐子", "箱子", "口袋", "篮子"],
              "en": ["box", "bag", "jar", "crate", "pouch", "basket"]}

EXPRESSION_INTROS = [
    ("按运算顺序计算：先算括号里的，再算乘除，最后算加减",
     "Follow the order of operations: parentheses first, then multiplication and division, then addition "
     "and subtraction"),
    ("这道题要注意运算顺序，一步一步算", "Work step by step and keep the order of operations"),
    ("先乘除后加减，有括号先算括号", "Brackets first, then times and divide, then plus and minus"),
]

_HELD_OUT: list[tuple[str, list[str], re.Pattern[str]]] = []  # (lang, literal parts, full pattern)


def _templates(zh: list[str], en: list[str], train_zh: Sequence[str] = (),
               train_en: Sequence[str] = ()) -> dict[str, list[str]]:
    """A template list; registers each language's last template as held out for test. ``train_zh`` /
    ``train_en`` are extra templates for the train split only."""
    for lang, options in (("zh", zh), ("en", en)):
        parts = re.split(r"\{\w+\}", options[-1])
        _HELD_OUT.append((lang, parts, re.compile(".+?".join(re.escape(p) for p in parts), re.DOTALL)))
    return {"zh": zh, "en": en, "train:zh": list(train_zh), "train:en": list(train_en)}


def train_options(templates: dict[str, list[str]], lang: str) -> list[str]:
    """The templates the train split draws from: all but the held-out last one, plus the train-only ones."""
    return templates[lang][:-1] + templates[f"train:{lang}"]


def uses_held_out_template(user: str, lang: str) -> bool:
    """Whether ``user`` could have been written with a held-out template (literal parts first: the lazy
    full pattern is only tried on prompts that start, end and contain the template's fixed text)."""
    return any(held_lang == lang and user.startswith(parts[0]) and user.endswith(parts[-1])
               and all(part in user for part in parts) and pattern.fullmatch(user)
               for held_lang, parts, pattern in _HELD_OUT)


def item_fields(item: tuple[str, str, str, str], lang: str, suffix: str = "") -> dict[str, str]:
    zh, measure, singular, plural = item
    return {f"item{suffix}": zh if lang == "zh" else singular, f"items{suffix}": zh if lang == "zh" else plural,
            f"u{suffix}": measure}


EXPRESSION = _templates(
    zh=["计算：{e}", "{e}=？", "求{e}的值。", "请算出{e}等于多少。", "口算：{e}", "{e}等于几？"],
    en=["Compute {e}.", "What is {e}?", "Evaluate {e}.", "Calculate: {e}", "Work out {e}.",
        "Find the value of {e}."],
)
SHOP_EASY = _templates(
    zh=["{name}带了{m}{cur}去买{item}，每{u}{p}{cur}，买了{n}{u}。应该找回多少{cur}？",
        "一{u}{item}卖{p}{cur}。{name}买了{n}{u}，付了{m}{cur}，能找回多少{cur}？",
        "{name}有{m}{cur}，买{n}{u}{item}，每{u}{p}{cur}，还剩多少{cur}？",
        "{item}的单价是{p}{cur}。{name}用{m}{cur}买了{n}{u}，还剩下多少{cur}？"],
    en=["{name} has {m} {cur} and buys {n} {items} that cost {p} {cur} each. How much money is left?",
        "One {item} costs {p} {cur}. {name} buys {n} and pays with {m} {cur}. How much change is given back?",
        "{name} took {m} {cur} to the shop and bought {n} {items} at {p} {cur} apiece. How many {cur} were left?",
        "With {m} {cur} in the pocket, {name} buys {n} {items}. Each one is {p} {cur}. What is the change?"],
    train_zh=["{name}买了{n}{u}{item}，每{u}{p}{cur}。{name}给了售货员{m}{cur}，售货员要找给{name}多少{cur}？",
              "每{u}{item}{p}{cur}，{name}要买{n}{u}。如果付{m}{cur}，找零是多少{cur}？",
              "{name}的钱包里有{m}{cur}。{item}{p}{cur}一{u}，{name}买了{n}{u}以后还有多少{cur}？",
              "买{n}{u}{item}，一{u}{p}{cur}，付了{m}{cur}。找回多少{cur}？"],
    train_en=["{name} pays {m} {cur} for {n} {items}. Each costs {p} {cur}. How much change does {name} get?",
              "If {name} buys {n} {items} at {p} {cur} each and pays {m} {cur}, how much money comes back?",
              "The price of one {item} is {p} {cur}. {name} buys {n} of them and hands over {m} {cur}. "
              "How much is returned?",
              "{name} spends money on {n} {items} priced at {p} {cur} each, paying with {m} {cur}. "
              "How many {cur} are left?"],
)
SHOP_HARD = _templates(
    zh=["{name}去商店买了{n1}{u}{item}和{n2}{u2}{item2}。{item}每{u}{p1}{cur}，{item2}每{u2}{p2}{cur}。"
        "{name}付了{m}{cur}，应找回多少{cur}？",
        "{item}每{u}{p1}{cur}，{item2}每{u2}{p2}{cur}。学校买了{n1}{u}{item}、{n2}{u2}{item2}，"
        "交给售货员{m}{cur}。售货员要找回多少{cur}？",
        "{name}有{m}{cur}。先买了{n1}{u}{item}，单价{p1}{cur}；又买了{n2}{u2}{item2}，单价{p2}{cur}。"
        "{name}还剩多少{cur}？",
        "买{n1}{u}单价{p1}{cur}的{item}，再买{n2}{u2}单价{p2}{cur}的{item2}，用{m}{cur}付款，找零是多少{cur}？"],
    en=["{name} buys {n1} {items} at {p1} {cur} each and {n2} {items2} at {p2} {cur} each, paying with {m} {cur}. "
        "How much change should {name} get?",
        "A school orders {n1} {items} for {p1} {cur} each. It also orders {n2} {items2} for {p2} {cur} each. "
        "It pays {m} {cur}. How much change does it receive?",
        "{name} has {m} {cur}. First {name} buys {n1} {items} costing {p1} {cur} apiece. Then {name} buys "
        "{n2} {items2} costing {p2} {cur} apiece. How many {cur} are left?",
        "What change comes back from {m} {cur} after paying for {n1} {items} ({p1} {cur} each) and "
        "{n2} {items2} ({p2} {cur} each)?"],
    train_zh=["{name}付给收银员{m}{cur}，买的是{n1}{u}{item}（每{u}{p1}{cur}）和{n2}{u2}{item2}（每{u2}{p2}{cur}）。收银员应找回多少{cur}？",
              "{n2}{u2}{item2}每{u2}{p2}{cur}，{n1}{u}{item}每{u}{p1}{cur}。{name}买下这些东西，交了{m}{cur}，还能剩多少{cur}？"],
    train_en=["{name} hands the cashier {m} {cur} for {n1} {items} and {n2} {items2}. The {items} are {p1} {cur} each "
              "and the {items2} are {p2} {cur} each. What change does {name} get back?",
              "{n2} {items2} cost {p2} {cur} each and {n1} {items} cost {p1} {cur} each. {name} buys all of them "
              "with {m} {cur}. How much money is left over?"],
)
COLLECT_EASY = _templates(
    zh=["{name}有{a}{u}{item}，{other}又给了{name}{b}{u}，后来{name}送出{c}{u}。{name}现在有多少{u}{item}？",
        "{name}原来有{a}{u}{item}，又买了{b}{u}，然后用掉了{c}{u}，还剩几{u}？",
        "盒子里有{a}{u}{item}，放进去{b}{u}，又拿走{c}{u}。盒子里现在有多少{u}{item}？",
        "{name}先有{a}{u}{item}，得到{b}{u}后又分给同学{c}{u}，最后剩下多少{u}？"],
    en=["{name} has {a} {items}. {other} gives {name} {b} more, and then {name} gives away {c}. "
        "How many {items} does {name} have now?",
        "There are {a} {items} in a box. Someone puts in {b} more and then takes out {c}. "
        "How many {items} are in the box now?",
        "{name} had {a} {items}, bought {b} more and lost {c}. How many {items} are left?",
        "Starting with {a} {items}, {name} receives {b} and then hands {c} to friends. How many remain?"],
    train_zh=["{name}有{a}{u}{item}。后来{other}送来{b}{u}，{name}又用掉了{c}{u}。{name}还有几{u}{item}？",
              "{name}今天用掉了{c}{u}{item}。在这之前，{name}有{a}{u}，{other}又给了{b}{u}。{name}现在还有多少{u}？",
              "一开始有{a}{u}{item}，加了{b}{u}，拿走{c}{u}，还有多少{u}？",
              "{other}给了{name}{b}{u}{item}，{name}本来就有{a}{u}。后来{name}弄丢了{c}{u}，现在有多少{u}？"],
    train_en=["{name} had {a} {items}. Then {other} brought {b} more, and {name} used up {c}. How many {items} does "
              "{name} still have?",
              "{name} lost {c} {items} today. Before that, {name} had {a} and got {b} from {other}. How many "
              "are left now?",
              "{other} gave {name} {b} {items}. {name} already had {a}, then gave {c} away. How many does "
              "{name} have?",
              "First there are {a} {items}. Then {b} are added and {c} are removed. How many {items} are there at "
              "the end?"],
)
COLLECT_HARD = _templates(
    zh=["仓库里有{a}箱{item}，每箱{b}{u}，另外还有{c}{u}散装的。今天卖出了{d}{u}。仓库里还剩多少{u}{item}？",
        "{name}买了{a}盒{item}，每盒{b}{u}。{name}原来还有{c}{u}，后来送给邻居{d}{u}。现在{name}一共有多少{u}{item}？",
        "学校有{a}包{item}，每包装{b}{u}，又收到捐赠的{c}{u}。发给学生{d}{u}以后，还剩多少{u}？",
        "一共{a}袋{item}，每袋{b}{u}；再加上{c}{u}，然后分出去{d}{u}。请问剩余多少{u}{item}？"],
    en=["A store has {a} boxes of {items} with {b} in each box, plus {c} loose {items}. Today it sells {d}. "
        "How many {items} are left?",
        "{name} buys {a} packs of {items}. Each pack holds {b}. {name} already had {c} and later gives {d} "
        "to a neighbour. How many {items} does {name} have now?",
        "A school receives {a} bags of {items}, {b} per bag, and a donation of {c} more. After handing out "
        "{d}, how many {items} are left?",
        "There are {a} crates with {b} {items} each and another {c} on the table. If {d} are taken away, "
        "how many {items} remain?"],
    train_zh=["{name}送出了{d}{u}{item}。送之前，{name}有{a}盒，每盒{b}{u}，还有{c}{u}散放着。{name}还剩多少{u}？",
              "超市进了{a}箱{item}，一箱{b}{u}，货架上本来有{c}{u}，卖掉{d}{u}后还有多少{u}{item}？"],
    train_en=["{name} gave away {d} {items}. Before that, {name} had {a} boxes of {b} {items} each and {c} more. "
              "How many {items} does {name} have left?",
              "A shop gets {a} cartons of {items}, {b} in a carton, and already has {c} on the shelf. It sells "
              "{d}. How many {items} does the shop have now?"],
)
SHARE_EASY = _templates(
    zh=["{t}{u}{item}平均分给{k}个小朋友，每人分到几{u}？", "{name}把{t}{u}{item}平均分成{k}份，每份有多少{u}？",
        "有{t}{u}{item}，{k}个人平分，每个人能得到多少{u}？", "{k}位同学平均分{t}{u}{item}，每位同学分得几{u}？"],
    en=["{t} {items} are shared equally among {k} children. How many {items} does each child get?",
        "{name} splits {t} {items} into {k} equal groups. How many {items} are in each group?",
        "If {k} friends share {t} {items} equally, how many does each friend get?",
        "Divide {t} {items} evenly between {k} people. How many {items} does each person receive?"],
    train_zh=["{k}个小朋友一起分{t}{u}{item}，每人分得一样多，每人有几{u}？",
              "把{t}{u}{item}装进{k}个盘子，每个盘子装得一样多，每个盘子装几{u}？",
              "{name}有{t}{u}{item}，要平均送给{k}个朋友，每个朋友能收到多少{u}？",
              "{k}个组分{t}{u}{item}，每组同样多。每组多少{u}？"],
    train_en=["A group of {k} children share {t} {items} so that each gets the same number. How many does each "
              "child get?",
              "{name} puts {t} {items} into {k} bags, the same number in each. How many {items} go in each bag?",
              "There are {t} {items} for {k} students, shared fairly. How many {items} does every student get?",
              "Between {k} teams, {t} {items} are shared out, the same for every team. How many {items} does one "
              "team get?"],
)
SHARE_HARD = _templates(
    zh=["老师买了{a}盒{item}，每盒{b}{u}，又加上{c}{u}，平均分给{k}个班，每个班分到多少{u}？",
        "{name}有{a}袋{item}，每袋{b}{u}，另外还有{c}{u}。把这些{item}平均分给{k}个人，每人分到几{u}？",
        "食堂运来{a}筐{item}，每筐{b}{u}，再加{c}{u}。平均分成{k}份，每份多少{u}？",
        "{a}包{item}每包{b}{u}，外加{c}{u}，全部平分给{k}组，每组得到多少{u}？"],
    en=["A teacher buys {a} boxes of {items} with {b} in each, then adds {c} more. The {items} are shared "
        "equally among {k} classes. How many does each class get?",
        "{name} has {a} bags of {items}, {b} per bag, and {c} extra {items}. If they are split evenly among "
        "{k} people, how many {items} does each person get?",
        "A kitchen receives {a} baskets of {items} holding {b} each, plus another {c}. Shared equally into "
        "{k} portions, how many {items} are in each portion?",
        "{a} packs of {items} with {b} per pack, together with {c} more, are divided equally among {k} teams. "
        "How many {items} does each team receive?"],
    train_zh=["{k}个班平均分一批{item}：一共{a}箱，每箱{b}{u}，另有{c}{u}。每个班能分到多少{u}？",
              "{name}把{c}{u}{item}和{a}盒{item}（每盒{b}{u}）放在一起，再平均分给{k}位朋友，每位朋友得到几{u}？"],
    train_en=["{k} groups share a delivery of {items} equally: {a} boxes of {b} each plus {c} loose ones. How many "
              "{items} does each group get?",
              "{name} puts {c} {items} together with {a} bags of {b} {items} each, then shares them equally among "
              "{k} friends. How many {items} does each friend get?"],
)
TRAVEL_EASY = _templates(
    zh=["一辆车每小时行驶{v}千米，{t}小时行驶多少千米？", "{name}骑自行车，每小时骑{v}千米，骑了{t}小时，一共骑了多少千米？",
        "小船的速度是每小时{v}千米，行驶{t}小时能走多远？（单位：千米）", "以每小时{v}千米的速度走{t}小时，路程是多少千米？"],
    en=["A car travels at {v} km per hour. How far does it go in {t} hours?",
        "{name} cycles {v} kilometres every hour for {t} hours. What is the total distance in kilometres?",
        "A boat moves at {v} km/h for {t} hours. How many kilometres does it cover?",
        "Walking at {v} km an hour, how many kilometres does {name} cover in {t} hours?"],
    train_zh=["{name}走了{t}小时，每小时走{v}千米。{name}一共走了多少千米？",
              "一列火车{t}小时行驶了多少千米？它每小时行驶{v}千米。",
              "汽车的速度是{v}千米/小时，开了{t}小时，开了多远？（单位：千米）",
              "{name}跑步{t}小时，速度是每小时{v}千米，跑了多少千米？"],
    train_en=["{name} walked for {t} hours at {v} km per hour. How many kilometres did {name} walk?",
              "A bus drives for {t} hours. Its speed is {v} km/h. How far does it go, in km?",
              "How many kilometres does a runner cover in {t} hours at a speed of {v} km per hour?",
              "A horse trots {v} km every hour. After {t} hours, how many km has it gone?"],
)
TRAVEL_HARD = _templates(
    zh=["两地相距{d}千米。一列火车先以每小时{v1}千米的速度行驶了{t1}小时，又以每小时{v2}千米的速度行驶了{t2}小时。"
        "火车离目的地还有多少千米？",
        "{name}开车去{d}千米外的城市。前{t1}小时每小时开{v1}千米，后{t2}小时每小时开{v2}千米。还剩多少千米没开？",
        "一辆货车要运货到{d}千米远的地方。它上午行驶{t1}小时，速度是每小时{v1}千米；下午行驶{t2}小时，"
        "速度是每小时{v2}千米。距离终点还有几千米？",
        "全程{d}千米，先用{t1}小时每小时走{v1}千米，再用{t2}小时每小时走{v2}千米，剩下的路程是多少千米？"],
    en=["Two cities are {d} km apart. A train travels at {v1} km/h for {t1} hours, then at {v2} km/h for "
        "{t2} hours. How many kilometres are left to go?",
        "{name} drives to a town {d} km away. For the first {t1} hours the speed is {v1} km/h, and for the "
        "next {t2} hours it is {v2} km/h. How far is {name} from the town now?",
        "A truck must cover {d} km. In the morning it drives {t1} hours at {v1} km/h. In the afternoon it "
        "drives {t2} hours at {v2} km/h. How many kilometres remain?",
        "The whole trip is {d} km. After {t1} hours at {v1} km/h and {t2} hours at {v2} km/h, what distance "
        "is still left?"],
    train_zh=["{name}要走完{d}千米的路。{name}先开了{t1}小时，每小时{v1}千米，又开了{t2}小时，每小时{v2}千米。离终点还有多少千米？",
              "一辆大巴先用{t2}小时每小时跑{v2}千米，再用{t1}小时每小时跑{v1}千米，全程{d}千米，还差多少千米到达？"],
    train_en=["{name} has a {d} km journey. {name} rides {t1} hours at {v1} km/h, then {t2} hours at {v2} km/h. How "
              "many kilometres are still to go?",
              "A coach goes {v2} km/h for {t2} hours and then {v1} km/h for {t1} hours on a {d} km route. How "
              "far is it from the end of the route?"],
)
AGES_EASY = _templates(
    zh=["{name}今年{a}岁，哥哥比{name}大{d}岁。{n}年后哥哥多少岁？", "{name}今年{a}岁，姐姐比{name}大{d}岁，再过{n}年，姐姐几岁？",
        "妹妹今年{a}岁，表哥比她大{d}岁。过{n}年以后，表哥是多少岁？", "已知{name}{a}岁，{name}的哥哥年长{d}岁，那么{n}年之后哥哥的年龄是多少？"],
    en=["{name} is {a} years old. {name}'s brother is {d} years older. How old will the brother be in {n} years?",
        "{name} is {a}, and {name}'s sister is {d} years older. How old will the sister be {n} years from now?",
        "A girl is {a} years old and her cousin is {d} years older than her. What will the cousin's age be "
        "after {n} years?",
        "{name} is {a} now, and a friend is {d} years older. In {n} years, how old will the friend be?"],
    train_zh=["哥哥比{name}大{d}岁，{name}今年{a}岁。{n}年以后，哥哥几岁？",
              "{name}的姐姐比{name}大{d}岁。{name}现在{a}岁，{n}年后姐姐多少岁？",
              "{n}年后，比{name}大{d}岁的表姐是多少岁？{name}今年{a}岁。",
              "今年{name}{a}岁，堂哥比{name}大{d}岁，过{n}年堂哥几岁？"],
    train_en=["{name}'s brother is {d} years older than {name}, who is {a}. How old will the brother be {n} years "
              "from now?",
              "In {n} years, how old will {name}'s cousin be? The cousin is {d} years older than {name}, and "
              "{name} is {a} today.",
              "{name} turned {a} this year. {name}'s sister is {d} years older. What will the sister's age be "
              "after {n} years?",
              "A boy is {a} years old. His brother is older by {d} years. How old is the brother going to be "
              "in {n} years?"],
)
AGES_HARD = _templates(
    zh=["{name}今年{c}岁，爸爸的年龄是{name}的{k}倍。{n}年后，爸爸和{name}的年龄一共是多少岁？",
        "妈妈的年龄是女儿的{k}倍，女儿今年{c}岁。再过{n}年，母女两人的年龄之和是多少？",
        "爷爷今年的岁数是孙子的{k}倍，孙子{c}岁。{n}年以后，两人一共多少岁？",
        "{name}{c}岁，叔叔的岁数是{name}的{k}倍。过了{n}年，他们俩加起来多少岁？"],
    en=["{name} is {c} years old, and {name}'s father is {k} times as old. In {n} years, what will the sum "
        "of their ages be?",
        "A mother is {k} times as old as her daughter, who is {c}. What will their combined age be {n} years "
        "from now?",
        "Grandpa's age is {k} times his grandson's age. The grandson is {c} years old. What will their ages "
        "add up to after {n} years?",
        "If {name} is {c} and an uncle is {k} times that age, what is the total of their two ages {n} years "
        "later?"],
    train_zh=["{n}年后，{name}和妈妈的年龄加起来是多少岁？{name}现在{c}岁，妈妈的年龄是{name}的{k}倍。",
              "奶奶的年龄是{name}的{k}倍，{name}今年{c}岁。{n}年后两人年龄的和是多少？"],
    train_en=["In {n} years, what will {name} and {name}'s aunt be together in age? {name} is {c} now, and the "
              "aunt is {k} times as old.",
              "A grandmother is {k} times as old as {name}, who is {c}. {n} years from now, what is the sum of "
              "their ages?"],
)
PRODUCTION_EASY = _templates(
    zh=["一台机器每小时生产{p}个零件，{h}小时生产多少个零件？", "{name}每小时能折{p}只纸鹤，{h}小时能折多少只？",
        "工人每小时包装{p}箱货物，工作{h}小时一共包装几箱？", "打印机每小时打印{p}份文件，{h}小时能打印多少份？"],
    en=["A machine makes {p} parts every hour. How many parts does it make in {h} hours?",
        "{name} folds {p} paper cranes per hour. How many cranes does {name} fold in {h} hours?",
        "A worker packs {p} boxes an hour. How many boxes are packed after {h} hours?",
        "A printer prints {p} documents per hour. How many documents does it print in {h} hours?"],
    train_zh=["{name}{h}小时做了多少个蛋糕？{name}每小时做{p}个。",
              "面包机一小时烤{p}个面包，连续烤了{h}小时，一共烤了几个面包？",
              "工厂的机器人每小时组装{p}台玩具，工作了{h}小时，组装了多少台？",
              "{name}每小时写{p}个汉字，写了{h}小时，一共写了多少个汉字？"],
    train_en=["In {h} hours, how many cakes does {name} bake if {name} bakes {p} cakes an hour?",
              "A robot assembles {p} toys each hour and works for {h} hours. How many toys does it assemble?",
              "{name} writes {p} words per hour for {h} hours. How many words is that altogether?",
              "A pump fills {p} buckets an hour. It runs for {h} hours. How many buckets does it fill?"],
)
PRODUCTION_HARD = _templates(
    zh=["一台机器每小时生产{p}个零件，每天工作{h}小时，连续工作{d}天，其中有{q}个不合格。合格的零件有多少个？",
        "工厂每小时做{p}件衣服，每天生产{h}小时。{d}天后，卖出了{q}件，还剩多少件？",
        "{name}的面包店每小时烤{p}个面包，每天烤{h}小时，一共烤了{d}天，送出{q}个，还剩多少个？",
        "某车间每小时加工{p}个零件，一天干{h}小时，干了{d}天，发现{q}个次品。合格品有多少个？"],
    en=["A machine makes {p} parts an hour and runs {h} hours a day. After {d} days, {q} parts are found to "
        "be faulty. How many good parts are there?",
        "A factory sews {p} shirts per hour for {h} hours each day. After {d} days it has sold {q} shirts. "
        "How many shirts are left?",
        "{name}'s bakery bakes {p} loaves per hour, {h} hours a day, for {d} days. {q} loaves are given away. "
        "How many loaves remain?",
        "A workshop produces {p} items every hour. It works {h} hours a day for {d} days, and {q} items fail "
        "inspection. How many items pass?"],
    train_zh=["{d}天里，工厂每天开工{h}小时，每小时做{p}个杯子，其中{q}个有裂纹。好杯子有多少个？",
              "{name}的工作室每小时做{p}个风筝，一天做{h}小时，做了{d}天，卖掉{q}个，还剩几个？"],
    train_en=["For {d} days a factory runs {h} hours a day, making {p} cups an hour. {q} cups are cracked. How many "
              "good cups are there?",
              "{name}'s workshop makes {p} kites an hour for {h} hours a day. After {d} days, {q} kites have been "
              "sold. How many kites remain?"],
)
# Probability: the LAST template of each language stays the held-out one; new phrasings go before it.
PROB_EASY = _templates(
    zh=["一个{container}里有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，随机取一{u}，取到{ask}{item}的概率是多少？",
        "{container}里装着{n1}{u}{c1}{item}、{n2}{u}{c2}{item}，从中任意摸出一{u}，是{ask}{item}的概率是多少？",
        "{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}。闭上眼睛摸一{u}，摸到{ask}{item}的概率是多少？",
        "摸到{ask}{item}的概率是几分之几？{container}里有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，从里面随机摸一{u}。",
        "{name}的{container}里放着{n1}{u}{c1}{item}和{n2}{u}{c2}{item}，{name}不看就抓出一{u}。抓到{ask}{item}的机会是多少？",
        "有{n1}{u}{c1}{item}、{n2}{u}{c2}{item}放在同一个{container}中。任意抽出一{u}，抽到{ask}{item}的可能性是几分之几？",
        "{container}中{c1}{item}有{n1}{u}，{c2}{item}有{n2}{u}，每{u}被摸到的机会相同。摸一次，摸到{ask}{item}的概率用分数怎么表示？",
        "从装有{n1}{u}{c1}{item}和{n2}{u}{c2}{item}的{container}里随便拿一{u}，拿到{ask}{item}的可能性是多少？（用分数表示）"],
    en=["A {container} contains {n1} {c1} {items} and {n2} {c2} {items}. One is picked at random. "
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
        "is it to be {ask}?"],
)
PROB_HARD = _templates(
    zh=["一个{container}里有{n1}{u}{c1}{item}、{n2}{u}{c2}{item}和{n3}{u}{c3}{item}。随机取出一{u}，{ask}的概率是多少？",
        "{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}，{c3}{item}{n3}{u}。任意摸一{u}，{ask}的概率是多少？",
        "抽奖{container}里放了{n1}{u}{c1}{item}，{n2}{u}{c2}{item}，还有{n3}{u}{c3}{item}。从中随机抽一{u}，求{ask}的概率。",
        "{ask}的概率是几分之几？{container}里共有{c1}{item}{n1}{u}、{c2}{item}{n2}{u}、{c3}{item}{n3}{u}，随机摸出一{u}。",
        "{name}把{n1}{u}{c1}{item}、{n2}{u}{c2}{item}和{n3}{u}{c3}{item}放进一个{container}，摇匀后任意拿出一{u}。"
        "{ask}的机会有多大？请写成分数。",
        "一个{container}中装有{n1}{u}{c1}{item}，{n2}{u}{c2}{item}，{n3}{u}{c3}{item}，这些{item}除颜色外完全相同。"
        "从中随机抽取一{u}，求{ask}的可能性。",
        "从{container}里随机取出一{u}{item}，{ask}的概率是多少？{container}里有{c1}{item}{n1}{u}，{c2}{item}{n2}{u}，"
        "{c3}{item}{n3}{u}。",
        "{n1}{u}{c1}{item}、{n2}{u}{c2}{item}、{n3}{u}{c3}{item}混在一起，随便拿一{u}，{ask}的可能性有多大？"],
    en=["A {container} has {n1} {c1}, {n2} {c2} and {n3} {c3} {items}. One {item} is drawn at random. "
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
        "chances that {ask}?"],
)
SYMBOLIC_EASY = _templates(
    zh=["如果每小时生产{v}个零件，{a}小时一共生产多少？", "一支笔{v}元，买{a}支笔要多少元？", "每箱有{v}个苹果，{a}箱一共有多少个苹果？",
        "{name}每天读{v}页书，{a}天读了多少页？", "每个篮子装{v}个鸡蛋，{a}个篮子能装几个鸡蛋？"],
    en=["A machine makes {v} parts per hour. How many parts does it make in {a} hours?",
        "One pen costs {v} dollars. How much do {a} pens cost?", "Each box holds {v} apples. How many apples "
        "are in {a} boxes?", "{name} reads {v} pages a day. How many pages does {name} read in {a} days?",
        "Each basket holds {v} eggs. Write the number of eggs in {a} baskets."],
    train_zh=["{name}每分钟跳绳{v}下，{a}分钟跳了多少下？", "一盒巧克力有{v}块，{a}盒一共有几块？",
              "一本书{v}元，买{a}本需要多少元？"],
    train_en=["A bus carries {v} people. How many people do {a} buses carry?",
              "{name} walks {v} steps a minute. How many steps does {name} walk in {a} minutes?",
              "There are {v} seats in each row. How many seats are in {a} rows?"],
)
SYMBOLIC_HARD = _templates(
    zh=["工人上午工作{a}小时，下午工作{b}小时，晚上工作{c}小时，每小时生产{v}个零件，一天一共生产多少个零件？",
        "{name}买了{a}本故事书、{b}本科学书和{c}本字典，每本书都是{v}元，一共要付多少元？",
        "一辆车第一天行驶{a}小时，第二天行驶{b}小时，第三天行驶{c}小时，速度都是每小时{v}千米，三天共行驶多少千米？",
        "每盒有{v}支铅笔，红盒子有{a}个，蓝盒子有{b}个，绿盒子有{c}个，一共有多少支铅笔？"],
    en=["A worker works {a} hours in the morning, {b} hours in the afternoon and {c} hours in the evening, "
        "making {v} parts each hour. How many parts are made in the day?",
        "{name} buys {a} storybooks, {b} science books and {c} dictionaries. Every book costs {v} dollars. "
        "What is the total cost?",
        "A car drives {a} hours on the first day, {b} hours on the second and {c} hours on the third, always "
        "at {v} km/h. How far does it travel in total?",
        "Each box holds {v} pencils. There are {a} red boxes, {b} blue boxes and {c} green boxes. How many "
        "pencils are there altogether?"],
)
EQUATION = _templates(
    zh=["解方程：{eq}", "已知{eq}，求{v}的值。", "{eq}，{v}等于多少？", "求满足{eq}的{v}。", "方程{eq}的解是多少？"],
    en=["Solve {eq}.", "Find {v} if {eq}.", "What value of {v} satisfies {eq}?", "Solve for {v}: {eq}",
        "If {eq}, what is {v}?"],
    train_zh=["{eq}，这里的{v}是多少？", "请解出{v}：{eq}", "当{eq}时，求{v}。"],
    train_en=["We know that {eq}. What is {v}?", "Given {eq}, find {v}.", "Determine {v} from {eq}."],
)
