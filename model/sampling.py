"""Turning a batch of logits into next tokens: every row with its own parameters, all rows at once.

Processing order per row follows the common servers (vLLM, llama.cpp): logit bias → penalties → token
mask (structured output) → (greedy argmax if temperature is 0) → temperature → top-k → top-p → min-p →
draw. Each step is one tensor op over the rows that need it, with the per-row values as tensors; the only
per-row Python left is one uniform number per sampled row from that row's own random stream, so a seed
reproduces a row's tokens whatever else shares the batch. The draw is inverse-CDF sampling: the first
token whose cumulative probability exceeds the row's uniform, exact for the filtered distribution.

Logprobs are taken from the model's raw distribution (before any processing), as OpenAI reports them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from model.native import load_kernel
from model.token_tally import TokenTally, batch_entries

_GREEDY_BELOW = 1e-5


@runtime_checkable
class TokenConstraint(Protocol):
    """A per-sequence rule on which tokens may come next (structured output: a grammar, a JSON schema;
    reasoning: the calculator writing arithmetic results).

    The sampler asks for the allowed set before every draw (one [B, vocab] mask, built only when some row
    has a constraint) and reports the token drawn. A constraint holds the state of one sequence: each of a
    request's ``n`` sequences gets its own (``fork``).
    """

    # True: the constraint alone says when the sequence may end (a grammar); ignore_eos and min_tokens are
    # then not applied. False: it only shapes the text, and they apply as without it.
    decides_end: bool

    def fill_mask(self, mask_row: torch.Tensor) -> None:
        """Write True for every allowed token into ``mask_row`` (bool, vocabulary length, all False)."""

    def accept(self, token_id: int) -> None:
        """The token drawn for this sequence (always one ``fill_mask`` allowed)."""

    def is_done(self) -> bool:
        """Only a stop token may come next."""

    def fork(self) -> TokenConstraint:
        """A fresh copy in the same state, for another sequence of the same request."""

    def recipe(self) -> tuple[str, tuple[Any, ...]]:
        """How to build this constraint afresh (before any token) in the engine process: a kind that
        process knows and picklable arguments (see server/engine_process.py)."""


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

    @property
    def is_greedy(self) -> bool:
        # Temperatures this small are greedy in the limit; dividing by them would overflow to inf/NaN.
        return self.temperature <= _GREEDY_BELOW

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


class SequenceSamplingState:
    """One sequence's sampling state: its params, its random stream, and (only when its penalties need
    them) what it has seen, kept sparse: a sequence sees a few hundred of the vocabulary's tokens, so the
    penalties touch those entries of its row, never the whole row."""

    __slots__ = ("params", "rng", "num_generated", "width", "_counts", "_seen", "_bias")

    def __init__(self, params: SamplingParams, rng: random.Random, prompt_ids: Sequence[int]) -> None:
        self.params = params
        self.rng = rng
        self.num_generated = 0
        self.width = (
            0  # candidate width its top-k / top-p draw needed last (a hint; tokens never depend on it)
        )
        # Output token counts (presence/frequency penalties); prompt ∪ output tokens (repetition penalty);
        # the logit bias. Sparse: only where the params ask for them.
        penalised = params.presence_penalty or params.frequency_penalty
        self._counts = TokenTally() if penalised else None
        self._seen = TokenTally(prompt_ids) if params.repetition_penalty != 1.0 else None
        self._bias = None
        if params.logit_bias:
            self._bias = TokenTally()
            for token_id, bias in params.logit_bias.items():
                self._bias.add(int(token_id), bias)

    @classmethod
    def create(
        cls, params: SamplingParams, prompt_ids: Sequence[int], seed_offset: int = 0
    ) -> SequenceSamplingState:
        """``seed_offset`` gives the n sequences of one seeded request distinct, reproducible streams."""
        seed = params.seed + seed_offset if params.seed is not None else None
        if params.constraint is not None and seed_offset:
            params = replace(params, constraint=params.constraint.fork())  # its own grammar state
        return cls(params, random.Random(seed), prompt_ids)

    def record(self, token_id: int) -> None:
        if self.params.constraint is not None:
            self.params.constraint.accept(token_id)
        self.num_generated += 1
        if self._counts is not None:
            self._counts.add(token_id)
        if self._seen is not None:
            self._seen.add(token_id)  # its value is not read: the penalty is per row

    def banned(self, eos_token_ids: tuple[int, ...]) -> tuple[int, ...]:
        """Stop tokens cannot end a sequence before min_tokens (nor ever, with ignore_eos). A constraint
        decides for itself when its sequence may end (a finished JSON document has nothing else to write)."""
        p = self.params
        free_end = p.constraint is None or not p.constraint.decides_end
        if free_end and (p.ignore_eos or self.num_generated < p.min_tokens):
            return tuple(eos_token_ids) + tuple(p.stop_token_ids)
        return ()


@dataclass(slots=True)
class SampledToken:
    token_id: int
    logprob: float | None
    top_logprobs: list[tuple[int, float]] | None


def _process(
    logits: torch.Tensor,
    states: list[SequenceSamplingState],
    token_mask: torch.Tensor | None,
    eos_token_ids: tuple[int, ...],
) -> torch.Tensor:
    """Logit bias, banned stop tokens, penalties and the token mask: a new tensor if anything applies.
    Bias and penalties are sparse: one indexed op each over the whole batch."""
    bias = [i for i, s in enumerate(states) if s._bias]
    seen = [i for i, s in enumerate(states) if s._seen]
    counted = [i for i, s in enumerate(states) if s._counts]
    banned = [s.banned(eos_token_ids) for s in states]
    if not (bias or seen or counted or any(banned) or token_mask is not None):
        return logits
    logits = logits.clone()
    if bias:
        rows, cols, values = batch_entries(bias, [states[i]._bias for i in bias])
        logits.index_put_((rows, cols), values, accumulate=True)
    if seen:
        # HF-style: over prompt and output tokens, shrink positive logits, grow negative ones.
        params = [states[i].params for i in seen]
        rows, cols, penalty = batch_entries(
            seen, [states[i]._seen for i in seen], [0.0] * len(seen), [p.repetition_penalty for p in params]
        )
        values = logits[rows, cols]
        logits[rows, cols] = torch.where(values > 0, values / penalty, values * penalty)
    if counted:
        # OpenAI-style: over generated tokens only, count * frequency + presence.
        params = [states[i].params for i in counted]
        rows, cols, amount = batch_entries(
            counted,
            [states[i]._counts for i in counted],
            [p.frequency_penalty for p in params],
            [p.presence_penalty for p in params],
        )
        logits.index_put_((rows, cols), -amount, accumulate=True)
    # Banned stop tokens (ignore_eos, min_tokens): one masked write per distinct set, not one per row.
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, ids in enumerate(banned):
        if ids:
            groups.setdefault(ids, []).append(row)
    for ids, rows_ in groups.items():
        logits[torch.tensor(rows_).unsqueeze(1), torch.tensor(ids)] = float("-inf")
    if token_mask is not None:
        logits.masked_fill_(~token_mask, float("-inf"))
    return logits


def _filter_sorted(values: torch.Tensor, params: list[SamplingParams], lse: torch.Tensor) -> torch.Tensor:
    """Top-k, top-p and min-p on rows of logits sorted in descending order [R, C] (C may be the top few of
    the vocabulary), each row with its own values; ``lse`` [R] is each row's log-sum-exp over the whole
    vocabulary, so probabilities are the true ones. Returns the values with dropped tokens at -inf."""
    width = values.shape[-1]
    top_k = [p.top_k if 0 < p.top_k < width else 0 for p in params]
    drop = torch.zeros_like(values, dtype=torch.bool)
    if any(top_k):
        # Keep every token at least as likely as the k-th (ties with it stay in); renormalise over the k.
        k = torch.tensor([v or width for v in top_k]).unsqueeze(1)
        drop |= values < values.gather(1, k - 1)
        restricted = torch.tensor([bool(v) for v in top_k])
        lse = torch.where(restricted, torch.logsumexp(values.masked_fill(drop, float("-inf")), -1), lse)
    top_p = [p.top_p for p in params]
    if any(v < 1.0 for v in top_p):
        probs = torch.exp(values - lse.unsqueeze(1)).masked_fill_(drop, 0.0)
        # Drop a token when the tokens ranked above it already reach top_p (the best token always stays).
        # Rows without top-p get an unreachable threshold (the cumsum can round to just above 1).
        threshold = torch.tensor([v if v < 1.0 else float("inf") for v in top_p], dtype=probs.dtype)
        drop |= (probs.cumsum(-1) - probs) >= threshold.unsqueeze(1)
    min_p = [p.min_p for p in params]
    if any(min_p):
        # Relative to the best token: the normalisation cancels. Row 0 of sorted values is the best.
        threshold = torch.tensor(min_p, dtype=values.dtype).log().unsqueeze(1) + values[:, :1]
        drop |= values < threshold
    return values.masked_fill(drop, float("-inf"))


def _filter(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """:func:`_filter_sorted` over the whole vocabulary [R, vocab], in the vocabulary's order."""
    values, order = torch.sort(logits, dim=-1, descending=True)
    kept = _filter_sorted(values, params, torch.logsumexp(logits, -1))
    return torch.full_like(logits, float("-inf")).scatter(1, order, kept)


