"""Reasoning mode: which requests enter it, each sample's chain and answer, and the self-consistency vote.

A reasoning request samples ``k`` chains of thought for one prompt (rendered with the ``<think>`` generation
prompt) and majority-votes their final answers. The ``k`` samples are ONE engine request with ``n=k``: the
prompt is prefilled once, its KV rows are forked into ``k`` slots, and the samples decode together in the
running batch (see :mod:`model.engine`), so k=9 costs far less than nine requests.

This module is the pure part (no HTTP, no asyncio): the plan (sample count and options, with the 400s that
name the parameter), per-sample parsing of token events, and the vote with its accounting.
:mod:`server.serving_reasoning` drives it from a request.

With a ``</think>`` token (our checkpoints), parsing is done on token ids, never on fuzzy text: every
token up to and including the first ``</think>`` is reasoning, everything after it is the final answer text
(``<|end|>`` is a stop token and never arrives). A sample that never writes ``</think>`` (cut off by
max_tokens) is all reasoning and has no answer. A model without that token (SmolLM2, any chat model) still
votes: its text is split at a textual ``</think>`` if it wrote one, else it is all final text, and the
answer is extracted from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from model.detokenizer import IncrementalDetokenizer
from model.request_handle import TokenEvent
from model.sampling import SamplingParams
from model.tokenizer import THINK_END, Tokenizer
from reasoning.answers import extract_answer, normalize_answer, split_reasoning
from reasoning.calculator import check_answer
from reasoning.chain_check import check_chain
from reasoning.vote import vote
from server.constrained_output import constrained_param
from server.errors import APIError
from server.outputs import SequenceAccounting
from server.protocol import ChatCompletionRequest
from server.reasoning_schemas import (
    SelfConsistencyCalculator,
    SelfConsistencyChain,
    SelfConsistencyResult,
    SelfConsistencyVote,
)
from server.responses import UsageInfo
from server.settings import Settings

# Temperature of the k > 1 samples of a vote when the request sets none: diverse chains that still mostly
# follow the model's best path (the usual choice for self-consistency, Wang et al. 2022 use 0.5-0.7).
VOTE_TEMPERATURE = 0.7

# --------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ReasoningPlan:
    samples: int  # k: chains sampled and voted
    return_chains: bool = False  # list every sample in the response's self_consistency object
    calculator: bool = False  # check the voted answer against the safe calculator
    check_steps: bool = True  # rank first the answers of chains that pass reasoning.chain_check.check_chain
    arithmetic: str = "calculator"  # who writes each `expression=`'s result: "calculator" or "model"


# reasoning_effort values that ask for a plain answer, no reasoning chain.
NO_REASONING = ("none", "minimal")


def effort_samples(settings: Settings, effort: str) -> int:
    """k for an effort level; ``xhigh`` is the largest vote the server allows (clamped by the caller)."""
    return {
        "low": settings.reasoning_samples_low,
        "medium": settings.reasoning_samples_medium,
        "high": settings.reasoning_samples_high,
        "xhigh": settings.max_self_consistency_samples,
    }[effort]


def implicit_effort(req: ChatCompletionRequest, default_effort: str | None) -> str | None:
    """The effort a request that names none gets: the served checkpoint's default, unless the request asks
    for something a vote cannot give (several choices, stop strings, logprobs, a JSON or tool-call output),
    which then gets a plain answer rather than a 400 for a mode it never asked for."""
    if default_effort is None or default_effort in NO_REASONING:
        return None
    wants_plain = (
        (req.n or 1) > 1
        or req.stop_list()
        or req.logprobs
        or constrained_param(req) is not None
        or req.tool_choice not in (None, "none")  # the plain path validates it (400 without tools)
    )
    return None if wants_plain else default_effort


def resolve_plan(
    req: ChatCompletionRequest, settings: Settings, slots: int, default_effort: str | None = None
) -> ReasoningPlan | None:
    """The reasoning plan of a chat request, None when it does not ask for reasoning mode.

    A request without ``reasoning_effort`` or ``self_consistency`` gets ``default_effort`` (a reasoning
    checkpoint thinks by default, see ``implicit_effort``); ``reasoning_effort: "none"`` asks for the answer
    alone.

    ``self_consistency.samples`` above the limit (``MAX_SELF_CONSISTENCY_SAMPLES`` and the engine's
    slots: all k samples decode at once) is a 400 naming it. ``reasoning_effort`` asks for a level, not a
    number, so its configured count is clamped to the same limit instead (the response reports the k used).
    Options a vote cannot honour are refused by name rather than silently ignored.
    """
    options, effort = req.self_consistency, req.reasoning_effort
    if options is None and effort is None:
        effort = implicit_effort(req, default_effort)
    if effort in NO_REASONING:
        effort = None
    if options is None and effort is None:
        return None
    limit = min(settings.max_self_consistency_samples, slots)
    if options is not None:
        samples = options.samples
        if samples > limit:
            raise APIError(
                400,
                f"self_consistency.samples is too large: {samples}. This server allows at most {limit}.",
                code="invalid_value",
                param="self_consistency.samples",
            )
    else:
        samples = min(effort_samples(settings, effort or "medium"), limit)
    if (req.n or 1) > 1:
        raise APIError(
            400,
            "n > 1 is not supported in reasoning mode: the self-consistency vote returns one "
            "choice. Ask for more samples with self_consistency.samples.",
            code="unsupported_parameter",
            param="n",
        )
    if req.stop_list():
        raise APIError(
            400,
            "stop is not supported in reasoning mode (it would cut the reasoning chains).",
            code="unsupported_parameter",
            param="stop",
        )
    if req.logprobs:
        raise APIError(
            400,
            "logprobs is not supported in reasoning mode (k chains, one voted answer).",
            code="unsupported_parameter",
            param="logprobs",
        )
    return ReasoningPlan(
        samples=samples,
        return_chains=bool(options and options.return_chains),
        calculator=bool(options and options.calculator),
        check_steps=options.check_steps if options is not None else True,
        arithmetic=(options and options.arithmetic) or settings.reasoning_arithmetic,
    )


def vote_params(
    params: SamplingParams,
    req: ChatCompletionRequest,
    samples: int,
    default_temperature: float = VOTE_TEMPERATURE,
) -> SamplingParams:
    """Sampling for the vote: the request's temperature when it sets one (``top_p: 0`` also says greedy);
    else ``default_temperature`` for k > 1 (k identical greedy chains would make the vote pointless) and
    greedy for a single sample. The checkpoint's generation_config temperature is for chat, not for votes."""
    if req.temperature is not None or req.top_p == 0.0:
        return params
    return dataclasses.replace(params, temperature=default_temperature if samples > 1 else 0.0)


