"""Offline corpora (fortune and WordNet files in their Debian layout) and the general-chat generator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.chat_data import IDENTITY, generate_chat
from training.corpus import build_corpus, find_sources
from training.formats import to_conversation

WORDNET_NOUN = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2 Princeton University under the following license.\n"
    "07739125 13 n 02 apple 0 orchard_apple_tree 0 001 @ 07705931 n 0000 | fruit with red or yellow or green "
    'skin and sweet to tart crisp whitish flesh; "an apple a day"  \n'
    '03614007 06 n 01 library 0 000 | a room where books are kept; "they had brandy in the library"  \n'
)


@pytest.fixture()
def debian_layout(tmp_path: Path) -> tuple[Path, Path]:
    fortunes, wordnet = tmp_path / "fortunes", tmp_path / "wordnet"
    fortunes.mkdir()
    wordnet.mkdir()
    (fortunes / "tang300").write_text(
        "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n"
        "举头望明月，低头思故乡。\n%\n春眠不觉晓，处处闻啼鸟。\n%\n",
        encoding="utf-8",
    )
    (fortunes / "fortunes").write_text(
        "A day for firm decisions!!!!!  Or is it?\n%\nBe kind.\n\nAlways.\n%\n", encoding="utf-8"
    )
    (fortunes / "ascii-art").write_text("  /\\_/\\\n ( o.o )\n%\n", encoding="utf-8")
    for name in ("tang300", "fortunes", "ascii-art"):
        (fortunes / f"{name}.dat").write_bytes(b"\0" * 24)  # strfile index: marks a fortune database
    (fortunes / "README").write_text("not a database", encoding="utf-8")
    (wordnet / "data.noun").write_text(WORDNET_NOUN, encoding="utf-8")
    return fortunes, wordnet


def test_corpus_reads_fortunes_and_wordnet_glosses(tmp_path, debian_layout):
    sources = find_sources(*debian_layout)
    assert [p.name for p in sources["fortunes-zh"].files] == ["tang300"]
    assert [p.name for p in sources["fortunes-en"].files] == ["fortunes"]  # ascii-art and README skipped
    result = build_corpus(tmp_path / "out", sources=sources)
    docs = {
        name: [json.loads(x)["text"] for x in Path(info["path"]).read_text().splitlines()]
        for name, info in result.items()
    }
    assert docs["fortunes-zh"][1] == "春眠不觉晓，处处闻啼鸟。"
    assert docs["fortunes-zh"][0].startswith("\x1b[32m《静夜思》")  # colour codes are the cleaner's job
    assert docs["fortunes-en"] == ["A day for firm decisions!!!!!  Or is it?", "Be kind.\n\nAlways."]
    assert docs["wordnet"] == [
        "apple, orchard apple tree (n.): fruit with red or yellow or green skin and sweet to tart crisp whitish "
        'flesh. For example: "an apple a day".\nlibrary (n.): a room where books are kept. For example: "they '
        'had brandy in the library".'
    ]
    assert result["wordnet"]["documents"] == 1 and result["fortunes-en"]["chars"] > 10


def test_missing_packages_are_named_and_skipped(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = build_corpus(tmp_path / "out", sources=find_sources(empty, empty))
    assert all(info["missing"] for info in result.values())
    assert "apt-get install fortunes-zh" in result["fortunes-zh"]["message"]
    assert "apt-get install wordnet-base" in result["wordnet"]["message"]
    assert not list((tmp_path / "out").iterdir())


def test_chat_generator_answers_from_its_sources(debian_layout):
    records = generate_chat(300, seed=1, sources=find_sources(*debian_layout))
    assert records == generate_chat(300, seed=1, sources=find_sources(*debian_layout))  # deterministic
    convs = [to_conversation(r) for r in records]
    assert {r["lang"] for r in records} == {"zh", "en"}
    answers = [c.messages[-1]["content"] for c in convs]
    assert any(a in IDENTITY["zh"] for a in answers) and any(a in IDENTITY["en"] for a in answers)
    meanings = [a for a in answers if "means:" in a or "释义" in a]
    assert meanings and all("fruit with red" in a or "a room where books are kept" in a for a in meanings)
    poems = [a for a in answers if "春眠不觉晓" in a]
    assert poems and all("\x1b" not in a for a in answers)
    copies = [
        c for c in convs if c.messages[-2]["content"].startswith(("Repeat after me: ", "请重复这句话："))
    ]
    assert copies and all(c.messages[-2]["content"].endswith(c.messages[-1]["content"]) for c in copies)
