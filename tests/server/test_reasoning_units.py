"""server.reasoning without a server: the plan and its 400s, per-sample parsing of token events, the vote
and the token accounting. Token events are built from a real (tiny) tokenizer's ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.request_handle import TokenEvent
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from model.tokenizer_hf import HFTokenizer
from server.errors import APIError
from server.protocol import ChatCompletionRequest
from server.reasoning import (
    ReasoningPlan,
    SampleState,
    decide,
    question_of,
    reasoning_usage,
    resolve_plan,
    vote_params,
)
from server.settings import Settings

QUESTION = "计算：12*(3+4)-10"


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_path: Path) -> Tokenizer:
    return Tokenizer(tiny_tokenizer_path)


def generated_ids(tok: Tokenizer, chain: str | None, final: str | None) -> list[int]:
    """The ids a model writes after the "<think>" prompt: "\\n{chain}\\n</think>\\n{final}"."""
    ids = tok.encode("\n" + chain + "\n") if chain is not None else []
    if final is not None:
        ids += [tok.think_end_id] + tok.encode("\n" + final)
    return ids


def run_sample(
    tok: Tokenizer, ids: list[int], index: int = 0, finish: str = "stop"
) -> tuple[SampleState, list[str]]:
    """Feed ids as the engine would (the stop token itself is not an event); returns the state and deltas."""
    sample = SampleState(index, tok)
    deltas = [sample.on_event(TokenEvent(index, t)) for t in ids]
    deltas.append(sample.on_event(TokenEvent(index, None, finish_reason=finish)))
    return sample, deltas


def test_a_sample_splits_on_the_think_end_token(tok: Tokenizer):
    chain, final = "先算括号：3+4=7。12*7=84。84-10=74。", "答案：74。"
    ids = generated_ids(tok, chain, final)
    sample, deltas = run_sample(tok, ids)
    assert sample.reasoning_content == chain and "".join(deltas) == chain  # streamed == returned, stripped
    assert sample.content == final and sample.answer == "74"
    assert sample.num_tokens == len(ids)
    assert sample.reasoning_tokens == ids.index(tok.think_end_id) + 1  # </think> counts as reasoning
    assert sample.finish_reason == "stop" and sample.engine_finished and sample.done


def test_a_chain_cut_off_before_its_end_marker_has_no_answer(tok: Tokenizer):
    ids = generated_ids(tok, "3+4=7。12*7=84", None)
    sample, deltas = run_sample(tok, ids, finish="length")
    assert sample.answer is None and sample.content == "" and not sample.in_final
    assert sample.reasoning_tokens == sample.num_tokens == len(ids)
    assert "".join(deltas) == sample.reasoning_content == "3+4=7。12*7=84"


def test_streamed_reasoning_never_splits_a_character(tok: Tokenizer):
    chain = "龘龘 a 鱻 b"  # not in the tiny vocabulary: byte-fallback pieces, several tokens per character
    ids = generated_ids(tok, chain, "74")
    assert len(ids) > len(chain) + 3
    sample, deltas = run_sample(tok, ids)
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == chain == sample.reasoning_content


def test_whitespace_inside_the_chain_is_kept_and_trailing_whitespace_dropped(tok: Tokenizer):
    ids = tok.encode("  \n step one\n\n step two \n ") + [tok.think_end_id] + tok.encode(" 5 ")
    sample, deltas = run_sample(tok, ids)
    assert sample.reasoning_content == "step one\n\n step two" == "".join(deltas)
    assert sample.content == "5"


def test_a_repeated_marker_is_not_text(tok: Tokenizer):
    ids = [tok.think_id] + generated_ids(tok, "7*2=14", "14") + [tok.think_end_id]
    sample, _ = run_sample(tok, ids)
    assert sample.reasoning_content == "7*2=14" and sample.content == "14"
    assert sample.reasoning_tokens == ids.index(tok.think_end_id) + 1


def samples_with(tok: Tokenizer, finals: list[str | None]) -> list[SampleState]:
    return [
        run_sample(tok, generated_ids(tok, f"chain {i}", final), index=i)[0] for i, final in enumerate(finals)
    ]


def test_vote_normalises_answers_and_counts_unanswered_samples(tok: Tokenizer):
    samples = samples_with(tok, ["答案：74。", "The answer is 74.0", "70", None, "74"])
    outcome = decide(samples, ReasoningPlan(samples=5), QUESTION)
    r = outcome.result
    assert r.samples == 5 and r.answer == "74" and r.agreement == pytest.approx(3 / 5)
    assert [(v.answer, v.count) for v in r.votes] == [("74", 3), ("70", 1), (None, 1)]
    assert sum(v.count for v in r.votes) == 5
    assert outcome.winner is samples[0] and r.winner_index == 0
    assert r.chains is None and r.calculator is None  # only when asked


def test_checked_vote_ranks_chains_without_a_false_step_first(tok: Tokenizer):
    chains = [
        "3+4=7，12*7=84，84-10=74",
        "3+4=7，12*7=84，84-10=75",
        "3+4=8，12*8=96，96-10=86",
        "3+4=7，12*7=85，85-10=75",
        "3+4=7，12*7=84，84-10=74",
    ]
    finals = ["74", "75", "86", "75", None]
    samples = [
        run_sample(tok, generated_ids(tok, chain, final), index=i)[0]
        for i, (chain, final) in enumerate(zip(chains, finals, strict=True))
    ]
    plain = decide(samples, ReasoningPlan(samples=5, check_steps=False), QUESTION).result
    assert plain.answer == "75" and all(v.checked is None for v in plain.votes)
    checked = decide(samples, ReasoningPlan(samples=5, return_chains=True), QUESTION).result
    assert checked.answer == "74" and checked.winner_index == 0
    assert [(v.answer, v.count, v.checked) for v in checked.votes] == [
        ("74", 1, 1),
        ("75", 2, 0),
        ("86", 1, 0),
        (None, 1, 1),
    ]
    assert [c.false_steps for c in checked.chains] == [[], ["84-10=75"], ["3+4=8"], ["12*7=85"], []]
    assert [c.ungrounded for c in checked.chains] == [[]] * 5


def test_checked_vote_ranks_chains_that_misread_the_question_last(tok: Tokenizer):
    # Every step holds in all three chains, but two computed with a number the question does not have.
    chains = ["3+4=7，12*7=84，84-10=74", "3+4=7，12*7=84，84-16=68", "3+4=7，12*7=84，84-16=68"]
    samples = [
        run_sample(tok, generated_ids(tok, chain, final), index=i)[0]
        for i, (chain, final) in enumerate(zip(chains, ["74", "68", "68"], strict=True))
    ]
    assert decide(samples, ReasoningPlan(samples=3, check_steps=False), QUESTION).result.answer == "68"
    checked = decide(samples, ReasoningPlan(samples=3, return_chains=True), QUESTION).result
    assert checked.answer == "74" and [(v.answer, v.count, v.checked) for v in checked.votes] == [
        ("74", 1, 1),
        ("68", 2, 0),
    ]
    assert [c.ungrounded for c in checked.chains] == [[]] + [["never uses 10 from the question"]] * 2


def test_ties_go_to_the_earliest_sample_and_its_chain_is_shown(tok: Tokenizer):
    samples = samples_with(tok, [None, "3/5", "0.6", "答案：2", "2", "60%"])
    outcome = decide(samples, ReasoningPlan(samples=6), QUESTION)
    assert outcome.result.answer == "3/5" and outcome.result.winner_index == 1  # 3/5 == 0.6 == 60%
    assert outcome.winner.reasoning_content == "chain 1"
    assert [(v.answer, v.count) for v in outcome.result.votes] == [("3/5", 3), ("2", 2), (None, 1)]


def test_no_answer_at_all_falls_back_to_the_primary_sample(tok: Tokenizer):
    samples = samples_with(tok, [None, "", None])
    outcome = decide(samples, ReasoningPlan(samples=3), QUESTION)
    assert outcome.result.answer is None and outcome.result.agreement == 0.0
    assert outcome.winner is samples[0]
    assert [(v.answer, v.count) for v in outcome.result.votes] == [(None, 3)]


def test_chains_and_calculator_when_asked(tok: Tokenizer):
    samples = samples_with(tok, ["答案：74。", "答案：84。", "74"])
    outcome = decide(samples, ReasoningPlan(samples=3, return_chains=True, calculator=True), QUESTION)
    chains = outcome.result.chains
    assert [c.index for c in chains] == [0, 1, 2]
    assert [c.normalized_answer for c in chains] == ["74", "84", "74"]
    assert [c.content for c in chains] == ["答案：74。", "答案：84。", "74"]
    assert all(
        c.completion_tokens == s.num_tokens and c.reasoning_tokens == s.reasoning_tokens
        for c, s in zip(chains, samples, strict=True)
    )
    calc = outcome.result.calculator
    assert (calc.expression, calc.value, calc.agrees) == ("12*(3+4)-10", "74", True)
    wrong = decide(samples_with(tok, ["84"]), ReasoningPlan(samples=1, calculator=True), QUESTION)
    assert wrong.result.calculator.agrees is False
    # No arithmetic in the question: no calculator entry.
    plain = decide(samples, ReasoningPlan(samples=3, calculator=True), "How many apples are left?")
    assert plain.result.calculator is None


def test_usage_counts_every_token_of_every_sample(tok: Tokenizer):
    samples = samples_with(tok, ["74", None, "答案：74。"])
    usage = reasoning_usage(17, 0, samples)
    assert usage.completion_tokens == sum(s.num_tokens for s in samples)
    assert usage.total_tokens == 17 + usage.completion_tokens
    reasoning = usage.completion_tokens_details["reasoning_tokens"]
    assert reasoning == sum(s.reasoning_tokens for s in samples) < usage.completion_tokens


def request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="tinyllm", messages=[{"role": "user", "content": QUESTION}], **fields)


SETTINGS = Settings(
    auth_disabled=True,
    reasoning_samples_low=1,
    reasoning_samples_medium=5,
    reasoning_samples_high=12,
    max_self_consistency_samples=10,
)


def test_plans_from_effort_and_from_the_extension():
    assert resolve_plan(request(), SETTINGS, 16) is None
    assert resolve_plan(request(reasoning_effort="low"), SETTINGS, 16) == ReasoningPlan(1)
    assert resolve_plan(request(reasoning_effort="medium"), SETTINGS, 16) == ReasoningPlan(5)
    assert resolve_plan(request(reasoning_effort="high"), SETTINGS, 16).samples == 10  # clamped to cap
    assert resolve_plan(request(reasoning_effort="high"), SETTINGS, 8).samples == 8  # and to the slots
    for plain in ("none", "minimal"):  # a plain answer
        assert resolve_plan(request(reasoning_effort=plain), SETTINGS, 16) is None
    small = Settings(auth_disabled=True, max_self_consistency_samples=7, reasoning_samples_high=3)
    assert resolve_plan(request(reasoning_effort="xhigh"), small, 16).samples == 7  # the largest k
    assert resolve_plan(request(reasoning_effort="xhigh"), SETTINGS, 6).samples == 6  # within slots
    plan = resolve_plan(
        request(
            reasoning_effort="low", self_consistency={"samples": 3, "return_chains": True, "calculator": True}
        ),
        SETTINGS,
        16,
    )
    assert plan == ReasoningPlan(3, return_chains=True, calculator=True)  # the extension's k wins


@pytest.mark.parametrize(
    ("fields", "slots", "param"),
    [
        ({"self_consistency": {"samples": 11}}, 16, "self_consistency.samples"),  # over the configured cap
        ({"self_consistency": {"samples": 9}}, 8, "self_consistency.samples"),  # over the engine's slots
        ({"reasoning_effort": "medium", "n": 2}, 16, "n"),
        ({"reasoning_effort": "medium", "stop": ["\n"]}, 16, "stop"),
        ({"reasoning_effort": "medium", "logprobs": True}, 16, "logprobs"),
    ],
)
def test_refusals_name_the_parameter(fields: dict, slots: int, param: str):
    with pytest.raises(APIError) as err:
        resolve_plan(request(**fields), SETTINGS, slots)
    assert err.value.status_code == 400 and err.value.param == param


@pytest.fixture(scope="module")
def chatml_tok(hf_checkpoint: Path) -> HFTokenizer:
    return HFTokenizer.from_directory(hf_checkpoint)


@pytest.mark.parametrize(
    ("text", "chain", "final", "answer"),
    [
        (
            "3+4=7, 12*7=84, 84-10=74.\nThe answer is 74.",
            "",
            "3+4=7, 12*7=84, 84-10=74.\nThe answer is 74.",
            "74",
        ),
        ("12*7 = 84\n84 - 10 = 74\n#### 74", "", "12*7 = 84\n84 - 10 = 74\n#### 74", "74"),
        ("<think>\n12*7=84 😀\n</think>\n答案：74", "12*7=84 😀", "答案：74", "74"),
        ("so it is \\boxed{74}", "", "so it is \\boxed{74}", "74"),
    ],
)
def test_a_model_without_think_tokens_still_gives_answers(
    chatml_tok: HFTokenizer, text, chain, final, answer
):
    """SmolLM2-like tokenizers have no <think> token: the text is split at a textual </think> if there is
    one, else it is all final text; the vote's answer is extracted from the final text."""
    assert chatml_tok.think_end_id is None
    ids = chatml_tok.encode(text)
    sample, deltas = run_sample(chatml_tok, ids)
    assert sample.reasoning_content == chain and "".join(deltas) == chain
    assert sample.content == final and sample.answer == answer
    closed = text.find("</think>")
    if closed >= 0:  # the chain's tokens, up to and including the textual </think>
        assert chatml_tok.decode(ids[: sample.reasoning_tokens]).endswith("</think>")
        assert not chatml_tok.decode(ids[: sample.reasoning_tokens - 1]).endswith("</think>")
    else:
        assert sample.reasoning_tokens == 0
    assert resolve_plan(request(self_consistency={"samples": 2}), SETTINGS, 16) == ReasoningPlan(2)


