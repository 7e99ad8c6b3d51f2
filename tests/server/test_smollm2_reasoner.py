"""The shipped SmolLM2 reasoning adapters (``checkpoints/smollm2-reasoning-lora``): the documented command folds
them into the pulled base, and the result, served for real with the defaults, thinks by default and answers
part of the independent held-out set (``evals/heldout-v1.jsonl``), asked as a user asks.

Measured on this slice when the adapters were committed (``pytest tests/server/test_smollm2_reasoner.py -s``
prints it): 21/40 (easy 11, hard 10) with the eight adapters and the calculator writing results, copies,
rewrites and the closings of worked operations, holding each step to the order of operations (16/40 with
the first six, 13/40 with the first four, 16/40 with the first three, which were not trained to answer
without a chain), the threshold three below. The whole set's figures are in the
adapters' README.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from benchmarks.heldout_eval import load_problems
from reasoning.answers import extract_answer
from tests.server.support import API_KEY, MODEL, LiveServer, heldout_slice_right, run_server
from training.cli import main as training_main

REPO = Path(__file__).resolve().parents[2]
ADAPTERS = REPO / "checkpoints" / "smollm2-reasoning-lora"
SLICE = load_problems(limit=40)  # 5 from each cell of language x stratum x kind
MIN_CORRECT = 18  # of 40; measured 21 (easy 11, hard 10)


@pytest.fixture(scope="module")
def reasoner(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smollm2-reasoning")
    folded = sorted(
        (p for p in ADAPTERS.iterdir() if (p / "adapter_config.json").is_file()), key=lambda p: int(p.name)
    )
    adapters = [str(p) for p in folded]  # in training order: 1, 2, ..., 10
    argv = ["lora-merge", "--base", str(smollm2_dir), "--adapter", *adapters, "--out", str(out)]
    assert training_main(argv) == 0
    return out


@pytest.fixture(scope="module")
def server(reasoner: Path) -> Iterator[LiveServer]:
    with run_server(reasoner, quantize="int8", max_batch=8) as live:
        yield live


def test_it_thinks_by_default(server: LiveServer) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0, timeout=300)
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 7 plus 5?"}]
    )
    message = r.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content"), message
    assert message.content and "</think>" not in message.content


def test_reasoning_effort_none_gets_the_answer_alone(server: LiveServer) -> None:
    """The fourth adapter trained answers after an empty chain, the prompt the merged template writes for a
    plain request: the answer sentence at once, no chain in either field (before it, the model wrote a
    chain into ``content``)."""
    client = openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0, timeout=300)
    for question in ("What is 7 plus 5?", "12的2倍再加3是多少？"):
        r = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": question}],
            reasoning_effort="none",
            max_tokens=40,
        )
        message = r.choices[0].message
        assert not (message.model_extra or {}).get("reasoning_content"), message
        assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens <= 16, r
        assert extract_answer(message.content) is not None and "think>" not in message.content, message


def test_it_answers_part_of_the_independent_set(server: LiveServer) -> None:
    right, by_stratum = heldout_slice_right(server, SLICE)
    print(f"SmolLM2 reasoner, independent set slice: {right}/{len(SLICE)} right {by_stratum}")
    assert right >= MIN_CORRECT, by_stratum
