"""The independent held-out set: reproducible from its own grammar, balanced, and written apart from the
training generator (no shared sentence frames), so its figure measures reading questions never seen."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from training.reasoning_data import generate

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "evals" / "heldout-v1.jsonl"


def _writer():
    spec = importlib.util.spec_from_file_location("write_heldout", REPO / "evals" / "write_heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines()]


def phrases(text: str, lang: str) -> set[str]:
    """Digit-normalised phrases that carry words: English 4-word runs, Chinese 5-character runs."""
    text = re.sub(r"\d+", "#", text.lower())
    if lang == "en":
        words = re.findall(r"[a-z#]+|[^\sa-z#]", text)
        grams = {" ".join(words[i : i + 4]) for i in range(len(words) - 3)}
    else:
        text = re.sub(r"\s+", "", text)
        grams = {text[i : i + 5] for i in range(len(text) - 4)}
    return {g for g in grams if re.search(r"[a-z\u4e00-\u9fff]", g)}


def test_the_committed_set_is_what_its_grammar_writes(records: list[dict]) -> None:
    assert records == _writer().build()


def test_the_set_is_balanced_and_well_formed(records: list[dict]) -> None:
    assert len(records) >= 200
    cells = Counter((r["lang"], r["stratum"], r["kind"]) for r in records)
    assert len(cells) == 8 and len(set(cells.values())) == 1, cells
    assert len({r["user"] for r in records}) == len(records)
    assert len({r["id"] for r in records}) == len(records)
    assert all(re.fullmatch(r"\d+", r["answer"]) for r in records)


@pytest.fixture(scope="module")
def generator_phrases() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {"en": set(), "zh": set()}
    # The recipes' data, and the word problems composed from parts (training.reasoning_story) that the
    # fine-tune draws on (story_share).
    for r in generate("train", 6000, 0) + generate("train", 3000, 0, kinds=("word",), story_share=1.0):
        seen[r["lang"]] |= phrases(r["user"], r["lang"])
    return seen


def framed(record: dict, seen: dict[str, set[str]]) -> list[str]:
    """The phrases a question shares with the generator's; three or more is a shared sentence frame (one or
    two short common phrases, "how many" or "还剩多少个", are ordinary language)."""
    shared = sorted(phrases(record["user"], record["lang"]) & seen[record["lang"]])
    return shared if len(shared) >= 3 else []


def test_no_question_shares_a_sentence_frame_with_the_generator(
    records: list[dict], generator_phrases: dict[str, set[str]]
) -> None:
    hits = {r["id"]: framed(r, generator_phrases) for r in records}
    assert not {k: v for k, v in hits.items() if v}


def test_the_frame_check_flags_the_generators_own_test_questions(
    generator_phrases: dict[str, set[str]],
) -> None:
    # The generator's test split shares most frames with its train split (148 of these 200 are flagged;
    # the rest are bare expressions too short to hold three phrases, or its held-out template), while no
    # question of the independent set is: the check separates the two.
    test_split = generate("test", 200, 1)
    flagged = sum(bool(framed(r, generator_phrases)) for r in test_split)
    assert flagged >= 0.6 * len(test_split), flagged


def test_training_data_code_never_reads_the_set() -> None:
    readers = {p.name for p in (REPO / "training").glob("*.py") if "heldout" in p.read_text(encoding="utf-8")}
    assert readers <= {"eval.py", "cli.py"}, readers