# --------------------------------------------------------------------------------------------- one sample


class _Trimmed:
    """Streams text with leading and trailing whitespace removed: the concatenated output equals
    ``full_text.strip()``. Trailing whitespace is held until more text shows it is inside the chain."""

    def __init__(self) -> None:
        self.started = False
        self.held = ""

    def push(self, text: str) -> str:
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
        buf = self.held + text
        kept = buf.rstrip()
        self.held = buf[len(kept) :]
        return kept


class SampleState(SequenceAccounting):
    """One of the k samples as its token events arrive: the chain, the final text, the counts.

    With ``</think>`` as a token of the model, the chain streams as it decodes and ends at that token. A
    model without such tokens (any chat model) writes plain text: the whole text is read at the end, split
    at a textual ``<think>…</think>`` when the model wrote one, and otherwise it is all final text (no
    chain) whose answer the vote extracts ("The answer is 8", "#### 8", ``\\boxed{8}``, the last number).

    Its counts, finish state and token timings are :class:`~server.outputs.SequenceAccounting`, as for a
    plain choice, so the request's accounting, token refund and access log work unchanged.
    """

    def __init__(self, index: int, tokenizer: Tokenizer) -> None:
        super().__init__(index)
        self.think_end_id = tokenizer.think_end_id
        self._reasoning_detok = IncrementalDetokenizer(tokenizer)
        self._final_detok = IncrementalDetokenizer(tokenizer)
        self._trim = _Trimmed()
        self.reasoning_content = ""  # the chain, stripped (grows as it decodes)
        self._final = ""
        self.in_final = False  # </think> seen
        self.reasoning_tokens = 0  # tokens before and including </think>
        self._text_ends: list[int] = []  # no </think> token: the text length after each token

    @property
    def content(self) -> str:
        """The final answer text (after ``</think>``), stripped."""
        return self._final.strip()

    @property
    def text(self) -> str:
        """Everything generated, as one text (for the prompt log)."""
        return self.reasoning_content + ("\n</think>\n" + self.content if self.in_final else "")

    @property
    def answer(self) -> str | None:
        """The answer in the final text ("答案：74。" -> "74"); None without a final text."""
        return extract_answer(self.content) if self.in_final else None

    def on_event(self, event: TokenEvent) -> str:
        """Feed one engine event; returns the new reasoning text it makes safe to stream (maybe "")."""
        if not self.count(event):
            return ""
        delta = ""
        if self.think_end_id is None:
            return self._on_unmarked_event(event)
        if event.token_id is not None:
            if self.in_final:
                self._final += self._final_detok.push(event.token_id)
            elif event.token_id == self.think_end_id:
                self.reasoning_tokens += 1
                self.in_final = True
                delta = self._trim.push(self._reasoning_detok.flush())
            else:
                self.reasoning_tokens += 1
                delta = self._trim.push(self._reasoning_detok.push(event.token_id))
        if event.finish_reason is not None:
            if self.in_final:
                self._final += self._final_detok.flush()
            else:
                delta += self._trim.push(self._reasoning_detok.flush())
            self.finish_reason = event.finish_reason
        self.reasoning_content += delta
        return delta

    def _on_unmarked_event(self, event: TokenEvent) -> str:
        """A model without a ``</think>`` token: collect the text; at the end, the chain it marked in text
        (returned, to stream) and the final text."""
        if event.token_id is not None:
            self._final += self._final_detok.push(event.token_id)
            self._text_ends.append(len(self._final))
        if event.finish_reason is None:
            return ""
        self._final += self._final_detok.flush()
        self.finish_reason = event.finish_reason
        text, self.in_final = self._final, True
        if THINK_END in text:
            closed = text.index(THINK_END) + len(THINK_END)
            self.reasoning_tokens = next((i + 1 for i, end in enumerate(self._text_ends) if end >= closed), 0)
            chain, self._final = split_reasoning(text)
            self.reasoning_content = chain or ""
        return self.reasoning_content


