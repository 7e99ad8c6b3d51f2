"""The grounding checks of ``reasoning.chain_check``: silent on every verified chain of the generator, and they
flag the wrong chains a small model really writes (quoted from the shipped checkpoint's eval samples). The
phrases of the format are written with ``reasoning.chain_format``, as the generator writes them."""

from __future__ import annotations

import pytest

from reasoning import chain_format as cf
from reasoning.chain_check import check_chain, question_numbers, ungrounded
from training import reasoning_data as rd


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return rd.generate("train", 1200, seed=11) + rd.generate("test", 400, seed=11)


def test_no_finding_on_any_verified_chain(records: list[dict]) -> None:
    kinds = set()
    for r in records:
        assert ungrounded(r["user"], r["cot"], r["answer"]) == [], r
        assert check_chain(r["user"], r["cot"], r["answer"]).ok
        kinds.add((r["kind"], r["stratum"], r["lang"]))
    assert len(kinds) == 16  # every kind, stratum and language was checked


def test_a_misread_number_is_flagged() -> None:
    question = (
        "There are 12 crates with 27 stamps each and another 39 on the table. If 259 are taken away, "
        "how many stamps remain?"
    )
    cot = (
        "The full groups hold 12*27=324. With the extra ones: 324+39=363. After removing 399: "
        f"{cf.worked('en', 363, '-', 399, 164, ['13-9=4', '16-1-9=6', '3-1-3=1'])}. {cf.answer('en', 164)}."
    )
    assert ungrounded(question, cot, "164") == [
        "uses 399, neither a number of the question nor an earlier result",
        "never uses 259 from the question",
    ]
    # The same chain with the number read right has no finding (the borrowed column 13-9 is column work).
    fixed = cot.replace("399", "259").replace("16-1-9=6", "6-1-5=0").replace("3-1-3=1", "3-2=1")
    assert ungrounded(question, fixed, "104") == []


def test_a_dropped_number_and_an_invented_one_are_flagged() -> None:
    question = "一共8袋书，每袋42本；再加上30本，然后分出去132本。请问剩余多少本书？"
    cot = f"整份的数量：8*42=336。加上另外的：336+32=368。减去拿走的：368-132=236。{cf.answer('zh', 236)}。"
    assert ungrounded(question, cot, "236") == [
        "uses 32, neither a number of the question nor an earlier result",
        "never uses 30 from the question",
    ]


def test_a_variable_the_question_does_not_have_is_flagged() -> None:
    question = "小明13岁，叔叔的岁数是小明的3倍。过了13年，他们俩加起来多少岁？"
    cot = f"前两部分：13+3=16。一共：16+1=17份。一共是17个x：17*x=17x。{cf.answer('zh', '17x')}。"
    assert ungrounded(question, cot, "17x") == ["answers in x, which the question does not have"]
    assert ungrounded("5x+22=82，x等于多少？", "82-22=60。60/5=12。所以x=12。", "x=12") == []
    assert ungrounded("Write 8 times y.", "8*y=8y.", "8y") == []


def test_a_result_the_chain_drops_is_flagged() -> None:
    question = "Compute (85+(17*77+30))*2."
    cot = (
        "First, multiply inside the parentheses: 17*77=1309. Next, add inside the parentheses: 85+30: 5+0=5, "
        "8+3=11, so 85+30=115. Finally, multiply: 1309*2: 9*2=18, 0*2+1=1, 3*2=6, 1*2=2, so 1309*2=2618."
    )
    assert ungrounded(question, cot, "2618") == ["computes 85+30=115 and never uses 115"]
    right = (
        "First, multiply inside the parentheses: 17*77=1309. Next, add inside the parentheses: 1309+30=1339. "
        "Next, add: 85+1339=1424. Finally, multiply: 1424*2=2848."
    )
    assert ungrounded(question, right, "2848") == []


def test_a_small_result_dropped_is_flagged_but_column_work_is_not() -> None:
    question = "求80/(20/2)/(28/7)的值。"
    cot = "先算括号里的除法：20/2=10。然后算括号里的除法：28/7=4。接着算除法：80/2=40。最后算除法：40/4=10。"
    assert ungrounded(question, cot, "10") == ["computes 20/2=10 and never uses 10"]
    right = "先算括号里的除法：20/2=10。然后算括号里的除法：28/7=4。接着算除法：80/10=8。最后算除法：8/4=2。"
    assert ungrounded(question, right, "2") == []
    # The columns of a worked step (4+9=13, ...) and the partial products of a long multiplication are not
    # steps whose results must be used again.
    worked = (
        "12*27: 27*1=27, 27*10=270, 27*2: 7*2=14, 2*2+1=5, so 27*2=54, 270+54: 0+4=4, 7+5=12, 2+0+1=3, "
        "so 270+54=324, so 12*27=324. 324+39: 4+9=13, 2+3+1=6, 3+0=3, so 324+39=363."
    )
    assert ungrounded("12 boxes of 27, and 39 more.", worked, "363") == []


