"""reasoning.step_check: the arithmetic steps of a chain, read and recomputed exactly."""

from __future__ import annotations

from reasoning.chain_format import REDUCE
from reasoning.step_check import chain_equations, equation_holds, false_steps


def test_step_parser_reads_only_single_operations() -> None:
    assert chain_equations("So 7*8-5=51. First, add: 3+4=7.") == [("3", "+", "4", "7")]
    assert chain_equations(f"{REDUCE['zh']}6/10=3/5。一共是8个x：8*x=8x。") == [
        ("6", "/", "10", "3/5"),
        ("8", "*", "x", "8x"),
    ]
    assert equation_holds("6", "/", "10", "3/5") and not equation_holds("6", "/", "10", "2/5")
    assert not equation_holds("5", "/", "0", "1")


def test_false_steps_lists_what_does_not_hold() -> None:
    sound = (
        "48+154：8+4=12，4+5+1=10，0+1+1=2，所以48+154=202。84-17: 14-7=7, 8-1-1=6. 7*23：3*7=21，2*7+2=16。"
    )
    assert false_steps(sound) == []
    assert false_steps(f"先算：60+20=70。再算：4+5+1=11。{REDUCE['zh']}18/30=3/5。") == [
        "60+20=70",
        "4+5+1=11",
    ]
    assert false_steps("2*7+2=17. 8-1-1=7. 7/12=1/2.") == ["7/12=1/2", "2*7+2=17", "8-1-1=7"]
    assert false_steps("8*x=9x") == ["8*x=9x"]
    assert false_steps("没有算式。") == []
