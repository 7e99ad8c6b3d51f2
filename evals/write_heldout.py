"""Write the independent held-out reasoning set (``evals/heldout-v1.jsonl``).

Why a separate grammar: the generator in ``training/`` writes both the training data and its own test split,
so its test split shares sentence frames with training, and a model can score well on it by recognising the
frame. These problems are written by this file alone, with its own frames, names, units and number layouts;
nothing in ``training/`` imports it, and ``tests/training/test_heldout.py`` checks that no question shares
a digit-normalised phrase with the generator's questions.

The set is committed as data; this script documents how it was made and rewrites it identically
(``python evals/write_heldout.py``). Strata as the issue asks: easy = one or two operations on numbers
2-19; hard = two products and a difference, bracketed products, multi-sentence word problems with larger
numbers. Every answer is a non-negative integer.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("heldout-v1.jsonl")
PER_CELL = 30  # problems per (language, stratum, kind): 2 x 2 x 2 x 30 = 240

Problem = tuple[str, int]  # (question, answer)


def _easy_pair(rng: random.Random) -> tuple[int, int]:
    return rng.randint(2, 19), rng.randint(2, 19)


# --- easy, bare arithmetic ------------------------------------------------------------------------------


def easy_expr_en(rng: random.Random) -> Problem:
    a, b = _easy_pair(rng)
    c = rng.randint(2, 19)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"Add {a} and {b}, then take away {min(c, a + b)}.", a + b - min(c, a + b)),
        lambda: (f"Work out {a} times {b}.", a * b),
        lambda: (f"{a * b} divided by {b} gives what?", a),
        lambda: (f"Tell me the sum of {a}, {b} and {c}.", a + b + c),
        lambda: (f"What comes out of {a} x {b} + {c}?", a * b + c),
        lambda: (f"If you double {a} and add {b}, what number do you get?", 2 * a + b),
        lambda: (f"{max(a, b)} minus {min(a, b)} equals?", max(a, b) - min(a, b)),
        lambda: (f"Quick check: {a * c} / {c} + {b} = ?", a + b),
        lambda: (f"Multiply {a} by {b} and subtract {c}. Result?", a * b - c),
        lambda: (f"Double the total of {a} and {b}.", (a + b) * 2),
    ]
    return rng.choice(choices)()


def easy_expr_zh(rng: random.Random) -> Problem:
    a, b = _easy_pair(rng)
    c = rng.randint(2, 19)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"{a}加上{b}，再减去{min(c, a + b)}，得几？", a + b - min(c, a + b)),
        lambda: (f"{a}乘{b}的积是几？", a * b),
        lambda: (f"{a * b}里面有几个{b}？", a),
        lambda: (f"{a}、{b}、{c}三个数合起来是几？", a + b + c),
        lambda: (f"算一算：{a}×{b}+{c}", a * b + c),
        lambda: (f"{a}的2倍再加{b}是多少？", 2 * a + b),
        lambda: (f"{max(a, b)}减{min(a, b)}得多少？", max(a, b) - min(a, b)),
        lambda: (f"{a * c}÷{c}+{b}，心算的结果是？", a + b),
        lambda: (f"{a}和{b}相乘以后减掉{c}，结果呢？", a * b - c),
        lambda: (f"（{a}+{b}）×2，得数是？", (a + b) * 2),
    ]
    return rng.choice(choices)()


# --- easy, short word problems --------------------------------------------------------------------------

EN_NAMES = ["Priya", "Jonas", "Aiko", "Mateo", "Leila", "Owen", "Sofia", "Kwame"]
ZH_NAMES = ["阿明", "小芳", "王阿姨", "李老师", "豆豆", "陈叔叔", "乐乐", "外婆"]


def easy_word_en(rng: random.Random) -> Problem:
    a, b = _easy_pair(rng)
    n = rng.choice(EN_NAMES)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"{n} started with {a + b} marbles and gave {b} to a cousin. Marbles remaining?", a),
        lambda: (f"Each bag of oranges weighs {a} kg. {n} carries {b} bags. Total weight in kg?", a * b),
        lambda: (f"{a * b} postcards go into {b} equal piles. How big is one pile?", a),
        lambda: (f"{n} picked {a} shells on Monday and {b} on Tuesday. How many shells altogether?", a + b),
        lambda: (
            f"A bus had {a + b} riders; {a} got off at the first stop. Who is still on board? Give the count.",
            b,
        ),
        lambda: (f"{n} saves {a} coins a week. After {b} weeks, how many coins are saved?", a * b),
        lambda: (f"A field shows {a} red kites and {b} more blue ones than red. Blue kite count?", a + b),
        lambda: (f"{n} bakes {a} trays with {b} muffins on each, then eats one. Muffins left?", a * b - 1),
    ]
    return rng.choice(choices)()


def easy_word_zh(rng: random.Random) -> Problem:
    a, b = _easy_pair(rng)
    n = rng.choice(ZH_NAMES)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"{n}有{a + b}颗玻璃球，送给弟弟{b}颗，手里剩下几颗？", a),
        lambda: (f"一袋橙子重{a}千克，{n}提了{b}袋，一共多少千克？", a * b),
        lambda: (f"{a * b}张明信片，每{b}张扎成一捆，能扎几捆？", a),
        lambda: (f"{n}星期一捡了{a}个贝壳，星期二捡了{b}个，总共捡了几个？", a + b),
        lambda: (f"车上原来有{a + b}位乘客，第一站下去{a}位，车上还剩几位？", b),
        lambda: (f"{n}每周存{a}枚硬币，{b}周以后存了多少枚？", a * b),
        lambda: (f"红风筝有{a}只，蓝风筝比红风筝多{b}只，蓝风筝有几只？", a + b),
        lambda: (f"{n}烤了{a}盘松饼，每盘{b}个，自己尝了1个，其余的装进盒子，盒子里放了几个？", a * b - 1),
    ]
    return rng.choice(choices)()


# --- hard, bare arithmetic ------------------------------------------------------------------------------


def _hard_numbers(rng: random.Random) -> tuple[int, int, int, int]:
    while True:
        a, b, c, d = rng.randint(11, 49), rng.randint(3, 29), rng.randint(2, 29), rng.randint(2, 19)
        if a * b > c * d:
            return a, b, c, d


def hard_expr_en(rng: random.Random) -> Problem:
    a, b, c, d = _hard_numbers(rng)
    e = rng.randint(2, 9)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"Work out {a} x {b} - {c} x {d}.", a * b - c * d),
        lambda: (f"Find ({a} + {c}) x ({b} - {min(d, b - 1)}).", (a + c) * (b - min(d, b - 1))),
        lambda: (
            f"Take the product of {a} and {b}, then subtract the product of {c} and {d}.",
            a * b - c * d,
        ),
        lambda: (f"Give me the number {a} * ({b} + {d}) - {c} comes to.", a * (b + d) - c),
        lambda: (
            f"Result of ({a} - {min(c, a - 1)}) * {e} + {d} * {b}, please.",
            (a - min(c, a - 1)) * e + d * b,
        ),
    ]
    return rng.choice(choices)()


def hard_expr_zh(rng: random.Random) -> Problem:
    a, b, c, d = _hard_numbers(rng)
    e = rng.randint(2, 9)
    choices: list[Callable[[], Problem]] = [
        lambda: (f"算一算：{a}×{b}−{c}×{d}", a * b - c * d),
        lambda: (f"（{a}+{c}）×（{b}−{min(d, b - 1)}）算出来是多少？", (a + c) * (b - min(d, b - 1))),
        lambda: (f"{a}与{b}的积减去{c}与{d}的积，差是多少？", a * b - c * d),
        lambda: (f"{a}×（{b}+{d}）−{c}，结果写出来。", a * (b + d) - c),
        lambda: (f"（{a}−{min(c, a - 1)}）×{e}+{d}×{b}的结果是？", (a - min(c, a - 1)) * e + d * b),
    ]
    return rng.choice(choices)()


# --- hard, multi-sentence word problems -----------------------------------------------------------------


def hard_word_en(rng: random.Random) -> Problem:
    n = rng.choice(EN_NAMES)
    r, s = rng.randint(12, 30), rng.randint(11, 25)
    t, u = rng.randint(3, 15), rng.randint(20, 90)
    p, q = rng.randint(3, 12), rng.randint(2, 9)
    x, y = rng.randint(2, 9), rng.randint(2, 9)
    pay = (x * p + y * q) + rng.randint(1, 40)
    k, m = rng.randint(12, 45), rng.randint(3, 9)
    choices: list[Callable[[], Problem]] = [
        lambda: (
            f"A cinema has {r} rows with {s} seats in every row. {t} seats are broken. "
            f"{u} tickets have been sold for tonight. How many working seats are still free?",
            r * s - t - u,
        ),
        lambda: (
            f"A museum charges {p} euros per adult and {q} euros per child. "
            f"{n} brings {x} adults and {y} children and pays {pay} euros at the desk. "
            f"How many euros should the cashier return?",
            pay - (x * p + y * q),
        ),
        lambda: (
            f"An orchard has {r} trees. Each tree gives {m} boxes of plums, and each box holds {k} plums. "
            f"{u} plums are spoiled. How many plums can still be sold?",
            r * m * k - u,
        ),
        lambda: (
            f"{n} runs {k} laps on each of {m} days. A lap is {s} metres. "
            f"How many metres is that over the {m} days?",
            k * m * s,
        ),
    ]
    return rng.choice(choices)()


def hard_word_zh(rng: random.Random) -> Problem:
    n = rng.choice(ZH_NAMES)
    r, s = rng.randint(12, 30), rng.randint(11, 25)
    t, u = rng.randint(3, 15), rng.randint(20, 90)
    p, q = rng.randint(3, 12), rng.randint(2, 9)
    x, y = rng.randint(2, 9), rng.randint(2, 9)
    pay = (x * p + y * q) + rng.randint(1, 40)
    k, m = rng.randint(12, 45), rng.randint(3, 9)
    choices: list[Callable[[], Problem]] = [
        lambda: (
            f"电影院有{r}排座位，每排{s}个。其中{t}个座位坏了。今晚已经卖出{u}张票。还有多少个好座位空着？",
            r * s - t - u,
        ),
        lambda: (
            f"博物馆成人票{p}元一张，儿童票{q}元一张。{n}带{x}个大人和{y}个孩子去参观，一共拿出{pay}元买票，售票员要退给{n}几元？",
            pay - (x * p + y * q),
        ),
        lambda: (
            f"果园里有{r}棵李子树。每棵树收{m}箱李子，每箱装{k}个。坏了{u}个。能卖的李子一共几个？",
            r * m * k - u,
        ),
        lambda: (
            f"{n}连续{m}天跑步，每天跑{k}圈，一圈{s}米。这{m}天一共跑了多少米？",
            k * m * s,
        ),
    ]
    return rng.choice(choices)()


CELLS: dict[tuple[str, str, str], Callable[[random.Random], Problem]] = {
    ("en", "easy", "expression"): easy_expr_en,
    ("zh", "easy", "expression"): easy_expr_zh,
    ("en", "easy", "word"): easy_word_en,
    ("zh", "easy", "word"): easy_word_zh,
    ("en", "hard", "expression"): hard_expr_en,
    ("zh", "hard", "expression"): hard_expr_zh,
    ("en", "hard", "word"): hard_word_en,
    ("zh", "hard", "word"): hard_word_zh,
}


def build(seed: int = 20261207) -> list[dict[str, object]]:
    records = []
    for (lang, stratum, kind), make in CELLS.items():
        rng = random.Random(f"{seed}-{lang}-{stratum}-{kind}")
        seen: set[str] = set()
        while len(seen) < PER_CELL:
            question, answer = make(rng)
            if question in seen or answer < 0:
                continue
            seen.add(question)
            records.append(
                {
                    "id": f"{lang}-{stratum}-{kind}-{len(seen):02d}",
                    "lang": lang,
                    "stratum": stratum,
                    "kind": kind,
                    "user": question,
                    "answer": str(answer),
                }
            )
    return records


if __name__ == "__main__":
    rows = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {OUT}")
