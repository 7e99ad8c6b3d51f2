"""Train-question paraphrases: new wording, same mathematics, never a held-out template, never in test."""

from __future__ import annotations

import random
import re

import pytest

from training import reasoning_data as rd
from training.reasoning_paraphrase import CLOSINGS, LEADS, paraphrase
from training.reasoning_templates import uses_held_out_template

_MATHS = re.compile(r"\d+|[+\-*/=×÷()（）]")


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return rd.generate("train", 1500, seed=11)


@pytest.fixture(scope="module")
def test_split() -> list[dict]:
    return rd.generate("test", 500, seed=11)


def _wrapped(user: str, lang: str) -> bool:
    return user.startswith(tuple(LEADS[lang])) or user.endswith(tuple(CLOSINGS[lang]))


def test_paraphrase_keeps_numbers_operators_and_variables(test_split: list[dict]) -> None:
    rng, changed = random.Random(0), 0
    for record in test_split:
        for _ in range(4):
            new = paraphrase(record["user"], record["lang"], rng)
            changed += new != record["user"]
            assert _MATHS.findall(new) == _MATHS.findall(record["user"]), (record["user"], new)
            if record["kind"] == "expression":  # the calculator still reads the same expression
                assert rd.verify_record({**record, "user": new}) == [], new
    assert changed > len(test_split) * 4 * 0.4  # about half are rewritten


def test_paraphrase_changes_words_only_where_a_group_matches() -> None:
    rng = random.Random(3)
    outputs = {paraphrase("小明有20元。他买了3支铅笔，每支4元。还剩多少元？", "zh", rng) for _ in range(300)}
    assert any("他购买了3支铅笔" in o and "剩余多少元" in o for o in outputs)  # two groups swapped
    assert "小明有20元。他买了3支铅笔，每支4元。还剩多少元？" in outputs  # or none at all
    assert any(o.startswith(("还剩多少元？小明", "剩下多少元？小明", "剩余多少元？小明")) for o in outputs)
    # English matches whole words: "now" in "know" is left alone.
    for _ in range(200):
        assert "know" in paraphrase("I know 3+4. What is it now?", "en", rng)


def test_train_questions_are_paraphrased_and_never_held_out(train: list[dict]) -> None:
    wrapped = sum(_wrapped(r["user"], r["lang"]) for r in train)
    assert 0.15 * len(train) < wrapped < 0.45 * len(train)
    assert not any(uses_held_out_template(r["user"], r["lang"]) for r in train)
    assert all(rd.verify_record(r) == [] for r in train)


def test_test_questions_are_written_by_templates_only(test_split: list[dict]) -> None:
    assert not any(_wrapped(r["user"], r["lang"]) for r in test_split)


def test_synonym_swap_keeps_from_now() -> None:
    rng = random.Random(0)
    texts = {paraphrase("Tom is 5 now. How old will he be 3 years from now?", "en", rng) for _ in range(300)}
    assert any("at this point" in t for t in texts)  # the lone "now" still swaps
    assert all("from now" in t for t in texts)
