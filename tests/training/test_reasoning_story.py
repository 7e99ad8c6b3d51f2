"""training.reasoning_story: word problems composed from parts, whose chain translates the story into one
formula with exactly the question's numbers; drawn only when asked (story_share), never in the test split."""

import re
from collections import Counter

import pytest

from reasoning import chain_format as cf
from reasoning.calculator import evaluate
from reasoning.chain_check import check_chain
from training import reasoning_data as rd

STORY_START = ("数量关系：", "The numbers:")


def composed(records: list[dict]) -> list[dict]:
    return [r for r in records if r["cot"].startswith(STORY_START)]


@pytest.fixture(scope="module")
def stories() -> list[dict]:
    return rd.generate("train", 800, seed=0, kinds=["word"], story_share=1.0)


def test_every_train_word_problem_is_composed_at_share_one(stories: list[dict]) -> None:
    assert composed(stories) == stories
    cells = Counter((r["lang"], r["stratum"]) for r in stories)
    assert len(cells) == 4 and min(cells.values()) == 200


def test_the_chain_copies_one_formula_with_the_questions_numbers(stories: list[dict]) -> None:
    for r in stories:
        copied = cf.EXPRESSION_COPY_RE.search(r["cot"]).group(1)
        assert sorted(re.findall(r"\d+", r["user"])) == sorted(re.findall(r"\d+", copied)), r
        assert str(evaluate(copied)) == r["answer"], r
        assert r["cot"].endswith(f"{cf.answer(r['lang'], r['answer'])}{'。' if r['lang'] == 'zh' else '.'}")


def test_the_chain_check_accepts_every_composed_chain(stories: list[dict]) -> None:
    # The server's checked vote reads these chains; a composed one must never look ungrounded.
    rejected = [r for r in stories if not check_chain(r["user"], r["cot"], r["answer"]).ok]
    assert rejected == []


def test_the_stories_vary_in_shape_and_order(stories: list[dict]) -> None:
    formulas = {re.sub(r"\d+", "n", cf.EXPRESSION_COPY_RE.search(r["cot"]).group(1)) for r in stories}
    # n*n, n*n*n, n*n+n, n*n-n, n*n*n-n-n, n-n*n, n-(n*n+n*n), n*n/n, (n*n+n)/n, ...
    assert {"n*n", "n*n*n", "n*n-n", "n-(n*n+n*n)", "(n*n+n)/n", "n*n*n+n-n", "n+n", "n-n+n"} <= formulas
    assert len(formulas) >= 15, formulas
    # Sometimes the question comes first: the first sentence then ends in a question mark.
    first_asks = sum(bool(re.match(r"[^.。!?？]*[?？]", r["user"])) for r in stories)
    assert 0.1 * len(stories) < first_asks < 0.5 * len(stories)


def test_the_verifier_rejects_a_formula_that_drops_a_number(stories: list[dict]) -> None:
    r = next(r for r in stories if r["lang"] == "en" and r["stratum"] == "hard")
    copied = cf.EXPRESSION_COPY_RE.search(r["cot"]).group(1)
    first = re.search(r"\d+", copied).group()
    given = cf.given("en", copied)
    broken = dict(r, cot=r["cot"].replace(given, cf.given("en", copied.replace(first, "1", 1))))
    assert any("other numbers" in e for e in rd.verify_record(broken))


def test_share_zero_and_the_test_split_keep_the_scenarios() -> None:
    assert composed(rd.generate("train", 200, seed=0, kinds=["word"])) == []
    assert composed(rd.generate("test", 200, seed=0, kinds=["word"], story_share=1.0)) == []
    some = rd.generate("train", 400, seed=0, kinds=["word"], story_share=0.5)
    assert 0.35 * len(some) < len(composed(some)) < 0.65 * len(some)
