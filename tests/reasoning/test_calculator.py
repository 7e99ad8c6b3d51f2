"""reasoning.calculator: exact results for plain arithmetic, refusal of everything else."""

from fractions import Fraction

import pytest

from reasoning.calculator import (
    MAX_CHARS,
    CalculatorError,
    check_answer,
    evaluate,
    find_expression,
    is_expression,
)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("12*(3+4)-10", Fraction(74)),
        ("7*8-5", Fraction(51)),
        ("2+3*4", Fraction(14)),
        ("(2+3)*4", Fraction(20)),
        ("10-4-3", Fraction(3)),
        ("48/4/2", Fraction(6)),
        ("3/5", Fraction(3, 5)),
        ("0.1+0.2", Fraction(3, 10)),  # exact, unlike floats
        ("1/3*3", Fraction(1)),
        ("-(2-5)", Fraction(3)),
        ("+4", Fraction(4)),
        ("１２×（３＋４）－１０", Fraction(74)),
        ("84 ÷ 7 − 2", Fraction(10)),
        (" 6 * 7 ", Fraction(42)),
    ],
)
def test_evaluate(expr: str, value: Fraction) -> None:
    assert evaluate(expr) == value


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('echo hi')",
        "abs(-3)",  # call
        "x+1",  # name
        "(1).real",  # attribute
        "2**3",  # power: AST whitelist
        "9**9**9",
        "7//2",  # floor division: AST whitelist
        "7%2",
        "[1, 2]",
        "'a'*3",
        "1 if 1 else 2",
        "lambda: 1",
        "1e5",
        "True+1",
        "",
        "   ",
        "1+",
        "(1+2",
        "007",
    ],
)
def test_rejects_anything_but_arithmetic(expr: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expr)


def test_rejects_huge_inputs() -> None:
    with pytest.raises(CalculatorError, match="longer"):
        evaluate("1+" * MAX_CHARS + "1")
    with pytest.raises(CalculatorError, match="parts"):
        evaluate("+".join(["1"] * 60))  # short enough, but too many nodes
    with pytest.raises(CalculatorError, match="too large"):
        evaluate("9" * 30)
    with pytest.raises(CalculatorError, match="too large"):
        evaluate("99999*99999*99999*99999")  # every intermediate result is bounded
    with pytest.raises(CalculatorError, match="too large"):
        evaluate("1/99999/99999/99999/99999")


def test_division_by_zero() -> None:
    with pytest.raises(CalculatorError, match="division by zero"):
        evaluate("5/(3-3)")
    assert isinstance(CalculatorError("x"), ValueError)


@pytest.mark.parametrize(
    ("question", "expression"),
    [
        ("计算：12*(3+4)-10", "12*(3+4)-10"),
        ("What is 7*8-5?", "7*8-5"),
        ("Compute 7 * 8 - 5.", "7 * 8 - 5"),
        ("１２×（３＋４）－１０＝？", "12*(3+4)-10"),
        ("求 12 ÷ 4 + 2 的值。", "12 / 4 + 2"),
        ("2024年的题目：3+4等于几？", "3+4"),
        ("(见 3+4)", "3+4"),
        ("先算 2+2，再算 10*(3+4)-1", "10*(3+4)-1"),  # the longest one
        ("Work out 41 x 7 - 13 X 13.", "41*7 - 13*13"),  # x between spaced operands is a times sign
        ("Find (37 + 26) x (18 - 11).", "(37 + 26)*(18 - 11)"),
    ],
)
def test_find_expression(question: str, expression: str) -> None:
    assert find_expression(question) == expression


@pytest.mark.parametrize(
    "question", ["一个盒子里有3个红球和2个蓝球", "What is 12?", "今天是2024-01-05", "hello"]
)
def test_find_expression_none(question: str) -> None:
    assert find_expression(question) is None


def test_is_expression() -> None:
    assert is_expression("3+4") and not is_expression("-5") and not is_expression("3+")


def test_check_answer() -> None:
    check = check_answer("计算：12*(3+4)-10", "答案：74。")
    assert check is not None and (check.expression, check.value, check.agrees) == ("12*(3+4)-10", "74", True)
    assert check_answer("计算：12*(3+4)-10", "75").agrees is False
    assert check_answer("计算：12*(3+4)-10", None).agrees is False
    assert check_answer("What is 3/5?", "0.6").agrees is True
    assert check_answer("What is 5/(2-2)?", "1") is None
    assert check_answer("一个盒子里有3个红球", "3/5") is None
