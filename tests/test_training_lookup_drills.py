"""Lookup drills: the question's counts restated in order, the asked colour's count, no arithmetic; repeated runs."""

from __future__ import annotations

import re
from collections import Counter

from model.step_check import chain_equations
from training import lookup_drills, reasoning_data
from training import reasoning_templates as wording
from training.lookup_probe import favourable_prefix

DRILLS = lookup_drills.generate(400, seed=5)
WORD_VALUES = {w: i for words in (wording.ZH_NUMBERS, wording.EN_NUMBERS) for i, w in enumerate(words) if i >= 2}
ASKED = {"en": re.compile(r"Favourable: ([a-z]+) (\d+)\."), "zh": re.compile(r"所求：(\w+?色)\D+?(\d+)\w。")}


def _restated(record: dict) -> list[tuple[str, int]]:
    first = re.split(r"(?<=[。.])\s*", record["cot"])[0]
    if record["lang"] == "en":
        return [(c, int(n)) for c, n in re.findall(r"([a-z]+) (\d+)", first.removeprefix("Counts: "))]
    return [(c, int(n)) for c, n in re.findall(r"(\w+?色)\w+?(\d+)", first)]


def _question_counts(record: dict) -> list[int]:
    """The counts as the question writes them (digits or number words), in order."""
    words = re.findall(r"\d+|[a-z]+" if record["lang"] == "en" else r"\d+|[两三四五六七八九十]", record["user"])
    return [int(w) if w.isdigit() else WORD_VALUES[w] for w in words if w.isdigit() or w in WORD_VALUES]


def test_every_drill_restates_the_question_and_answers_the_asked_colour() -> None:
    for record in DRILLS:
        restated = _restated(record)
        assert 2 <= len(restated) <= 4, record
        assert [n for _, n in restated] == _question_counts(record), record
        colour, count = ASKED[record["lang"]].search(record["cot"]).groups()
        assert [c for c, _ in restated].count(colour) == 1 and (colour, int(count)) in restated, record
        assert record["answer"] == count and count in record["final"]
        # The asked colour is the one the question asks about (it appears there twice: listed, then asked).
        assert record["user"].count(colour) == 2, record


def test_drills_have_no_arithmetic_and_share_the_probability_chains_asked_sentence() -> None:
    assert all(chain_equations(r["cot"]) == [] for r in DRILLS)
    # The probe's cut works on both: the same sentence is trained by drills and used by probability chains.
    problems = reasoning_data.generate("train", 20, seed=1, strata=("easy",), kinds=("probability",))
    for record in [*DRILLS[:40], *problems]:
        prefix, count = favourable_prefix(record)
        assert ASKED[record["lang"]].search(record["cot"])[2] == str(count)


def test_the_counts_do_not_tell_which_colour_is_asked() -> None:
    """What the drills are for: any place is asked, and the asked count is the largest no more often than
    chance, so only the colour decides the answer."""
    places = Counter([c for c, _ in _restated(r)].index(ASKED[r["lang"]].search(r["cot"])[1]) for r in DRILLS)
    assert set(places) == {0, 1, 2, 3} and places[0] < 0.6 * len(DRILLS)
    largest = sum(int(r["answer"]) == max(n for _, n in _restated(r)) for r in DRILLS) / len(DRILLS)
    chance = sum(1 / len(_restated(r)) for r in DRILLS) / len(DRILLS)
    assert abs(largest - chance) < 0.08
    assert len({r["user"] for r in DRILLS}) == len(DRILLS)
    assert {r["lang"] for r in DRILLS} == {"zh", "en"}


def test_cli_writes_jsonl(tmp_path) -> None:
    out = tmp_path / "drills.jsonl"
    assert lookup_drills.main(["--n", "6", "--seed", "2", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").count("\n") == 6


def test_repeat_documents_write_one_run_of_the_texts_words_three_times() -> None:
    texts = ["The quick brown fox jumps over the lazy dog.", "小明有三个苹果。", "the the the 42"]
    docs = lookup_drills.repeat_documents(texts, 50, seed=3)
    assert docs == lookup_drills.repeat_documents(texts, 50, seed=3)
    vocabulary = set(re.findall(r"[A-Za-z']+|[\u4e00-\u9fff]", "".join(texts)))
    runs = set()
    for doc in docs:
        first, *repeats = doc["text"].split("\n")
        assert repeats == [first, first]
        words = re.findall(r"[A-Za-z']+|[\u4e00-\u9fff]|\d+", first)
        assert 8 <= len(words) <= 32
        assert all(w.isdigit() or w in vocabulary for w in words)
        runs.add(first)
    assert len(runs) == len(docs)
    # Words are drawn as often as they occur: "the" (4 of the 12 English words) outnumbers "fox" (1).
    counts = Counter(w for doc in docs for w in doc["text"].split())
    assert counts["the"] > 2 * counts["fox"]
