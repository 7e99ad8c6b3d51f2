"""Turning a batch of logits into next tokens, each row with its own parameters and random stream.

Processing order per row follows the common servers (vLLM, llama.cpp): logit bias → penalties →
(greedy argmax if temperature is 0) → temperature → top-k → top-p → min-p → draw. Logprobs are taken from
the model's raw distribution (before any processing), as OpenAI reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_GREEDY_BELOW = 1e-5


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
    def create(cls, params: SamplingParams, prompt_ids: list[int], seed_offset: int = 0) -> SequenceSamplingState:
        g = torch.Generator()
        if params.seed is not None:
            g.manual_seed(params.seed + seed_offset)
        else:
            g.seed()
        return cls(params=params, generator=g, prompt_ids=list(prompt_ids))

    def record(self, token_id: int) -> None:
        self.output_counts[token_id] = self.output_counts.get(token_id, 0) + 1
        self.num_generated += 1


@dataclass
class SampledToken:
    token_id: int
    logprob: float | None
    top_logprobs: list[tuple[int, float]] | None


def _apply_penalties(logits: torch.Tensor, state: SequenceSamplingState, banned: tuple[int, ...]) -> torch.Tensor:
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
    if banned:
        logits[list(banned)] = float("-inf")
    return logits


def _filter(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    if p.top_k and p.top_k < logits.numel():
        kth = torch.topk(logits, p.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        # Drop a token when the tokens ranked above it already reach top_p (the best token always stays).
        drop = (cum - torch.softmax(sorted_logits, -1)) >= p.top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    if p.min_p > 0.0:
        probs = torch.softmax(logits, -1)
        logits = logits.masked_fill(probs < p.min_p * probs.max(), float("-inf"))
    return logits


def _banned(state: SequenceSamplingState, eos_token_ids: tuple[int, ...]) -> tuple[int, ...]:
    """Stop tokens cannot end a sequence before min_tokens (nor ever, with ignore_eos)."""
    p = state.params
    if p.ignore_eos or state.num_generated < p.min_tokens:
        return tuple(eos_token_ids) + tuple(p.stop_token_ids)
    return ()


def _needs_processing(state: SequenceSamplingState) -> bool:
    p = state.params
    return bool(p.logit_bias or p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty)


def sample_next(logits: torch.Tensor, states: list[SequenceSamplingState],
                eos_token_ids: tuple[int, ...] = ()) -> list[SampledToken]:
    """Sample one token per row of ``logits`` [B, vocab] (float32), each with its own state."""
    logits = logits.float()
    raw_logprobs = None
    if any(s.params.logprobs is not None for s in states):
        raw_logprobs = torch.log_softmax(logits, dim=-1)
    # Plain greedy rows (the common case of evaluation and benchmarks) take one batched argmax.
    plain_greedy = [row for row, s in enumerate(states) if s.params.temperature <= _GREEDY_BELOW
                    and not _needs_processing(s) and s.params.logprobs is None]
    fast: dict[int, int] = {}
    if plain_greedy:
        rows = logits[plain_greedy]
        for i, row in enumerate(plain_greedy):
            banned = _banned(states[row], eos_token_ids)
            if banned:
                rows[i, list(banned)] = float("-inf")
        fast = dict(zip(plain_greedy, torch.argmax(rows, dim=-1).tolist(), strict=True))
    out: list[SampledToken] = []
    for row, state in enumerate(states):
        if row in fast:
            state.record(fast[row])
            out.append(SampledToken(fast[row], None, None))
            continue
        p = state.params
        banned = _banned(state, eos_token_ids)
        needs_processing = _needs_processing(state) or banned
        x = _apply_penalties(logits[row].clone(), state, banned) if needs_processing else logits[row]
        token = -1
        # Temperatures this small are greedy in the limit; dividing by them would overflow to inf/NaN.
        if p.temperature > _GREEDY_BELOW:
            probs = torch.softmax(_filter(x / p.temperature, p), -1)
            if bool(torch.isfinite(probs).all()) and float(probs.sum()) > 0:
                token = int(torch.multinomial(probs, 1, generator=state.generator))
        if token < 0:  # greedy, or a degenerate distribution: one bad row must not fail the batch
            token = int(torch.argmax(torch.nan_to_num(x, nan=float("-inf"))))
        logprob = top = None
        if raw_logprobs is not None and p.logprobs is not None:
            logprob = float(raw_logprobs[row, token])
            if p.logprobs:
                values, ids = torch.topk(raw_logprobs[row], p.logprobs)
                top = list(zip(ids.tolist(), values.tolist(), strict=True))
            else:
                top = []
        state.record(token)
        out.append(SampledToken(token, logprob, top))
    return out