# --------------------------------------------------------------------------------------------- the vote


@dataclass
class VoteOutcome:
    winner: SampleState  # its chain is reasoning_content, its final text is content
    result: SelfConsistencyResult

    @property
    def agreement(self) -> float:
        return self.result.agreement


def decide(samples: list[SampleState], plan: ReasoningPlan, question: str) -> VoteOutcome:
    """Vote over the finished samples (``reasoning.vote.vote``: answers compared after normalisation, ties to
    the earliest sample). Samples without an answer count in k and appear as one ``answer: null`` entry, so
    the votes always sum to k and ``agreement`` is the winner's count / k.

    With ``check_steps`` every arithmetic step of each chain is recomputed and its numbers are traced back
    to the question (``reasoning.chain_check``); the answers of chains with neither a false step nor a number
    foreign to the question are ranked first: a slip or a misread number in one chain cannot outvote
    chains that checked out. With all chains sound, or none, it is the plain majority vote."""
    answers = [s.answer for s in samples]
    checks = (
        [check_chain(question, s.reasoning_content, a) for s, a in zip(samples, answers, strict=True)]
        if plan.check_steps
        else None
    )
    eligible = None if checks is None else [c.ok for c in checks]
    result = vote(answers, eligible)
    checked = result.checked or [None] * len(result.votes)
    votes = [
        SelfConsistencyVote(answer=text, count=count, checked=c)
        for (text, count), c in zip(result.votes, checked, strict=True)
    ]
    unanswered = len(samples) - sum(v.count for v in votes)
    if unanswered:  # what the answered votes did not count
        checked_unanswered = None if eligible is None else sum(eligible) - sum(result.checked)
        votes.append(SelfConsistencyVote(answer=None, count=unanswered, checked=checked_unanswered))
    winner = samples[result.winner_index]
    calculator = None
    if plan.calculator:
        check = check_answer(question, result.answer)
        if check is not None:
            calculator = SelfConsistencyCalculator(
                expression=check.expression, value=check.value, agrees=check.agrees
            )
    chains = None
    if plan.return_chains:
        chains = [
            SelfConsistencyChain(
                index=s.index,
                reasoning_content=s.reasoning_content,
                content=s.content,
                answer=a,
                normalized_answer=normalize_answer(a) or None,
                finish_reason=s.finish_reason or "stop",
                completion_tokens=s.num_tokens,
                reasoning_tokens=s.reasoning_tokens,
                false_steps=None if checks is None else checks[i].false_steps,
                ungrounded=None if checks is None else checks[i].ungrounded,
            )
            for i, (s, a) in enumerate(zip(samples, answers, strict=True))
        ]
    return VoteOutcome(
        winner,
        SelfConsistencyResult(
            samples=len(samples),
            answer=result.answer,
            agreement=result.agreement,
            votes=votes,
            winner_index=result.winner_index,
            chains=chains,
            calculator=calculator,
            arithmetic=plan.arithmetic,
        ),
    )


def reasoning_usage(prompt_tokens: int, cached_tokens: int, samples: list[SampleState]) -> UsageInfo:
    """All sampled tokens of all k samples; ``reasoning_tokens``: their chains, ``</think>`` included."""
    completion = sum(s.num_tokens for s in samples)
    return UsageInfo(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        total_tokens=prompt_tokens + completion,
        prompt_tokens_details={"cached_tokens": cached_tokens},
        completion_tokens_details={"reasoning_tokens": sum(s.reasoning_tokens for s in samples)},
    )


def question_of(messages: list[dict[str, str]]) -> str:
    """The text the calculator reads: the last user message."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