def test_vote_sampling_defaults():
    base = SamplingParams(temperature=1.0, max_tokens=50)
    assert vote_params(base, request(), 1, 0.7).temperature == 0.0  # one sample, no temperature: greedy
    assert vote_params(base, request(), 5, 0.7).temperature == 0.7  # a vote needs diverse chains
    assert vote_params(base, request(temperature=1.2), 5, 0.7).temperature == 1.0  # the request's own
    greedy = SamplingParams(temperature=0.0, max_tokens=50)
    assert vote_params(greedy, request(top_p=0.0), 5, 0.7).temperature == 0.0  # top_p 0 also says greedy


def test_the_calculator_reads_the_last_user_message():
    messages = [
        {"role": "system", "content": "1+1"},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "74"},
        {"role": "user", "content": "再算 2*3"},
    ]
    assert question_of(messages) == "再算 2*3"


def test_a_checkpoint_default_effort_applies_only_to_requests_a_vote_can_serve():
    assert resolve_plan(request(), SETTINGS, 16, "low") == ReasoningPlan(1)
    assert resolve_plan(request(), SETTINGS, 16, "medium") == ReasoningPlan(5)
    assert resolve_plan(request(reasoning_effort="none"), SETTINGS, 16, "low") is None
    assert resolve_plan(request(reasoning_effort="high"), SETTINGS, 16, "low").samples == 10
    assert resolve_plan(request(), SETTINGS, 16, "none") is None
    assert resolve_plan(request(), SETTINGS, 16, None) is None
    for plain in (
        {"n": 2},
        {"stop": ["x"]},
        {"logprobs": True},
        {"response_format": {"type": "json_object"}},
    ):
        assert resolve_plan(request(**plain), SETTINGS, 16, "low") is None, plain
