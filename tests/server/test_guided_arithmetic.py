"""Reasoning chains with the calculator writing each ``expression=``'s result (the default,
``TINYLLM_REASONING_ARITHMETIC``), against the model alone, on the shipped checkpoint through a real server
and the official ``openai`` client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from reasoning.step_check import false_steps
from server.settings import DEFAULT_MODEL_DIR
from tests.server.support import API_KEY, MODEL, run_server

# Multi-digit products and sums: where the shipped model's own columns slip.
QUESTIONS = ["计算：47*38-19", "What is 23*17+45?", "计算：96*27+58", "Work out 64*59-37."]


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with run_server(DEFAULT_MODEL_DIR, quantize="int8") as live:
        yield openai.OpenAI(base_url=live.v1, api_key=API_KEY, max_retries=0, timeout=300)


def _chains(client: openai.OpenAI, question: str, arithmetic: str | None) -> tuple[dict, list[dict]]:
    options = {"samples": 3, "return_chains": True}
    if arithmetic:
        options["arithmetic"] = arithmetic
    done = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        seed=7,
        extra_body={"self_consistency": options},
    )
    result = done.model_extra["self_consistency"]
    return result, result["chains"]


def test_every_step_holds_when_the_calculator_writes_the_results(client: openai.OpenAI) -> None:
    slipped = 0
    for question in QUESTIONS:
        guided, guided_chains = _chains(client, question, None)  # the default
        alone, alone_chains = _chains(client, question, "model")
        assert guided["arithmetic"] == "calculator" and alone["arithmetic"] == "model"
        for chain in guided_chains:
            assert false_steps(chain["reasoning_content"]) == [], chain["reasoning_content"]
            assert not chain.get("false_steps")
        slipped += sum(bool(false_steps(chain["reasoning_content"])) for chain in alone_chains)
    print(f"chains by the model alone with a false step: {slipped}/{3 * len(QUESTIONS)}")
    # The same chains written by the model alone slip (measured: 7 of the 12): the guide did the work.
    assert slipped >= 3


def test_an_unknown_arithmetic_mode_is_a_400_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chains(client, QUESTIONS[0], "abacus")
    assert caught.value.body["param"] == "self_consistency.arithmetic"
