"""Bare expressions read out in words, for train questions: ``13*7-5`` as "13 times 7 minus 5", "Take 13,
multiply it by 7, then subtract 5.", "13乘7的积减去5是多少？".

Why: people ask arithmetic in words as often as in symbols, and a model that only ever saw "计算：13*7-5"
copies the wrong numbers or the wrong operation from a sentence it never saw ("What is 14 divided by 2, plus
3?" answered as ``14*2``). Each operation here has several phrasings, composed at random over the same
expression trees the symbolic questions use, so what is learnt is the reading of each operation, not a
sentence frame. The chain is the symbolic one unchanged: it starts by copying the formula (``Given:
13*7-5.``), so the reading is exactly the step from words to that formula.

A phrasing is only used where it cannot be misread: "a plus b times c" only where the formula needs no
parentheses (school precedence reads it right), "the result of multiplying a by ..." only with a number
first, "..., then add b" only with a number after. A tree with no safe reading at some node gets the
symbolic question instead. The independent held-out set's own phrasings ("the product of ... and ...",
"...与...的积") are deliberately not used (a test checks that no question of that set shares a frame
with these).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

# The symbolic renderer's rule (child, parent_op, is_right) -> needs parentheses, passed in by
# training.reasoning_problems, which imports this module.
NeedsParens = Callable[[list, str, bool], bool]

# Per operation: infix joiners ("{l} plus {r}"), noun phrases ("the result of adding {r} to {l}"), and the
# verbs of a step ("then add {r}"). A list per language; "{l}"/"{r}" are the operands as already rendered.
_INFIX = {
    "en": {
        "+": ["{l} plus {r}"],
        "-": ["{l} minus {r}", "{l} less {r}"],
        "*": ["{l} times {r}", "{l} multiplied by {r}"],
        "/": ["{l} divided by {r}", "{l} over {r}"],
    },
    "zh": {
        "+": ["{l}加{r}", "{l}加上{r}"],
        "-": ["{l}减{r}", "{l}减去{r}"],
        "*": ["{l}乘{r}", "{l}乘以{r}"],
        "/": ["{l}除以{r}"],
    },
}
# Noun phrases bracket their operands: "the result of multiplying 3 by 4", "3乘4的积"; the named results
# ("the product when 3 is multiplied by 4", "3和4的积") teach the words sum, difference, product, quotient
# without the independent set's frames.
_NOUN = {
    "en": {
        "+": [
            "the result of adding {r} to {l}",
            "the number you get by adding {l} and {r}",
            "the sum when {r} is added to {l}",
        ],
        "-": [
            "the result of subtracting {r} from {l}",
            "what remains when {r} is taken from {l}",
            "the difference when {r} is taken away from {l}",
        ],
        "*": ["the result of multiplying {l} by {r}", "the product when {l} is multiplied by {r}"],
        "/": ["the result of dividing {l} by {r}", "the quotient when {l} is divided by {r}"],
    },
    "zh": {
        "+": ["{l}加{r}的和"],
        "-": ["{l}减{r}的差", "{l}和{r}的差"],
        "*": ["{l}乘{r}的积", "{l}和{r}的积"],
        "/": ["{l}除以{r}的商"],
    },
}
_STEP = {
    "en": {
        "+": ["add {r}", "add {r} to it", "put {r} more on"],
        "-": ["subtract {r}", "take {r} off", "remove {r}"],
        "*": ["multiply by {r}", "multiply it by {r}", "make it {r} times as big"],
        "/": ["divide by {r}", "divide it by {r}", "share it into {r} equal parts"],
    },
    "zh": {
        "+": ["加{r}", "加上{r}", "添上{r}"],
        "-": ["减{r}", "减去{r}", "拿走{r}"],
        "*": ["乘{r}", "乘以{r}", "扩大到{r}倍"],
        "/": ["除以{r}", "平均分成{r}份，取其中一份"],
    },
}
# Multiplying by 2 or 3 and halving have words of their own: "double 18", "18 halved", "6的两倍", "18的一半".
# The number is implied, so ``numbers_said`` counts it for the verifier. Prefix forms bind to the number
# after them and may stand anywhere; a postfix form would take in what precedes it ("3 plus 12 halved"), so it
# is never a right operand.
_IMPLIED = {
    "en": {
        ("*", 2): [("prefix", "double {l}"), ("prefix", "twice {l}"), ("postfix", "{l} doubled")],
        ("*", 3): [("prefix", "triple {l}"), ("prefix", "three times {l}"), ("postfix", "{l} tripled")],
        ("/", 2): [("postfix", "{l} halved")],
    },
    "zh": {
        ("*", 2): [("postfix", "{l}的两倍")],
        ("*", 3): [("postfix", "{l}的三倍")],
        ("/", 2): [("postfix", "{l}的一半")],
    },
}
# "6的4倍": any whole multiplier, after the number it multiplies (postfix, as above).
_ZH_TIMES_OF = "{l}的{r}倍"
_IMPLIED_NUMBERS = {
    "2": r"\b(?:double|doubled|twice|halve|halved|half)\b|两倍|一半",
    "3": r"\b(?:triple|tripled|three times)\b|三倍",
}
_IMPLIED_STEP = {
    "en": {("*", 2): ["double it"], ("*", 3): ["triple it"], ("/", 2): ["halve it", "take half of it"]},
    "zh": {("*", 2): ["变成它的两倍"], ("/", 2): ["取它的一半"]},
}
# The first step of a sequence said with both its numbers: "Multiply 3 by 16, then subtract 15."
_FIRST_STEP = {
    "en": {
        "+": ["Add {r} to {a}", "Put {a} and {r} together"],
        "-": ["Subtract {r} from {a}", "Take {r} away from {a}"],
        "*": ["Multiply {a} by {r}"],
        "/": ["Divide {a} by {r}"],
    },
    "zh": {
        "+": ["把{a}和{r}相加", "{a}加上{r}"],
        "-": ["从{a}里减去{r}", "从{a}里拿掉{r}"],
        "*": ["把{a}乘以{r}", "先把{a}扩大到{r}倍"],
        "/": ["把{a}平均分成{r}份，取一份", "{a}除以{r}"],
    },
}
_IMPLIED_FIRST = {
    "en": {("*", 2): ["Double {a}"], ("*", 3): ["Triple {a}"], ("/", 2): ["Halve {a}"]},
    "zh": {("*", 2): ["先求{a}的两倍"], ("/", 2): ["先求{a}的一半"]},
}
# Three or more numbers under one operation: "the total of 3, 4, and 5", "3、4和5加起来".
_LIST = {
    "en": {
        "+": ["the total of {items}", "{items} added together", "{items} all added up"],
        "*": ["{items} multiplied together"],
    },
    "zh": {
        "+": ["{items}加起来", "{items}相加的结果", "{items}这几个数的总和"],
        "*": ["{items}连乘的结果"],
    },
}
# Whole questions for one operation on two numbers, some with the numbers in the other order
# ("What is 5 less than 12?" is 12-5).
_PAIR_QUESTION = {
    "en": {
        "+": ["What is {r} more than {l}?"],
        "-": ["What is {r} less than {l}?", "How much bigger is {l} than {r}?"],
        "/": ["How many {r}s are there in {l}?", "How many times does {r} go into {l}?"],
    },
    "zh": {
        "+": ["比{l}多{r}的数是多少？"],
        "-": ["比{l}少{r}的数是多少？", "{l}比{r}多多少？"],
        "/": ["{l}中包含多少个{r}？", "{l}是{r}的几倍？"],
    },
}
_THEN = {"en": [", then ", " and then ", ", after that "], "zh": ["，再", "，然后", "，接着"]}
_START = {
    "en": ["Take {a}, ", "Start from {a}, ", "Begin with {a}, "],
    "zh": ["{a}先", "从{a}开始，先", "拿{a}，先"],
}
_QUESTION = {
    "en": [
        "What is {e}?",
        "How much is {e}?",
        "Find {e}.",
        "Give the value of {e}.",
        "Please find {e}, step by step.",
        "{E}: what number is that?",
    ],
    "zh": [
        "{e}是多少？",
        "{e}等于多少？",
        "求{e}。",
        "请算出{e}。",
        "{e}，结果是几？",
        "算一算：{e}得多少？",
    ],
}
_STEPS_QUESTION = {
    "en": ["{e}. What do you get?", "{e}. What is the result?", "{e}; what number do you end with?"],
    "zh": ["{e}，结果是多少？", "{e}，最后得几？", "{e}，得数是多少？"],
}


def _leaf(node: list) -> bool:
    return len(node) == 1


# Which forms a child may take, by language, the parent's form and the side: the ones that cannot run into
# the words after them. en: a noun phrase ending in an operand would take in what follows ("the result of
# dividing 8 by 2 plus 4" reads either way), so it is never an infix's left operand, and a noun phrase's
# right operand is a noun phrase too. zh: "3加4乘5的积" reads either way, so a noun phrase's left operand is
# a noun phrase too, and "5加3乘4的积" as well, so an infix's right operand is infix.
_CHILD_FORMS = {
    ("en", "infix", False): ("infix",),
    ("en", "infix", True): ("infix", "noun"),
    ("en", "noun", True): ("noun",),
    ("zh", "infix", False): ("infix", "noun"),
    ("zh", "infix", True): ("infix",),
    ("zh", "noun", False): ("noun",),
}


def _implied_options(node: list, lang: str, is_right: bool) -> list[tuple[str, str]]:
    """The "double 18" / "18的一半" phrasings of a node whose left operand is a number (as "infix" forms)."""
    _, op, left, right = node
    if not (_leaf(left) and _leaf(right)):
        return []
    forms = list(_IMPLIED[lang].get((op, right[0]), []))
    if lang == "zh" and op == "*":
        forms.append(("postfix", _ZH_TIMES_OF))
    return [("infix", form) for where, form in forms if where == "prefix" or not is_right]


def _in_words(
    node: list,
    lang: str,
    rng: random.Random,
    needs_parens: NeedsParens,
    forms=("infix", "noun"),
    is_right: bool = False,
) -> str:
    """One subtree as a phrase in one of ``forms``; raises LookupError where no phrasing is safe."""
    if _leaf(node):
        return str(node[0])
    _, op, left, right = node
    options = []
    if "infix" in forms:
        options += _implied_options(node, lang, is_right)
    if "infix" in forms and not needs_parens(left, op, False) and not needs_parens(right, op, True):
        options += [("infix", form) for form in _INFIX[lang][op]]
    # A noun phrase needs a number first in en ("the sum of 5 and ..."), a number last in zh ("...与5的积").
    if "noun" in forms and _leaf(left if lang == "en" else right):
        # "adding {r} to {l}": a phrase in the middle would run into the words after it.
        # "…的和和3的积" reads badly: "{l}和{r}" takes a number on the left.
        options += [
            ("noun", form)
            for form in _NOUN[lang][op]
            if (form.index("{l}") < form.index("{r}") or _leaf(right))
            and (_leaf(left) or not form.startswith("{l}和"))
        ]
    if not options:
        raise LookupError("no safe phrasing")
    kind, form = rng.choice(options)

    def side(child: list, is_right: bool) -> str:
        if _leaf(child):
            return str(child[0])
        return _in_words(child, lang, rng, needs_parens, _CHILD_FORMS[(lang, kind, is_right)], is_right)

    return form.format(l=side(left, False), r=side(right, True))


def _as_steps(node: list, lang: str, rng: random.Random) -> str | None:
    """A left-deep tree (every right operand a number) as a sequence of steps, else None."""
    ops = []
    while not _leaf(node):
        _, op, left, right = node
        if not _leaf(right):
            return None
        ops.append((op, right[0]))
        node = left
    ops.reverse()
    a = node[0]
    if rng.random() < 0.5:  # "Multiply 3 by 16, then ...": the first step says both numbers
        op, r = ops.pop(0)
        text = rng.choice(_FIRST_STEP[lang][op] + _IMPLIED_FIRST[lang].get((op, r), [])).format(a=a, r=r)
        if not ops:
            return text
        text += rng.choice(_THEN[lang])
    else:
        text = rng.choice(_START[lang]).format(a=a)
    for i, (op, r) in enumerate(ops):
        step = rng.choice(_STEP[lang][op] + _IMPLIED_STEP[lang].get((op, r), []))
        text += (rng.choice(_THEN[lang]) if i else "") + step.format(r=r)
    return text


def _as_list(node: list, lang: str, rng: random.Random) -> str | None:
    """``3+4+5`` (one operation, + or *, over three or more numbers) as "the total of 3, 4 and 5", else None."""
    op, items = node[1], []
    while not _leaf(node):
        if node[1] != op or not _leaf(node[3]):
            return None
        items.append(str(node[3][0]))
        node = node[2]
    items.append(str(node[0]))
    if op not in _LIST[lang] or len(items) < 3:
        return None
    items.reverse()
    # en always with the serial comma, "3, 4, and 5".
    last = rng.choice(["和", "与", "、"]) if lang == "zh" else ", and "
    joined = ("、" if lang == "zh" else ", ").join(items[:-1]) + last + items[-1]
    return rng.choice(_LIST[lang][op]).format(items=joined)


def _as_pair_question(node: list, lang: str, rng: random.Random) -> str | None:
    """One operation on two numbers as a question of its own ("How many 11s are there in 209?"), else None."""
    _, op, left, right = node
    if not (_leaf(left) and _leaf(right)) or op not in _PAIR_QUESTION[lang]:
        return None
    return rng.choice(_PAIR_QUESTION[lang][op]).format(l=left[0], r=right[0])


def numbers_said(question: str) -> list[str]:
    """The numbers a question in words gives, written or implied ("double 18" gives 18 and 2), sorted."""
    found = re.findall(r"\d+", question)
    for digit, words in _IMPLIED_NUMBERS.items():
        found += [digit] * len(re.findall(words, question, re.IGNORECASE))
    return sorted(found)


def say_expression(root: list, lang: str, rng: random.Random, needs_parens: NeedsParens) -> str | None:
    """A question asking for the value of ``root`` (nodes as in ``training.reasoning_problems``) in words, or
    None when this tree has no safe reading. ``needs_parens(child, parent_op, is_right)`` is the symbolic
    renderer's rule, so the words and the copied formula agree on the order of operations."""
    if len(root) > 1 and rng.random() < 0.25:
        pair = _as_pair_question(root, lang, rng)
        if pair is not None:
            return pair
    listed = _as_list(root, lang, rng) if len(root) > 1 and rng.random() < 0.5 else None
    if listed is not None:
        return rng.choice(_QUESTION[lang]).format(e=listed, E=listed[:1].upper() + listed[1:])
    steps = _as_steps(root, lang, rng) if len(root) > 1 and rng.random() < 0.4 else None
    if steps is not None:
        return rng.choice(_STEPS_QUESTION[lang]).format(e=steps)
    try:
        phrase = _in_words(root, lang, rng, needs_parens)
    except LookupError:
        return None
    return rng.choice(_QUESTION[lang]).format(e=phrase, E=phrase[:1].upper() + phrase[1:])
