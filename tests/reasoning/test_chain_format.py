"""reasoning.chain_format: what a writer writes, the matching pattern reads back, in both languages.

The generators' own chains are covered by the data tests (tests/training/test_reasoning_data.py) and the
chain check's (tests/reasoning/test_chain_check.py); here each writer meets its reader directly, with values
chosen so that a reader taking the wrong group or a writer dropping a part shows.
"""

from __future__ import annotations

import pytest

from reasoning import chain_format as cf
from reasoning.answers import extract_answer, normalize_answer
from reasoning.chain_check import ungrounded

LANGS = ("zh", "en")


@pytest.mark.parametrize("lang", LANGS)
def test_the_copy_and_the_rewrites_read_back(lang: str) -> None:
    text = cf.given(lang, "90+(40-25)*2") + "。" + "40-25=15" + cf.rewrite(lang, "90+15*2") + "。"
    assert cf.EXPRESSION_COPY_RE.search(text)[1] == "90+(40-25)*2"
    assert cf.REWRITE_RE.findall(text) == ["90+15*2"]
    # A model may leave out the space after the English phrase; the reader still finds it.
    assert cf.REWRITE_RE.search(cf.REWRITE["en"] + "15+180")[1] == "15+180"


@pytest.mark.parametrize("lang", LANGS)
def test_a_worked_operation_ends_where_its_own_result_is_given(lang: str) -> None:
    text = cf.worked(lang, 48, "+", 154, 202, ["8+4=12", "4+5+1=10", "0+1+1=2"])
    header = cf.WORKED_HEADER_RE.match(text)
    assert header.groups() == ("48", "+", "154")
    end = cf.worked_end_re(*header.groups()).search(text, header.end())
    assert text[end.end() :] == "202"
    assert cf.WORKED_PARTS_RE.sub("", text) == "48+154=202"  # the partial work is dropped, the result kept


@pytest.mark.parametrize("lang", LANGS)
def test_reductions_read_back_with_every_number_in_place(lang: str) -> None:
    text = cf.reduction(lang, 6, 10, 2, "6/2=3", "10/2=5", "3/5")
    groups = cf.REDUCTION_RE[lang].fullmatch(text).groups()
    expected = ("6", "10", "2", "6", "2", "3", "10", "2", "5", "6", "10", "3/5")
    assert groups == (expected if lang == "zh" else expected[2:])
    assert len(cf.REDUCTION_START_RE.findall(text)) == 1
    assert cf.REDUCTION_PARTS_RE.sub("", text) == "6/10=3/5"
    assert cf.IRREDUCIBLE_RE[lang].fullmatch(cf.irreducible(lang, 7, 12)).groups() == ("7", "12", "7", "12")


@pytest.mark.parametrize("lang", LANGS)
def test_colour_checks_read_back(lang: str) -> None:
    red, green, blue = ("红色", "绿色", "蓝色") if lang == "zh" else ("red", "green", "blue")
    restated = cf.counts(lang, [red, green, blue], [8, 7, 2], "球", "个")
    checks = cf.colour_checks(lang, green, [red, green], [8, 7], "个")
    probability = cf.probability(lang, "个", "ball", 7, 17)
    end = "。" if lang == "zh" else ". "
    cot = end.join([restated, checks, probability]) + end
    asked, items = cf.COLOUR_CHECKS_RE[lang].search(cot).groups()
    assert asked == green
    assert cf.COLOUR_CHECK_RE[lang].findall(items) == [
        (red, "8", green, "", ""),
        (green, "7", "", green, "7"),
    ]
    assert cf.FIRST_CHECK_RE[lang].search(cot).groups() == (green, red)
    assert cf.PROBABILITY_RE.search(cot).groups() == ("7", "17")


@pytest.mark.parametrize("lang", LANGS)
def test_last_sentences_give_the_answer(lang: str) -> None:
    assert normalize_answer(extract_answer(cf.final(lang, "3/5"))) == "3/5"
    assert normalize_answer(extract_answer(cf.final(lang, cf.solution(lang, "x", 5)))) == "5"
    assert extract_answer(cf.answer(lang, "17x")) == "17x"
    assert extract_answer(cf.result(lang, 74)) == "74"


def test_the_phrase_list_holds_what_the_checks_read() -> None:
    """Each phrase that a pattern of the module anchors on is in PHRASES (so the layering test guards it)."""
    for table in (cf.GIVEN, cf.REWRITE, cf.REDUCE, cf.ASKED, cf.IS_ASKED, cf.PROBABILITY, cf.IRREDUCIBLE):
        assert set(table.values()) <= set(cf.PHRASES)
    assert cf.SO["en"] not in cf.PHRASES  # an ordinary word: read only after a worked operation's header


def test_the_chain_check_reads_what_the_writers_write() -> None:
    """A rewrite written through the format that does not follow from the step before it is found."""
    cot = (
        f"{cf.given('en', '90+(40-25)*2')}. 40-25=15{cf.rewrite('en', '15+90*2')}. "
        f"90*2=180{cf.rewrite('en', '15+180')}. 15+180=195."
    )
    assert ungrounded("Compute 90+(40-25)*2.", cot, "195") == [
        "rewrites 90+(40-25)*2 as 15+90*2 after 40-25=15"
    ]
