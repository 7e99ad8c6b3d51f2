"""Train chains take other valid orders of their steps; test chains keep the one school order.

The self-consistency vote gains only where sampled chains are not all the greedy chain. So the train split
writes independent steps in varying order (``training.reasoning_problems._schedule`` with an rng,
``Context.any_order``); the test split, which the eval reads, is unchanged.
"""

from __future__ import annotations

import random
import re

import pytest

from training import reasoning_problems
from training.reasoning_data import generate, verify_record


def _tree(text: str) -> list:
    """The generator's node form ([value] or [value, op, left, right]) of a fully parenthesised a op b."""
    text = text.strip()
    if text.isdigit():
        return [int(text)]
    depth = 0
    for i in range(len(text) - 1, -1, -1):  # the last operator outside parentheses, lowest precedence
        ch = text[i]
        depth += ch == ")"
        depth -= ch == "("
        if depth == 0 and ch in "+-":
            break
    else:
        i = next((i for i in range(len(text) - 1, -1, -1) if text[i] in "*/"
                  and text[:i].count("(") == text[:i].count(")")), -1)
    if i < 0:
        return _tree(text[1:-1])
    left, right = _tree(text[:i]), _tree(text[i + 1:])
    value = {"+": left[0] + right[0], "-": left[0] - right[0], "*": left[0] * right[0],
             "/": left[0] // right[0] if right[0] else 0}[text[i]]
    return [value, text[i], left, right]


def _orders(expression: str, **kwargs) -> set[tuple[str, ...]]:
    """Every order ``_schedule`` gives over 200 seeds, each as the list of its steps ("80*14", ...)."""
    root = _tree(expression)
    seen = set()
    for seed in range(200):
        steps = reasoning_problems._schedule(root, random.Random(seed), **kwargs)
        seen.add(tuple(f"{n[2][0]}{n[1]}{n[3][0]}" for n, _ in steps))
    return seen


def test_without_an_rng_the_order_is_school_order():
    steps = reasoning_problems._schedule(_tree("87*96-(68+98)"))
    assert [f"{n[2][0]}{n[1]}{n[3][0]}" for n, _ in steps] == ["68+98", "87*96", "8352-166"]
    assert [inside for _, inside in steps] == [True, False, False]


def test_independent_operations_of_one_rank_come_in_either_order():
    assert _orders("80*14+29*88") == {("80*14", "29*88", "1120+2552"), ("29*88", "80*14", "1120+2552")}


def test_the_rule_is_kept_unless_the_intro_states_none():
    """With a rule-stating intro, brackets come before the multiplication; after the free intro, either."""
    assert _orders("87*96-(68+98)") == {("68+98", "87*96", "8352-166")}
    assert _orders("87*96-(68+98)", free=True) == {("68+98", "87*96", "8352-166"), ("87*96", "68+98", "8352-166")}


@pytest.mark.parametrize("expression", ["(85+(17*77+30))*2", "80/(20/2)/(28/7)", "47-35-(63+67)/13"])
def test_every_order_does_each_operation_after_its_operands(expression: str):
    root = _tree(expression)
    for seed in range(50):
        done: set[int] = set()
        for node, _ in reasoning_problems._schedule(root, random.Random(seed), free=True):
            assert all(len(child) == 1 or id(child) in done for child in node[2:])
            done.add(id(node))
        assert len(done) == len(reasoning_problems._schedule(root))


def _cost_sentences_follow_the_restatement(cot: str) -> bool:
    """In a hard shopping chain, are the two costs computed in the order the restatement names them?"""
    named = re.findall(r"There are \d+ (.+?) at \d+ \w+ and \d+ (.+?) at", cot)[0]
    costed = re.findall(r"The (.+?) cost \d", cot)
    return costed == list(named)


def test_train_word_chains_vary_the_order_of_independent_steps_and_test_chains_do_not():
    def shopping(split: str) -> list[dict]:
        records = generate(split, 300, 3, strata=["hard"], langs=["en"], kinds=["word"])
        return [r for r in records if r["cot"].startswith("There are") and " cost " in r["cot"]]

    train, test = shopping("train"), shopping("test")
    assert len(train) > 20 and len(test) > 20
    in_order = [_cost_sentences_follow_the_restatement(r["cot"]) for r in train]
    assert 0.25 < sum(in_order) / len(in_order) < 0.75  # both orders, about half each
    assert all(_cost_sentences_follow_the_restatement(r["cot"]) for r in test)
    assert all(not verify_record(r) for r in train)