def sampling_probs(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """The distribution a sampled row draws from, in vocabulary order, given its processed logits
    [R, vocab]: temperature, then the filters, then softmax."""
    temperature = torch.tensor([p.temperature for p in params], dtype=logits.dtype).unsqueeze(1)
    return torch.softmax(_filter(logits / temperature, params), -1)


# Rows with top-k or top-p draw among their best tokens in descending order; they need a sorted view of
# the vocabulary, but sorting a whole [32, 6000] batch took 13 ms (one thread) where selecting and sorting
# the best 128 of each row took 0.6 ms, the best 1024 1.5 ms. A 0.95 nucleus of the shipped model spans
# 1 to ~800 tokens. The narrowest width that holds every row's kept set is used: a row draws the same token
# whichever (the narrower view is a prefix of the wider one).
_CANDIDATE_WIDTHS = (128, 1024)


def _sorted_view(
    logits: torch.Tensor, params: list[SamplingParams], lse: torch.Tensor, first_width: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Rows [R, vocab] with their log-sum-exp [R, 1] → (logits sorted descending [R, C], their token ids
    [R, C], C), C the narrowest candidate width from ``first_width`` up that holds every row's top-k /
    top-p set, else the whole vocabulary."""
    vocab = logits.shape[1]
    scores = -logits.numpy()
    for width in _CANDIDATE_WIDTHS:
        if width < first_width:
            continue
        if 2 * width > vocab:
            break
        ids = torch.from_numpy(np.ascontiguousarray(np.argpartition(scores, width - 1, axis=1)[:, :width]))
        values, order = torch.sort(logits.gather(1, ids), dim=-1, descending=True)
        mass = torch.exp(values - lse).sum(-1).tolist()
        # Complete: top-k fits in the candidates, or they already hold top_p of the probability.
        if all(0 < p.top_k <= width or m >= p.top_p for p, m in zip(params, mass, strict=True)):
            return values, ids.gather(1, order), width
    # numpy's argsort: ~3x faster than torch.sort on CPU here.
    ids = torch.from_numpy(np.argsort(scores, axis=1))
    return logits.gather(1, ids), ids, vocab


def _remember_widths(
    states: list[SequenceSamplingState], values: torch.Tensor, lse: torch.Tensor, width: int
) -> None:
    """Each row's own need: the narrowest width whose prefix of the sorted view holds its kept set (a
    prefix of the view is exactly that width's candidates), so one wide row does not widen the others."""
    need = [width] * len(states)
    for narrower in reversed([w for w in _CANDIDATE_WIDTHS if w < width]):
        mass = torch.exp(values[:, :narrower] - lse).sum(-1).tolist()
        for row, (state, m) in enumerate(zip(states, mass, strict=True)):
            if 0 < state.params.top_k <= narrower or m >= state.params.top_p:
                need[row] = narrower
    for state, w in zip(states, need, strict=True):
        state.width = w


def _inverse_cdf(probs: torch.Tensor, states: list[SequenceSamplingState]) -> torch.Tensor:
    """Index of the first entry whose cumulative probability exceeds each row's uniform; -1 where a row's
    distribution is degenerate (NaN, all zero)."""
    cdf = probs.cumsum(-1)
    total = cdf[:, -1]
    uniform = torch.tensor([s.rng.random() for s in states], dtype=cdf.dtype)
    # right=True: never a zero-probability entry.
    drawn = torch.searchsorted(cdf, (uniform * total).unsqueeze(1), right=True).squeeze(1)
    return torch.where(torch.isfinite(total) & (total > 0), drawn.clamp_(max=cdf.shape[1] - 1), -1)


def _draw_ranked(rows: torch.Tensor, states: list[SequenceSamplingState], first: int) -> torch.Tensor:
    """Rows with top-k or top-p: draw in descending-probability order over the narrowest sorted view that
    holds each row's kept set, starting at width ``first``."""
    params = [s.params for s in states]
    lse = torch.logsumexp(rows, -1, keepdim=True)
    values, ids, width = _sorted_view(rows, params, lse, first)
    _remember_widths(states, values, lse, width)
    probs = torch.softmax(_filter_sorted(values, params, lse.squeeze(1)), -1)
    drawn = _inverse_cdf(probs, states)
    return torch.where(drawn >= 0, ids.gather(1, drawn.clamp(min=0).unsqueeze(1)).squeeze(1), -1)


def _draw(logits: torch.Tensor, states: list[SequenceSamplingState]) -> torch.Tensor:
    """One token per sampled row of ``logits`` [R, vocab] (-1 where its distribution is degenerate).

    A row's draw depends on its own logits, params and uniform only: rows with top-k or top-p draw in
    descending-probability order, the others (temperature, min-p) in vocabulary order, without a sort."""
    params = [s.params for s in states]
    native = load_kernel()
    if native is not None:
        # The whole draw in one C++ call (model/kernels/sampling.cpp): scaling, log-sum-exp, then selection
        # (top-k / top-p rows, no sort) or the inverse CDF in vocabulary order. For one row of the shipped
        # model's 6,000 logits the separate torch ops cost ~10x the draw itself.
        return native.draw_rows(
            logits,
            [p.temperature for p in params],
            [p.top_k for p in params],
            [p.top_p for p in params],
            [p.min_p for p in params],
            [s.rng.random() for s in states],
        )
    vocab = logits.shape[1]
    temperature = torch.tensor([p.temperature for p in params], dtype=logits.dtype).unsqueeze(1)
    scaled = logits / temperature
    tokens = torch.full((len(states),), -1, dtype=torch.long)
    ranked = [i for i, p in enumerate(params) if 0 < p.top_k < vocab or p.top_p < 1.0]
    plain = [i for i, p in enumerate(params) if not (0 < p.top_k < vocab or p.top_p < 1.0)]
    if ranked:
        # Rows grouped by the width they needed last step (a row's nucleus changes slowly), so one uncertain
        # row sorting the whole vocabulary does not make the other 31 sort it too (shipped model, 32 rows at
        # temperature 0.8 / top_p 0.95: 11.7 ms as one group, 6.9 ms grouped).
        groups: dict[int, list[int]] = {}
        for i in ranked:
            groups.setdefault(states[i].width, []).append(i)
        for first, members in groups.items():
            tokens[members] = _draw_ranked(scaled[members], [states[i] for i in members], first)
    if plain:
        rows = scaled[plain] if len(plain) < len(states) else scaled
        min_p = torch.tensor([params[i].min_p for i in plain], dtype=rows.dtype).unsqueeze(1)
        if bool((min_p > 0).any()):
            # Relative to the best token (the normalisation cancels); log(0) = -inf keeps every token.
            rows = rows.masked_fill(rows < rows.amax(-1, keepdim=True) + min_p.log(), float("-inf"))
        tokens[plain] = _inverse_cdf(torch.softmax(rows, -1), [states[i] for i in plain])
    return tokens


def _argmax(logits: torch.Tensor) -> np.ndarray:
    """Greedy tokens, and the fallback of any row whose distribution is degenerate (NaN, all -inf): one
    bad row must not fail the batch. numpy's argmax: torch's CPU argmax was ~10x slower on [32, 6000]."""
    values = logits.numpy()
    best = values.argmax(axis=1)
    if np.isnan(values[np.arange(len(best)), best]).any():  # argmax picked a NaN: only then the full copy
        best = np.nan_to_num(values, nan=-np.inf).argmax(axis=1)
    return best


def sample_batch(
    logits: torch.Tensor,
    rows: Sequence[SequenceSamplingState | SamplingParams],
    token_mask: torch.Tensor | None = None,
    eos_token_ids: tuple[int, ...] = (),
) -> torch.Tensor:
    """Sample one token per row of ``logits`` [B, vocab]; returns the token ids [B] (int64).

    ``rows`` are the sequences' states (advanced by the draw: counts for penalties, random stream) or bare
    :class:`SamplingParams` (stateless: a fresh stream per call). ``token_mask[i, t]`` True means token t is
    allowed for row i; None builds it from the rows' constraints (:func:`constraint_mask`), if any. The
    constraints are told the token drawn (``accept``)."""
    states = [
        r if isinstance(r, SequenceSamplingState) else SequenceSamplingState.create(r, []) for r in rows
    ]
    if token_mask is None:
        token_mask = constraint_mask(states, logits.shape[1])
    logits = _process(logits.float(), states, token_mask, tuple(eos_token_ids))
    sampled = [row for row, s in enumerate(states) if not s.params.is_greedy]
    if len(sampled) == len(states):  # no greedy row: the argmax only where a draw failed
        tokens = _draw(logits, states)
        if bool((tokens < 0).any()):
            tokens = torch.where(tokens >= 0, tokens, torch.from_numpy(_argmax(logits)))
    else:
        tokens = torch.from_numpy(_argmax(logits))
        if sampled:
            index = torch.tensor(sampled)
            drawn = _draw(logits[index], [states[row] for row in sampled])
            tokens[index] = torch.where(drawn >= 0, drawn, tokens[index])
    for state, token in zip(states, tokens.tolist(), strict=True):
        state.record(token)
    return tokens


def sample_next(
    logits: torch.Tensor,
    states: list[SequenceSamplingState],
    eos_token_ids: tuple[int, ...] = (),
    token_mask: torch.Tensor | None = None,
) -> list[SampledToken]:
    """:func:`sample_batch` plus each row's logprob and top alternatives where its params ask for them."""
    want = [row for row, s in enumerate(states) if s.params.logprobs is not None]
    raw = torch.log_softmax(logits[want].float(), dim=-1) if want else None
    tokens = sample_batch(logits, states, token_mask, eos_token_ids).tolist()
    out = [SampledToken(token, None, None) for token in tokens]
    if raw is not None:
        chosen = raw[torch.arange(len(want)), torch.tensor([tokens[row] for row in want])].tolist()
        k = max(states[row].params.logprobs for row in want)
        top_values, top_ids = torch.topk(raw, k) if k else (raw[:, :0], raw[:, :0].long())
        top_values, top_ids = top_values.tolist(), top_ids.tolist()
        for i, row in enumerate(want):
            n = states[row].params.logprobs
            top = list(zip(top_ids[i][:n], top_values[i][:n], strict=True))
            out[row] = SampledToken(tokens[row], chosen[i], top)
    return out


def constraint_mask(states: Sequence[SequenceSamplingState], vocab_size: int) -> torch.Tensor | None:
    """The [B, vocab] allowed-token mask of a batch (True = allowed), or None when no row has a constraint.
    Unconstrained rows allow everything; a constrained row starts all False and its constraint marks the
    tokens it allows."""
    constrained = [row for row, s in enumerate(states) if s.params.constraint is not None]
    if not constrained:
        return None
    mask = torch.ones(len(states), vocab_size, dtype=torch.bool)
    mask[constrained] = False
    for row in constrained:
        states[row].params.constraint.fill_mask(mask[row])
    return mask
