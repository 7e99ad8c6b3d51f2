"""reasoning.answers: splitting reasoning output, answer extraction, normalisation and the vote."""

import pytest

from reasoning.answers import extract_answer, normalize_answer, split_reasoning
from reasoning.vote import vote


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ("答案：74。", "74"),
        ("答案是 74", "74"),
        ("The answer is 74.", "74"),
        ("The answer is 74", "74"),
        ("Answer: 3/5", "3/5"),
        ("最终答案：0.6", "0.6"),
        ("74", "74"),
        ("x = 5", "5"),
        ("答案：x=5。", "5"),
        ("答案：12*7-10=74。", "74"),
        ("Answer: **74**", "74"),
        ("8x", "8x"),
        ("答案：8x。", "8x"),
        ("答案：74元。", "74"),
        ("The answer is 60 km.", "60"),
        ("The answer is 1,000.", "1,000"),
        ("答案：74，结果正确。", "74"),  # a strong marker beats a later weak one
        ("The final answer is \\boxed{12}.", "12"),
        ("12*7-10=74", "74"),
        ("So she has 74 apples left.", "74"),
        ("答案：３／５。", "3/5"),  # full-width digits and slash
    ],
)
def test_extract_answer(final: str, expected: str) -> None:
    assert extract_answer(final) == expected


@pytest.mark.parametrize("final", ["", None, "答案：", "I am not sure."])
def test_extract_answer_none(final: str | None) -> None:
    assert extract_answer(final) is None


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        ("74", "74"),
        ("74.0", "74"),
        ("74。", "74"),
        (" 74 ", "74"),
        ("７４", "74"),
        ("+74", "74"),
        ("1,234", "1234"),
        ("1，234", "1234"),
        ("3/5", "3/5"),
        ("0.6", "3/5"),
        ("6/10", "3/5"),
        ("60%", "3/5"),
        ("5分之3", "3/5"),
        ("-0.5", "-1/2"),
        ("−0.5", "-1/2"),
        ("2/1", "2"),
        ("0.0", "0"),
        ("x = 5", "5"),
        ("y=5.", "5"),
        ("8x", "8x"),
        ("8*x", "8x"),
        ("8 x", "8x"),
        ("8X", "8x"),
        ("８ｘ", "8x"),
        ("3x + 5", "3x+5"),
        ("Red  Ball", "red ball"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_answer(answer: str | None, key: str) -> None:
    assert normalize_answer(answer) == key


def test_issue_examples_share_one_key() -> None:
    keys = {normalize_answer(extract_answer(text)) for text in ("答案：74。", "The answer is 74", "74.0")}
    assert keys == {"74"}
    assert normalize_answer("3/5") == normalize_answer("0.6") != normalize_answer("0.61")


def test_division_by_zero_is_not_a_number() -> None:
    assert normalize_answer("3/0") == "3/0"  # kept as text, never a crash


@pytest.mark.parametrize(
    ("text", "reasoning", "final"),
    [
        ("\n先算括号：3+4=7。\n</think>\n答案：7。", "先算括号：3+4=7。", "答案：7。"),
        ("<think>\nchain\n</think>\nThe answer is 7.<|end|>", "chain", "The answer is 7."),
        ("chain cut off by max_tokens", "chain cut off by max_tokens", ""),
        ("</think>\n答案：7。", None, "答案：7。"),
        ("", None, ""),
    ],
)
def test_split_reasoning(text: str, reasoning: str | None, final: str) -> None:
    assert split_reasoning(text) == (reasoning, final)


def test_vote_majority_across_spellings() -> None:
    result = vote(["3/5", "0.6", "74", "60%", None])
    assert (result.key, result.count, result.answer, result.winner_index) == ("3/5", 3, "3/5", 0)
    assert result.agreement == pytest.approx(3 / 5)
    assert result.votes == [("3/5", 3), ("74", 1)]


def test_vote_winner_index_is_first_sample_of_winner() -> None:
    result = vote([None, "12", "74", "74.0", "74"])
    assert (result.key, result.count, result.winner_index, result.answer) == ("74", 3, 2, "74")


def test_vote_tie_goes_to_first_in_sample_order() -> None:
    assert vote(["5", "7", "7", "5"]).key == "5"
    assert vote(["7", "5", "5", "7"]).key == "7"
    tied = vote(["a", "b", "c"])
    assert (tied.key, tied.winner_index, tied.votes) == ("a", 0, [("a", 1), ("b", 1), ("c", 1)])


def test_vote_missing_answers_never_win() -> None:
    result = vote([None, "", None, "9"])
    assert (result.key, result.count, result.winner_index) == ("9", 1, 3)
    assert result.agreement == pytest.approx(0.25)
    nothing = vote([None, "  "])
    assert (nothing.answer, nothing.key, nothing.count, nothing.agreement, nothing.votes) == (
        None,
        None,
        0,
        0.0,
        [],
    )
    assert nothing.winner_index == 0
    with pytest.raises(ValueError):
        vote([])


def test_checked_vote_ranks_eligible_votes_first() -> None:
    answers = ["12", "12", "12", "15", "15"]
    plain = vote(answers)
    assert plain.key == "12" and plain.checked is None
    # Two of the "12" chains made a false step: the checked "15" votes outrank them.
    checked = vote(answers, eligible=[False, False, True, True, True])
    assert (checked.key, checked.count, checked.winner_index) == ("15", 2, 3)
    assert checked.votes == [("15", 2), ("12", 3)] and checked.checked == [2, 1]
    assert checked.agreement == pytest.approx(2 / 5)
    # All eligible, or none: the plain vote.
    for flags in ([True] * 5, [False] * 5):
        assert vote(answers, eligible=flags).key == "12"
    # A tie in eligible votes goes to the answer with more votes overall.
    assert vote(["7", "7", "9"], eligible=[True, False, True]).key == "7"
    assert vote([None, None], eligible=[True, True]).checked == []
    with pytest.raises(ValueError):
        vote(["1", "2"], eligible=[True])
