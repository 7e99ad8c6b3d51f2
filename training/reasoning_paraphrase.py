"""Paraphrases of train-split questions: the same problem in wording that no template list holds.

The eval showed why this exists: on templates it was trained on, the shipped model answered 93 % of easy
test problems; on the held-out phrasing of the same problems, 25 %. A model that has seen each problem
family in four fixed phrasings learns the phrasings, not the reading. So every train question may be
rewritten, independently and at random, in four generic ways:

  - a synonym group swaps one phrase for another that means the same ("还剩" / "剩下" / "剩余",
    "altogether" / "in total" / "in all");
  - a lead-in or a closing request is added ("问题：…", "… Show your work.");
  - a question asked last, with no number in it, is asked first ("…。还剩多少元？" becomes "还剩多少元？…。");
  - the question mark's width changes (zh "？" / "?").

None of this touches numbers, operators or variables, so the problem and its chain stay the same (the
record verifier re-parses bare expressions from the paraphrased text). The groups are general words of
the train templates' own vocabulary, not the held-out templates; a paraphrase that happens to match a
held-out template is refused by ``training.reasoning_data`` (train never contains one). Test questions
are never paraphrased, so eval figures stay comparable across versions.
"""

from __future__ import annotations

import random
import re

PARAPHRASE_PROBABILITY = 0.75  # share of train questions rewritten at all
_GROUP_PROBABILITY = 0.5  # each synonym group present in a question swaps with this probability
_LEAD_PROBABILITY = 0.3
_CLOSING_PROBABILITY = 0.2
_QUESTION_FIRST_PROBABILITY = 0.25
_ASCII_QUESTION_MARK_PROBABILITY = 0.3  # zh only

# Interchangeable phrases, longest first where one contains another (the regex tries them in order).
SYNONYMS: dict[str, list[list[str]]] = {
    "zh": [
        ["还剩下", "还剩", "剩下", "剩余"],
        ["一共", "总共"],
        ["购买了", "买了"],
        ["平均分给", "平分给"],
        ["每个人", "每人"],
        ["随机", "任意", "随便"],
        ["原来", "本来", "起初"],
        ["然后", "接着"],
        ["个小时", "小时"],
        ["千米", "公里"],
        ["送给", "给了"],
        ["现在", "目前"],
    ],
    "en": [
        ["are left", "remain", "are remaining"],
        ["altogether", "in total", "in all"],
        ["buys", "purchases"],
        ["What is", "What's"],
        ["Calculate", "Compute", "Evaluate", "Work out"],
        ["gives away", "hands out"],
        ["without looking", "blindly"],
        ["shared equally", "split evenly"],
        ["each friend", "every friend"],
        ["now", "at this point"],
    ],
}
LEADS = {
    "zh": ["问题：", "题目：", "请问：", "帮我算一下：", "考考你：", "数学题：", "请帮我解答："],
    "en": [
        "Question: ",
        "Problem: ",
        "Quick question: ",
        "Help me with this: ",
        "Math problem: ",
        "Try this: ",
    ],
}
CLOSINGS = {
    "zh": ["请写出过程。", "请一步一步地想。", "谢谢！", "要写出步骤。", "请给出答案。"],
    "en": [
        " Show your work.",
        " Explain your steps.",
        " Thanks!",
        " Please think it through.",
        " Give the final answer.",
    ],
}


def _group_regex(group: list[str], lang: str) -> re.Pattern[str]:
    """One alternation per group; English phrases match whole words only ("now" is not in "know") and not
    after "from" ("5 years from now" must not become "from at this point")."""
    alternation = "|".join(map(re.escape, group))
    return re.compile(rf"(?<!from )\b(?:{alternation})\b" if lang == "en" else alternation)


_GROUP_RES = {
    lang: [(_group_regex(group, lang), group) for group in groups] for lang, groups in SYNONYMS.items()
}
# A question that ends the text and follows at least one full sentence.
_LAST_QUESTION = {"zh": re.compile(r"^(.+。)([^。？?]+[？?])$"), "en": re.compile(r"^(.+[.!]) ([^.!?]+\?)$")}


def paraphrase(question: str, lang: str, rng: random.Random) -> str:
    """``question`` rewritten at random by synonym swaps, a lead-in, a closing request and question-first
    order (or left as it is, with probability 1 - PARAPHRASE_PROBABILITY)."""
    if rng.random() >= PARAPHRASE_PROBABILITY:
        return question
    text = question
    for regex, group in _GROUP_RES[lang]:
        if rng.random() < _GROUP_PROBABILITY and regex.search(text):
            text = regex.sub(rng.choice(group), text)
    m = _LAST_QUESTION[lang].match(text)
    if m and not re.search(r"\d", m[2]) and rng.random() < _QUESTION_FIRST_PROBABILITY:
        body, ask = m.groups()
        text = f"{ask}{body}" if lang == "zh" else f"{ask} {body}"
    if lang == "zh" and rng.random() < _ASCII_QUESTION_MARK_PROBABILITY:
        text = text.replace("？", "?")
    if rng.random() < _LEAD_PROBABILITY:
        text = rng.choice(LEADS[lang]) + (text if lang == "zh" else text[:1].upper() + text[1:])
    if rng.random() < _CLOSING_PROBABILITY:
        text += rng.choice(CLOSINGS[lang])
    return text
