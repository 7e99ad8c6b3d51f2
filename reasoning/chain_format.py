"""The chain format: every phrase of a reasoning chain that something reads back, written and read here.

The training generators (``training.reasoning_problems``, ``training.reasoning_probability``,
``training.reasoning_word``) write chains with the writer functions below; the chain check
(``reasoning.chain_check``), the reduction check of the data verifier, the lookup probe and the tests read
them with the compiled patterns below. Both sides take their phrases from this one module, so they cannot
drift apart; ``tests/test_layering.py`` checks that no phrase of ``PHRASES`` is a string literal elsewhere.

The text must stay byte-identical to what the shipped checkpoint was trained on: a writer here only moved,
it did not change a character. Narration that nothing reads back ("先算括号里的加法", "Each unit is x") stays
with the generator that writes it.

A phrase is given per language (``{"zh": ..., "en": ...}``) in its core form; a writer adds the punctuation
around it, and a pattern reads it tolerantly (any spacing after an English phrase), as a model may write it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ---------------------------------------------------------------- phrases (core forms)

GIVEN = {"zh": "题目：", "en": "Given:"}  # the chain copies the expression or equation first
REWRITE = {"zh": "算式变成", "en": "the expression is now"}  # what is left of the expression after a step
SO = {"zh": "所以", "en": "so"}  # ends a worked operation: "48+154: 8+4=12, ..., so 48+154=202"
RESULT = {"zh": "所以结果是", "en": "So the result is"}  # last sentence of a bare expression
ANSWER = {"zh": "所以答案是", "en": "So the answer is"}  # last sentence of a word or symbolic problem
FINAL = {"zh": "答案：", "en": "The answer is"}  # the final sentence after </think>
COUNTS = {"en": "Counts:"}  # probability: the restated counts (Chinese starts with the first colour)
ASKED = {"zh": "所求：", "en": "Asked:"}  # probability: the asked colour, then each colour checked in turn
IS_ASKED = {"zh": "正是所求，所以所求的有", "en": "so favourable"}  # verdict on the asked colour
IS_NOT = {"zh": "不是", "en": "is not"}  # verdict on another colour
PROBABILITY = {"zh": "可能性相同，概率是", "en": "so the probability is"}
REDUCE = {"zh": "约分：", "en": "Reduce:"}
DIVIDE_BOTH = {"zh": "都除以", "en": "divide both by"}
IRREDUCIBLE = {"zh": "没有大于1的公因数", "en": "have no common factor above 1"}
LOWEST_TERMS = {"zh": "不能再约分", "en": "is already in lowest terms"}

# The phrases no other module may write as a literal (``tests/test_layering.py``). Left out on purpose:
# ``SO``, ``IS_NOT`` and ``DIVIDE_BOTH`` are ordinary words ("so", "不是", "都除以"; an error message says
# "does not divide both by"), read only inside patterns anchored by the rest of the format (a worked
# operation's header, "Reduce:"); ``FINAL`` ("答案：74。") is how any answer is written (answer extraction's
# test inputs, chat examples), and answer extraction reads it among many other markers
# (``reasoning.answers``), not as a format of its own.
PHRASES: tuple[str, ...] = tuple(
    phrase
    for table in (
        GIVEN,
        REWRITE,
        RESULT,
        ANSWER,
        COUNTS,
        ASKED,
        IS_ASKED,
        PROBABILITY,
        REDUCE,
        IRREDUCIBLE,
        LOWEST_TERMS,
    )
    for phrase in table.values()
)


# ---------------------------------------------------------------- writers


def given(lang: str, expression: str) -> str:
    """ "题目：12*(3+4)" / "Given: 12*(3+4)": the chain's copy of the question's expression, in ASCII."""
    return f"{GIVEN['zh']}{expression}" if lang == "zh" else f"{GIVEN['en']} {expression}"


def rewrite(lang: str, rest: str) -> str:
    """ "，算式变成12*7" / ", and the expression is now 12*7": appended to the step that left ``rest``."""
    return f"，{REWRITE['zh']}{rest}" if lang == "zh" else f", and {REWRITE['en']} {rest}"


def worked(lang: str, a: int, op: str, b: int, c: int, steps: Sequence[str]) -> str:
    """An operation with its partial work: "48+154: 8+4=12, 4+5+1=10, 0+1+1=2, so 48+154=202"."""
    if lang == "zh":
        return f"{a}{op}{b}：" + "，".join(steps) + f"，{SO['zh']}{a}{op}{b}={c}"
    return f"{a}{op}{b}: " + ", ".join(steps) + f", {SO['en']} {a}{op}{b}={c}"


def result(lang: str, value: int | str) -> str:
    """The last sentence of a bare expression's chain: "所以结果是74" / "So the result is 74"."""
    return f"{RESULT['zh']}{value}" if lang == "zh" else f"{RESULT['en']} {value}"


