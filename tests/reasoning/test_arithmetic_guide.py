"""The calculator guide (reasoning/arithmetic_guide.py): what it completes, that it agrees with every chain the
training generator writes, and that it drives the real sampler token by token with real tokenizers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from model.sampling import SamplingParams, SequenceSamplingState, sample_batch
from model.tokenizer_loading import load_tokenizer
from reasoning.arithmetic_guide import ArithmeticGuide, GuideVocabulary, question_expression, value_to_write
from reasoning.chain_format import GIVEN
from server.settings import DEFAULT_MODEL_DIR
from training import reasoning_data as rd


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("先算括号里的加法：57+88=", "145"),
        ("so 48+154=", "202"),
        ("所以12*(3+4)=", "84"),
        ("2*7+2=", "16"),  # a column with its carry: precedence as written
        ("so 8/14=", "4/7"),  # a reduction: the fraction in lowest terms
        ("3-7=", "-4"),
        ("x=12/3=", "4"),  # the expression after the variable's "=" is complete
        ("3x+5=", None),  # an equation's side, not a sum
        ("so 9n=", None),
        ("so x=", None),
        ("7=", None),  # no operator: nothing to compute
        ("(3+4=", None),  # not an expression the calculator accepts
        ("5/0=", None),  # no value
        ("3+4", None),  # no "=" yet
    ],
)
def test_the_value_it_writes_after_an_expression(text: str, value: str | None) -> None:
    assert value_to_write(text) == value


def test_it_agrees_with_every_chain_the_generator_writes() -> None:
    """The guide never changes a correct chain: wherever the training format writes ``expression=``, the
    guide's value is the one written there, and the number ends where the value ends."""
    completed = 0
    for split in ("train", "test"):
        for record in rd.generate(split, 400, seed=3):
            text = record["cot"] + "\n" + record["final"]
            for end in (m.end() for m in re.finditer("=", text)):
                value = value_to_write(text[:end])
                if value is not None:
                    completed += 1
                    assert re.match(re.escape(value) + r"(?![\d/])", text[end:]), text[end - 30 : end + 10]
    assert completed > 2000


@pytest.mark.parametrize(
    ("question", "expression"),
    [
        ("计算：12×(3+4)−10", "12*(3+4)-10"),
        ("Work out 41 x 7 - 13 x 13.", "41*7-13*13"),  # x between spaced operands is a times sign
        ("Give me the number 46 * (15 + 19) - 9 comes to.", "46*(15+19)-9"),
        ("解方程：3x+5=20", None),  # a variable: an equation
        ("2024年，小明算了3+4，结果是几？", None),  # a number outside the expression
        ("What is 7 times 8?", None),  # in words: the model reads it
        ("Tom has 5 apples.", None),
    ],
)
def test_the_expression_a_chain_copies_from_the_question(question: str, expression: str | None) -> None:
    assert question_expression(question) == expression


def test_it_copies_every_generator_question_as_the_generators_chain_does() -> None:
    copied = 0
    for record in rd.generate("train", 1500, seed=4, kinds=("expression", "algebra")):
        expression = question_expression(record["user"])
        cot = record["cot"]
        if expression is not None:
            marker = next(m for m in GIVEN.values() if cot.startswith(m))
            assert (
                cot[len(marker) :].lstrip().startswith(expression + ("。" if record["lang"] == "zh" else "."))
            )
            copied += 1
        else:  # an equation, or a question in words: the model writes its own copy
            assert record["kind"] == "algebra" or not any(c in record["user"] for c in "+*/×÷")
    assert copied > 300


@pytest.fixture(scope="module", params=["sentencepiece", "tokenizer.json"])
def tokenizer(request: pytest.FixtureRequest, hf_checkpoint: Path):
    return load_tokenizer(DEFAULT_MODEL_DIR if request.param == "sentencepiece" else hf_checkpoint)


def _allowed(guide: ArithmeticGuide, vocab_size: int) -> torch.Tensor:
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    guide.fill_mask(mask)
    return mask


def test_after_an_expression_only_its_value_may_follow_then_no_digit(tokenizer) -> None:
    vocab = GuideVocabulary.of(tokenizer)
    guide = ArithmeticGuide(vocab)
    for token in tokenizer.encode("先算括号里的加法：57+88="):
        assert _allowed(guide, tokenizer.vocab_size).all()  # before "=": every token
        guide.accept(token)
    written = []
    for _ in range(3):
        allowed = _allowed(guide, tokenizer.vocab_size).nonzero().flatten().tolist()
        assert len(allowed) == 1
        written.append(allowed[0])
        guide.accept(allowed[0])
    assert tokenizer.decode(written) == "145" and guide.completed == 1
    after = _allowed(guide, tokenizer.vocab_size)
    assert not after[vocab.digit_start].any()  # "145" cannot become "1450"
    assert after[tokenizer.encode("，")[-1]] and after[tokenizer.stop_token_ids[0]]
    guide.accept(tokenizer.encode("，")[-1])
    assert _allowed(guide, tokenizer.vocab_size).all()


def test_the_sampler_writes_the_calculators_digits_over_the_models(tokenizer) -> None:
    """A 'model' that always prefers 9 writes 57+88=145 under the guide, then its second choice (not a
    digit), greedy or sampled; each of a request's sequences (``fork``) keeps its own state."""
    prefix = tokenizer.encode("57+88=")
    nine = GuideVocabulary.of(tokenizer).char_ids["9"]
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer))
    for token in prefix:
        guide.accept(token)
    rows = [
        SequenceSamplingState.create(SamplingParams(temperature=0.0, constraint=guide), prefix),
        SequenceSamplingState.create(SamplingParams(temperature=1.0, seed=1, constraint=guide), prefix, 1),
    ]
    logits = torch.zeros(2, tokenizer.vocab_size)
    logits[:, nine] = 30.0
    logits[:, tokenizer.encode("，")[-1]] = 20.0  # the model's second choice
    out = [sample_batch(logits.clone(), rows).tolist() for _ in range(4)]
    for row in range(2):
        assert tokenizer.decode([step[row] for step in out]) == "145，"


def test_after_the_copy_marker_it_writes_the_questions_expression_as_the_tokenizer_does(tokenizer) -> None:
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer), "Work out 41 x (7 + 13) - 2.")
    for token in tokenizer.encode(GIVEN["en"]):
        guide.accept(token)
    written = []
    while (allowed := _allowed(guide, tokenizer.vocab_size).nonzero().flatten().tolist()) and len(
        allowed
    ) == 1:
        written.append(allowed[0])
        guide.accept(allowed[0])
    assert written == tokenizer.encode(GIVEN["en"] + " 41*(7+13)-2")[len(tokenizer.encode(GIVEN["en"])) :]
    for token in tokenizer.encode(". Then 3+4"):  # once only: a later marker is the model's
        guide.accept(token)
    assert _allowed(guide, tokenizer.vocab_size).all()


def test_the_guide_leaves_the_end_of_a_sequence_to_ignore_eos_and_min_tokens(tokenizer) -> None:
    guide = ArithmeticGuide(GuideVocabulary.of(tokenizer))
    state = SequenceSamplingState.create(SamplingParams(ignore_eos=True, constraint=guide), [1])
    eos = tuple(tokenizer.stop_token_ids)
    assert set(eos) <= set(state.banned(eos))
