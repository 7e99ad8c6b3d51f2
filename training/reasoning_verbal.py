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
# Noun phrases bracket their operands: "the result of multiplying 3 by 4", "3乘4的积".
_NOUN = {
    "en": {
        "+": ["the result of adding {r} to {l}", "the number you get by adding {l} and {r}"],
        "-": ["the result of subtracting {r} from {l}", "what remains when {r} is taken from {l}"],
        "*": ["the result of multiplying {l} by {r}"],
        "/": ["the result of dividing {l} by {r}"],
    },
    "zh": {
        "+": ["{l}加{r}的和"],
        "-": ["{l}减{r}的差"],
        "*": ["{l}乘{r}的积"],
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


def _in_words(
    node: list, lang: str, rng: random.Random, needs_parens: NeedsParens, forms=("infix", "noun")
) -> str:
    """One subtree as a phrase in one of ``forms``; raises LookupError where no phrasing is safe."""
    if _leaf(node):
        return str(node[0])
    _, op, left, right = node
    options = []
    if "infix" in forms and not needs_parens(left, op, False) and not needs_parens(right, op, True):
        options += [("infix", form) for form in _INFIX[lang][op]]
    # A noun phrase needs a number first in en ("the sum of 5 and ..."), a number last in zh ("...与5的积").
    if "noun" in forms and _leaf(left if lang == "en" else right):
        # "adding {r} to {l}": a phrase in the middle would run into the words after it.
        options += [
            ("noun", form)
            for form in _NOUN[lang][op]
            if form.index("{l}") < form.index("{r}") or _leaf(right)
        ]
    if not options:
        raise LookupError("no safe phrasing")
    kind, form = rng.choice(options)

    def side(child: list, is_right: bool) -> str:
        if _leaf(child):
            return str(child[0])
        return _in_words(child, lang, rng, needs_parens, _CHILD_FORMS[(lang, kind, is_right)])

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
    text = rng.choice(_START[lang]).format(a=node[0])
    for i, (op, r) in enumerate(ops):
        text += (rng.choice(_THEN[lang]) if i else "") + rng.choice(_STEP[lang][op]).format(r=r)
    return text


def say_expression(root: list, lang: str, rng: random.Random, needs_parens: NeedsParens) -> str | None:
    """A question asking for the value of ``root`` (nodes as in ``training.reasoning_problems``) in words, or
    None when this tree has no safe reading. ``needs_parens(child, parent_op, is_right)`` is the symbolic
    renderer's rule, so the words and the copied formula agree on the order of operations."""
    steps = _as_steps(root, lang, rng) if len(root) > 1 and rng.random() < 0.4 else None
    if steps is not None:
        return rng.choice(_STEPS_QUESTION[lang]).format(e=steps)
    try:
        phrase = _in_words(root, lang, rng, needs_parens)
    except LookupError:
        return None
    return rng.choice(_QUESTION[lang]).format(e=phrase, E=phrase[:1].upper() + phrase[1:])