def answer(lang: str, value: int | str) -> str:
    """The last sentence of a word problem's chain: "所以答案是74" / "So the answer is 74"."""
    return f"{ANSWER['zh']}{value}" if lang == "zh" else f"{ANSWER['en']} {value}"


def solution(lang: str, variable: str, value: int | str) -> str:
    """The last sentence of an equation's chain: "所以x=5" / "So x = 5"."""
    return (
        f"{SO['zh']}{variable}={value}" if lang == "zh" else f"{SO['en'].capitalize()} {variable} = {value}"
    )


def final(lang: str, display: str) -> str:
    """The final sentence after ``</think>``: "答案：74。" / "The answer is 74."."""
    return f"{FINAL['zh']}{display}。" if lang == "zh" else f"{FINAL['en']} {display}."


def counts(lang: str, colours: Sequence[str], numbers: Sequence[int], item: str, unit: str) -> str:
    """Every colour with its count, in the question's order: "红色球3个，蓝色球2个" / "Counts: red 3, blue 2"
    (``item`` and ``unit`` are the Chinese object and measure word; English needs neither)."""
    if lang == "zh":
        return "，".join(f"{c}{item}{n}{unit}" for c, n in zip(colours, numbers, strict=True))
    return f"{COUNTS['en']} " + ", ".join(f"{c} {n}" for c, n in zip(colours, numbers, strict=True))


def colour_checks(lang: str, asked: str, colours: Sequence[str], numbers: Sequence[int], unit: str) -> str:
    """The asked colour, then each colour in turn (with its count) checked against it, up to the asked one:
    "Asked: green; red 8 is not green, green 7 is green, so favourable 7" /
    "所求：绿色；红色8个，不是绿色；绿色7个，绿色正是所求，所以所求的有7个"."""
    parts = []
    for c, n in zip(colours, numbers, strict=True):
        if lang == "zh":
            verdict = f"{c}{IS_ASKED['zh']}{n}{unit}" if c == asked else f"{IS_NOT['zh']}{asked}"
            parts.append(f"{c}{n}{unit}，{verdict}")
        else:
            parts.append(
                f"{c} {n} is {c}, {IS_ASKED['en']} {n}" if c == asked else f"{c} {n} {IS_NOT['en']} {asked}"
            )
    if lang == "zh":
        return f"{ASKED['zh']}{asked}；" + "；".join(parts)
    return f"{ASKED['en']} {asked}; " + ", ".join(parts)


def probability(lang: str, unit: str, item: str, favourable: int, total: int) -> str:
    """ "每个被取到的可能性相同，概率是2/5" / "Each ball is equally likely, so the probability is 2/5"."""
    if lang == "zh":
        return f"每{unit}被取到的{PROBABILITY['zh']}{favourable}/{total}"
    return f"Each {item} is equally likely, {PROBABILITY['en']} {favourable}/{total}"


def reduction(
    lang: str, favourable: int, total: int, divisor: int, first: str, second: str, reduced: str
) -> str:
    """ "约分：6和10都除以2，6/2=3，10/2=5，所以6/10=3/5" / "Reduce: divide both by 2: 6/2=3, 10/2=5, so
    6/10=3/5"; ``first`` and ``second`` are the two divisions as written (true or not: tests write false
    ones)."""
    if lang == "zh":
        return (
            f"{REDUCE['zh']}{favourable}和{total}{DIVIDE_BOTH['zh']}{divisor}，{first}，{second}，"
            f"{SO['zh']}{favourable}/{total}={reduced}"
        )
    return (
        f"{REDUCE['en']} {DIVIDE_BOTH['en']} {divisor}: {first}, {second}, "
        f"{SO['en']} {favourable}/{total}={reduced}"
    )


def irreducible(lang: str, favourable: int, total: int) -> str:
    """ "7和12没有大于1的公因数，7/12不能再约分" / "7 and 12 have no common factor above 1, so 7/12 is already in
    lowest terms"."""
    if lang == "zh":
        return f"{favourable}和{total}{IRREDUCIBLE['zh']}，{favourable}/{total}{LOWEST_TERMS['zh']}"
    return (
        f"{favourable} and {total} {IRREDUCIBLE['en']}, {SO['en']} {favourable}/{total} {LOWEST_TERMS['en']}"
    )