def test_question_numbers_and_chains_without_steps() -> None:
    assert question_numbers("Ｉ have 1,000 coins, 2.5 kg of tea and room A4 — （12）") == [1000, 12]
    assert ungrounded("你好，今天星期3吗？", "我是 TinyLLM，很高兴和你聊天。", None) == []
    # A false step and a foreign number are reported separately; either makes the chain fail the check.
    check = check_chain("Compute 40+25.", "40+25=66. 66+99=165.", "165")
    assert check.false_steps == ["40+25=66"] and check.ungrounded == [
        "uses 99, neither a number of the question nor an earlier result"
    ]
    assert not check.ok


# An expression chain that rewrites what is left after each step, as the generator writes it.
REWRITTEN = (
    f"{cf.given('zh', '33/(546/(91+91))*43')}。"
    f"先算括号里的加法：{cf.worked('zh', 91, '+', 91, 182, ['1+1=2', '9+9=18'])}{cf.rewrite('zh', '33/(546/182)*43')}。"
    f"然后算括号里的除法：546/182=3{cf.rewrite('zh', '33/3*43')}。"
    f"然后算除法：33/3=11{cf.rewrite('zh', '11*43')}。最后算乘法：11*43=473。{cf.result('zh', 473)}。"
)
QUESTION = "33/（546/（91+91））*43等于几？"


def test_rewrites_that_follow_have_no_finding() -> None:
    assert ungrounded(QUESTION, REWRITTEN, "473") == []
    # Brackets that change nothing are not a different expression.
    assert ungrounded(QUESTION, REWRITTEN.replace("变成11*43", "变成(11)*43"), "473") == []


def test_a_wrong_operand_after_a_rewrite_is_flagged() -> None:
    # A greedy chain of an earlier checkpoint on this question went on with 33*43 after 33/11=3 (it wrote no
    # rewrites); with them, the slip is also a rewrite that does not follow, or a last step that is not
    # what is left, although every step holds and every number is the question's.
    slipped = REWRITTEN.replace(
        f"变成11*43。最后算乘法：11*43=473。{cf.result('zh', 473)}",
        f"变成33*43。最后算乘法：33*43=1419。{cf.result('zh', 1419)}",
    )
    assert ungrounded(QUESTION, slipped, "1419") == [
        "computes 33/3=11 and never uses 11",
        "rewrites 33/3*43 as 33*43 after 33/3=11",
    ]
    last = REWRITTEN.replace(
        f"最后算乘法：11*43=473。{cf.result('zh', 473)}", f"最后算乘法：33*43=1419。{cf.result('zh', 1419)}"
    )
    assert ungrounded(QUESTION, last, "1419") == [
        "computes 33/3=11 and never uses 11",
        "does 33*43=1419 when what is left is 11*43",
    ]
    # A rewrite that moves a number is caught where the other rules see nothing wrong: every number is the
    # question's or an earlier result, every result is used, every step holds.
    moved = (
        f"{cf.given('en', '90+(40-25)*2')}. First, subtract inside the parentheses: 40-25=15"
        f"{cf.rewrite('en', '15+90*2')}. Then, multiply: 90*2=180{cf.rewrite('en', '15+180')}. "
        "Finally, add: 15+180=195."
    )
    assert ungrounded("Compute 90+(40-25)*2.", moved, "195") == [
        "rewrites 90+(40-25)*2 as 15+90*2 after 40-25=15"
    ]
    right = (
        moved.replace("15+90*2", "90+15*2")
        .replace("90*2=180", "15*2=30")
        .replace("15+180", "90+30")
        .replace("90+30=195", "90+30=120")
    )
    assert ungrounded("Compute 90+(40-25)*2.", right, "120") == []


def test_a_rewrite_without_its_step_or_a_step_left_undone_is_flagged() -> None:
    question = "Compute 21/(1+2)."
    no_step = (
        f"{cf.given('en', '21/(1+2)')}. First, {cf.REWRITE['en']} 21/3. Finally, divide: 21/3=7. "
        f"{cf.result('en', 7)}."
    )
    assert ungrounded(question, no_step, "7") == [
        "never uses 1 from the question",
        "never uses 2 from the question",
        "rewrites 21/(1+2) with no step before it",
    ]
    undone = f"{cf.given('en', '21/(1+2)')}. First, add inside the parentheses: 1+2=3{cf.rewrite('en', '21/3')}. So 7."
    assert ungrounded(question, undone, "7") == ["never uses 21 from the question", "leaves 21/3 undone"]
