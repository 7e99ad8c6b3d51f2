"""training.reasoning_verbal: train expressions asked in words, read back to the same formula, never
ambiguous, checked by the record verifier, and never in the test split."""

import random
import re

import pytest

from reasoning import chain_format as cf
from training import reasoning_data as rd
from training.reasoning_problems import SPOKEN_SHARE, _needs_parens
from training.reasoning_verbal import numbers_said, say_expression

OPERATOR_RE = re.compile(r"[+*/×÷]|\d\s*-\s*[\d(]")


def spoken(records: list[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "expression" and not OPERATOR_RE.search(r["user"])]


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return rd.generate("train", 1500, seed=0, kinds=["expression"])


def test_a_share_of_train_expressions_is_asked_in_words(train: list[dict]) -> None:
    asked_in_words = spoken(train)
    # SPOKEN_SHARE of the draws, less the trees with no safe reading (some hard ones).
    assert 0.5 * SPOKEN_SHARE * len(train) < len(asked_in_words) <= SPOKEN_SHARE * len(train) * 1.2
    assert {r["lang"] for r in asked_in_words} == {"zh", "en"}
    assert {r["stratum"] for r in asked_in_words} == {"easy", "hard"}
    for r in asked_in_words:
        # The chain copies the formula first, with exactly the question's numbers, written or implied.
        copied = cf.EXPRESSION_COPY_RE.search(r["cot"]).group(1)
        assert numbers_said(r["user"]) == sorted(re.findall(r"\d+", copied)), r


def test_the_test_split_is_never_asked_in_words() -> None:
    assert spoken(rd.generate("test", 300, seed=0, kinds=["expression"])) == []


def test_the_verifier_catches_a_copied_formula_that_differs_from_the_words(train: list[dict]) -> None:
    record = spoken(train)[0]
    copied = cf.EXPRESSION_COPY_RE.search(record["cot"]).group(1)
    first = re.search(r"\d+", copied).group()
    other = copied.replace(first, str(int(first) + 1), 1)
    broken = {**record, "cot": record["cot"].replace(copied, other, 1)}
    assert any("other numbers" in e for e in rd.verify_record(broken))


def readings(root: list, lang: str, n: int = 400) -> set[str]:
    rng = random.Random(0)
    return {q for _ in range(n) if (q := say_expression(root, lang, rng, _needs_parens))}


def test_precedence_is_never_left_to_the_reader() -> None:
    # (3+4)*5: "3 plus 4 times 5" would be read as 3+20; so would "3加4乘5".
    bracketed = [35, "*", [7, "+", [3], [4]], [5]]
    en, zh = readings(bracketed, "en"), readings(bracketed, "zh")
    assert en and zh
    assert not any("3 plus 4 times 5" in q or "3 plus 4 multiplied" in q for q in en), en
    assert not any(re.search(r"3加(上)?4乘", q) for q in zh), zh
    # 3+4*5 needs no brackets: the plain reading is allowed and does occur.
    plain = [23, "+", [3], [20, "*", [4], [5]]]
    assert any("3 plus 4 times 5" in q for q in readings(plain, "en"))


def test_a_phrase_in_the_middle_never_runs_into_the_next_words() -> None:
    # 50-(3*4): en may not say "subtracting the result of multiplying 3 by 4 from 50".
    nested = [38, "-", [50], [12, "*", [3], [4]]]
    for q in readings(nested, "en"):
        assert "subtracting the result" not in q and "when the result" not in q, q


def test_double_half_and_times_of_are_read_with_their_implied_number() -> None:
    doubled_plus = [43, "+", [36, "*", [18], [2]], [7]]
    en, zh = readings(doubled_plus, "en"), readings(doubled_plus, "zh")
    assert any(re.search(r"\b(double|twice) 18\b|18 doubled", q) for q in en), en
    assert any("18的两倍" in q or "18的2倍" in q for q in zh), zh
    for q in en | zh:
        assert numbers_said(q) == ["18", "2", "7"], q
    assert numbers_said("Triple 4, then halve it.") == ["2", "3", "4"]


def test_a_postfix_word_never_ends_a_right_operand() -> None:
    # 3+12/2: "3 plus 12 halved" reads as (3+12)/2 just as well, and "3加4的两倍" as (3+4)*2.
    assert not any("12 halved" in q for q in readings([9, "+", [3], [6, "/", [12], [2]]], "en"))
    assert not any(
        "4的两倍" in q or "4的2倍" in q for q in readings([11, "+", [3], [8, "*", [4], [2]]], "zh")
    )


def test_three_numbers_under_one_operation_are_read_as_a_list() -> None:
    total = [12, "+", [7, "+", [3], [4]], [5]]
    assert any("3, 4, and 5" in q for q in readings(total, "en"))
    assert any(re.search("3、4(和|与|、)5", q) for q in readings(total, "zh"))


def test_a_pair_question_may_say_its_numbers_in_the_other_order() -> None:
    # "5 less than 12" is 12-5: the question's order is not the formula's.
    assert "What is 5 less than 12?" in readings([7, "-", [12], [5]], "en")
    assert any("包含多少个" in q or "的几倍" in q for q in readings([19, "/", [209], [11]], "zh"))
