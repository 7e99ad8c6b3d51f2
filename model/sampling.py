"""Turning a batch of logits into next tokens, each row with its own parameters and random stream.

Processing order per row follows the common servers (vLLM, llama.cpp): logit bias → penalties →
(greedy argmax if temperature is 0) → temperature → top-k → top-p → min-p → draw. Logprobs are taken from
the model's raw distribution (before any processing), as OpenAI reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

import numpy as np
import torch

_GREEDY_BELOW = 1e-5


@runtime_checkable
class TokenConstraint(Protocol):
    """A per-sequence rule on which tokens may come next (structured output: a grammar, a JSON schema).

    The sampler asks for the allowed set before every draw and reports the token drawn. A constraint holds
    the state of one sequence: the engine gives each of a request's ``n`` sequences its own (``fork``).
    """

    def fill_mask(self, mask_row: torch.Tensor) -> None:
        """Write True for every allowed token into ``mask_row`` (bool, vocabulary length, all False)."""

    def accept(self, token_id: int) -> None:
        """The token drawn for this sequence (always one ``fill_mask`` allowed)."""

    def is_done(self) -> bool:
        """Only a stop token may come next."""

    def fork(self) -> TokenConstraint:
        """A fresh copy in the same state, for another sequence of the same request."""


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    max_tokens: int = 16
    min_tokens: int = 0
    ignore_eos: bool = False
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = None  # number of top alternatives to report; None = no logprobs
    constraint: TokenConstraint | None = None  # structured output: which tokens may come next

    def validate(self, vocab_size: int) -> None:
        """Raise ValueError naming the parameter when a value is out of range."""
        checks = [
            ("temperature", self.temperature >= 0 and self.temperature == self.temperature),
            ("top_p", 0 < self.top_p <= 1),
            ("top_k", self.top_k >= 0),
            ("min_p", 0 <= self.min_p <= 1),
            ("presence_penalty", -2 <= self.presence_penalty <= 2),
            ("frequency_penalty", -2 <= self.frequency_penalty <= 2),
            ("repetition_penalty", 0.01 <= self.repetition_penalty <= 100),
            ("max_tokens", self.max_tokens >= 1),
            ("min_tokens", 0 <= self.min_tokens <= self.max_tokens),
            ("logprobs", self.logprobs is None or 0 <= self.logprobs <= 20),
            ("logit_bias", all(0 <= int(k) < vocab_size for k in (self.logit_bias or {}))),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"invalid value for {name}")


@dataclass
class SequenceSamplingState:
    """Per-sequence state the sampler needs: its params, its generator and what it has produced."""

    params: SamplingParams
    generator: torch.Generator
    prompt_ids: list[int]
    output_counts: dict[int, int] = field(default_factory=dict)
    num_generated: int = 0

    @classmethod
    def create(
        cls, params: SamplingParams, prompt_ids: list[int], seed_offset: int = 0
    ) -> SequenceSamplingState:
        g = torch.Generator()
        if params.seed is not None:
            g.manual_seed(params.seed + seed_offset)
        else:
            g.seed()
        if params.constraint is not None and seed_offset:
            params = replace(params, constraint=params.constraint.fork())  # its own grammar state
        return cls(params=params, generator=g, prompt_ids=list(prompt_ids))

    def record(self, token_id: int) -> None:
        self.output_counts[token_id] = self.output_counts.get(token_id, 0) + 1
        self.num_generated += 1


@dataclass(slots=True)
class SampledToken:
    token_id: int
    logprob: float | None
    top_logprobs: list[tuple[int, float]] | None


def _apply_penalties(logits: torch.Tensor, state: SequenceSamplingState) -> None:
    """Logit bias and penalties, in place on one row."""
    p = state.params
    if p.logit_bias:
        ids = torch.tensor([int(k) for k in p.logit_bias], dtype=torch.long)
        logits[ids] += torch.tensor(list(p.logit_bias.values()), dtype=logits.dtype)
    if p.repetition_penalty != 1.0:
        # HF-style: over prompt and output tokens, shrink positive logits, grow negative ones.
        seen = torch.tensor(sorted(set(state.prompt_ids) | set(state.output_counts)), dtype=torch.long)
        if seen.numel():
            vals = logits[seen]
            logits[seen] = torch.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
    if (p.presence_penalty or p.frequency_penalty) and state.output_counts:
        # OpenAI-style: over generated tokens only.
        ids = torch.tensor(list(state.output_counts), dtype=torch.long)
        counts = torch.tensor(list(state.output_counts.values()), dtype=logits.dtype)
        logits[ids] -= counts * p.frequency_penalty + p.presence_penalty


def _filter(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """Top-k, top-p and min-p for a batch of rows [R, vocab], each row with its own values. One sort
    serves top-k and top-p for the whole batch (a per-row sort of the vocabulary was the sampler's
    largest cost)."""
    vocab = logits.shape[-1]
    top_k = [p.top_k if 0 < p.top_k < vocab else 0 for p in params]
    top_p = [p.top_p for p in params]
    if any(top_k) or any(v < 1.0 for v in top_p):
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        drop = torch.zeros_like(sorted_logits, dtype=torch.bool)
        if any(top_k):
            # Keep every token at least as likely as the k-th (ties with it stay in).
            k = torch.tensor([v or vocab for v in top_k]).unsqueeze(1)
            drop |= sorted_logits < sorted_logits.gather(1, k - 1)
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        if any(v < 1.0 for v in top_p):
            probs = torch.softmax(sorted_logits, -1)
            # Drop a token when the tokens ranked above it already reach top_p (the best token always stays).
            # Rows without top-p get an unreachable threshold (the cumsum can round to just above 1).
            threshold = torch.tensor([v if v < 1.0 else float("inf") for v in top_p], dtype=probs.dtype)
            drop |= (probs.cumsum(-1) - probs) >= threshold.unsqueeze(1)
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(1, order, drop), float("-inf"))
    min_p = [p.min_p for p in params]
    if any(min_p):
        probs = torch.softmax(logits, -1)
        threshold = torch.tensor(min_p, dtype=probs.dtype).unsqueeze(1) * probs.max(-1, keepdim=True).values
        logits = logits.masked_fill(probs < threshold, float("-inf"))
    return logits


def _banned(state: SequenceSamplingState, eos_token_ids: tuple[int, ...]) -> tuple[int, ...]:
    """Stop tokens cannot end a sequence before min_tokens (nor ever, with ignore_eos). A constraint
    decides for itself when its sequence may end (a finished JSON document has nothing else to write)."""
    p = state.params
    if p.constraint is None and (p.ignore_eos or state.num_generated < p.min_tokens):
        return tuple(eos_token_ids) + tuple(p.stop_token_ids)
    return ()


def _needs_processing(state: SequenceSamplingState) -> bool:
    p = state.params
    return bool(p.logit_bias or p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty)


def sample_next(
    logits: torch.Tensor, states: list[SequenceSamplingState], eos_token_ids: tuple[int, ...] = ()
) -> list[SampledToken]:
    """Sample one token per row of ``logits`` [B, vocab], each with its own state.

    Everything that can be is one batched op over the rows (argmax, temperature, the filters, softmax);
    only the per-row edits (penalties, bias, banned stop tokens) and the draw itself, which uses the
    row's own generator so a seed reproduces its tokens whatever else is in the batch, loop over rows.
    """
    logits = logits.float()
    raw_logprobs = None
    if any(s.params.logprobs is not None for s in states):
        raw_logprobs = torch.log_softmax(logits, dim=-1)
    banned = [_banned(s, eos_token_ids) for s in states]
    edited = [row for row, s in enumerate(states) if _needs_processing(s)]
    if edited or any(banned):
        logits = logits.clone()
        # Banned stop tokens (ignore_eos, min_tokens): one masked write per distinct set, not one per row.
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, ids in enumerate(banned):
            if ids:
                groups.setdefault(ids, []).append(row)
        for ids, rows in groups.items():
            logits[torch.tensor(rows).unsqueeze(1), torch.tensor(ids)] = float("-inf")
        for row in edited:
            _apply_penalties(logits[row], states[row])
    constrained = [row for row, s in enumerate(states) if s.params.constraint is not None]
    if constrained:
        logits = _apply_constraints(logits if edited or any(banned) else logits.clone(), states, constrained)
    # Greedy rows, and the fallback of any sampled row whose distribution is degenerate (NaN, all -inf):
    # one bad row must not fail the batch. numpy's argmax: torch's CPU argmax is not vectorised and took
    # ~10x longer on [32, 6000] (174 vs 15 us), a visible share of a decode step.
    values = logits.numpy()
    best = values.argmax(axis=1)
    if np.isnan(values[np.arange(len(best)), best]).any():  # argmax picked a NaN: only then the full copy
        best = np.nan_to_num(values, nan=-np.inf).argmax(axis=1)
    tokens = best.tolist()
    # Temperatures this small are greedy in the limit; dividing by them would overflow to inf/NaN.
    sampled = [row for row, s in enumerate(states) if s.params.temperature > _GREEDY_BELOW]
    if sampled:
        temperature = torch.tensor([states[row].params.temperature for row in sampled]).unsqueeze(1)
        probs = torch.softmax(
            _filter(logits[sampled] / temperature, [states[row].params for row in sampled]), -1
        )
        usable = (torch.isfinite(probs).all(-1) & (probs.sum(-1) > 0)).tolist()
        for i, row in enumerate(sampled):
            if usable[i]:
                tokens[row] = int(torch.multinomial(probs[i], 1, generator=states[row].generator))
    out: list[SampledToken] = []
    for row, (state, token) in enumerate(zip(states, tokens, strict=True)):
        logprob = top = None
        if raw_logprobs is not None and state.params.logprobs is not None:
            logprob = float(raw_logprobs[row, token])
            top = []
            if state.params.logprobs:
                top_values, top_ids = torch.topk(raw_logprobs[row], state.params.logprobs)
                top = list(zip(top_ids.tolist(), top_values.tolist(), strict=True))
        state.record(token)
        if state.params.constraint is not None:
            state.params.constraint.accept(token)
        out.append(SampledToken(token, logprob, top))
    return out


def _apply_constraints(
    logits: torch.Tensor, states: list[SequenceSamplingState], rows: list[int]
) -> torch.Tensor:
    """Disallowed tokens of constrained rows to -inf, in place: one bool mask for those rows only. Few,
    in-place torch ops: on a busy CPU each op's thread hand-off costs more than its arithmetic."""
    allowed = torch.zeros(len(rows), logits.shape[-1], dtype=torch.bool)
    for i, row in enumerate(rows):
        states[row].params.constraint.fill_mask(allowed[i])  # type: ignore[union-attr]
    banned = allowed.logical_not_()
    if len(rows) == logits.shape[0]:
        logits.masked_fill_(banned, float("-inf"))
    else:
        for i, row in enumerate(rows):
            logits[row].masked_fill_(banned[i], float("-inf"))
    return logits