# ---------------------------------------------------------------- patterns


def _either(table: dict[str, str], space: str = r"\s*") -> str:
    """An alternation of a phrase's languages; ``space`` is what may follow the English phrase."""
    return "(?:" + "|".join(re.escape(p) + (space if lang == "en" else "") for lang, p in table.items()) + ")"


# An expression a chain copies or rewrites: digits, operators and brackets only.
_ARITHMETIC = r"([0-9+\-*/()]{3,200})(?![0-9+\-*/()])"
EXPRESSION_COPY_RE = re.compile(_either(GIVEN) + _ARITHMETIC)
REWRITE_RE = re.compile(_either(REWRITE) + _ARITHMETIC)
# "324+39:" (or "：") opens a worked operation; its columns follow up to "so 324+39=".
WORKED_HEADER_RE = re.compile(r"(\d+)([+\-*/])(\d+)\s*[：:]")
# A worked operation's partial work, from the header to its own "so" (the data tests drop it, and the
# reduction's, to count the operations of a problem).
WORKED_PARTS_RE = re.compile(rf"(\d+)([-+*])(\d+)[：:] ?.*?{_either(SO, ' ')}(?=\1\2\3=)")
REDUCTION_PARTS_RE = re.compile(rf"{_either(REDUCE, ' ')}.*?{_either(SO, ' ')}")


def worked_end_re(a: str, op: str, b: str) -> re.Pattern[str]:
    """Where the worked operation "a op b" gives its result: "所以a op b=" / "so a op b="."""
    a, op, b = (re.escape(x) for x in (a, op, b))
    return re.compile(rf"{_either(SO, '')}\s*{a}\s*{op}\s*{b}\s*=")


_N = r"(\d+)"
_FRACTION = r"(\d+(?:/\d+)?)"
# The reduction and the irreducibility claim, groups as their writers fill them: zh (f, t, g, f, g, a, t, g,
# b, f, t, reduced); en (g, f, g, a, t, g, b, f, t, reduced).
REDUCTION_RE = {
    "zh": re.compile(
        rf"{REDUCE['zh']}{_N}和{_N}{DIVIDE_BOTH['zh']}{_N}，{_N}/{_N}={_N}，{_N}/{_N}={_N}，"
        rf"{SO['zh']}{_N}/{_N}={_FRACTION}"
    ),
    "en": re.compile(
        rf"{REDUCE['en']} {DIVIDE_BOTH['en']} {_N}: {_N}/{_N}={_N}, {_N}/{_N}={_N}, {SO['en']} {_N}/{_N}={_FRACTION}"
    ),
}
IRREDUCIBLE_RE = {
    "zh": re.compile(rf"{_N}和{_N}{IRREDUCIBLE['zh']}，{_N}/{_N}{LOWEST_TERMS['zh']}"),
    "en": re.compile(rf"{_N} and {_N} {IRREDUCIBLE['en']}, {SO['en']} {_N}/{_N} {LOWEST_TERMS['en']}"),
}
REDUCTION_START_RE = re.compile(rf"{re.escape(REDUCE['zh'][:-1])}[：:]|{re.escape(REDUCE['en'])}")

# Probability chains. The check of the colours: (asked colour, the checks); one check: (colour, count,
# asked colour if it is not the asked one, else (the colour, the favourable count)). The chain up to its
# first verdict: (asked colour, first colour checked).
COLOUR_CHECKS_RE = {
    "en": re.compile(rf"{ASKED['en']} ([a-z]+); (.+?)\. "),
    "zh": re.compile(rf"。{ASKED['zh']}(\w+?色)；(.+?)。"),
}
COLOUR_CHECK_RE = {
    "en": re.compile(rf"([a-z]+) (\d+) is (?:not ([a-z]+)|([a-z]+), {IS_ASKED['en']} (\d+))"),
    "zh": re.compile(rf"(\w+?色)(\d+)\w，(?:{IS_NOT['zh']}(\w+?色)|(\w+?色){IS_ASKED['zh']}(\d+)\w)"),
}
FIRST_CHECK_RE = {
    "en": re.compile(rf"{ASKED['en']} ([a-z]+); ([a-z]+) \d+ is"),
    "zh": re.compile(rf"{ASKED['zh']}(\w+?)；(\w+?)\d+\w，"),
}
PROBABILITY_RE = re.compile(_either(PROBABILITY, " ") + r"(\d+)/(\d+)")
