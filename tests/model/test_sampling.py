"""Sampling: each parameter changes the draw the way it is documented to."""

from __future__ import annotations

import pytest
import torch

from model.sampling import SamplingParams, SequenceSamplingState, constraint_mask, sample_batch, sample_next

V = 50


@pytest.fixture(autouse=True, params=["native", "python"])
def sampler_path(request, monkeypatch):
    """Every test runs on both draws of top-k/top-p rows: the C++ selection (model/kernels/sampling.cpp)
    and the PyTorch sort (the path where the kernels are not built)."""
    import model.sampling

    if request.param == "python":
        monkeypatch.setattr(model.sampling, "load_kernel", lambda: None)
    elif model.sampling.load_kernel() is None:
        pytest.skip("the C++ kernels are not built here")
    return request.param


def draw(logits: torch.Tensor, params: SamplingParams, steps: int = 1, prompt=(1, 2), eos=()) -> list[int]:
    state = SequenceSamplingState.create(params, list(prompt))
    return [sample_next(logits.unsqueeze(0), [state], eos)[0].token_id for _ in range(steps)]


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return torch.randn(V) * 3


def test_greedy_is_argmax(logits):
    assert draw(logits, SamplingParams(temperature=0), 5) == [int(logits.argmax())] * 5


def test_same_seed_same_tokens_different_seed_differs(logits):
    a = draw(logits, SamplingParams(temperature=1.5, seed=7), 30)
    b = draw(logits, SamplingParams(temperature=1.5, seed=7), 30)
    c = draw(logits, SamplingParams(temperature=1.5, seed=8), 30)
    assert a == b and a != c


def test_top_k_one_and_tiny_top_p_are_greedy(logits):
    best = int(logits.argmax())
    assert set(draw(logits, SamplingParams(top_k=1, seed=1), 20)) == {best}
    assert set(draw(logits, SamplingParams(top_p=1e-6, seed=1), 20)) == {best}


def test_top_k_restricts_to_k_best(logits):
    allowed = set(torch.topk(logits, 3).indices.tolist())
    drawn = set(draw(logits, SamplingParams(top_k=3, temperature=5.0, seed=3), 200))
    assert drawn <= allowed and len(drawn) > 1


def test_min_p_drops_unlikely_tokens(logits):
    probs = torch.softmax(logits, -1)
    allowed = set(torch.nonzero(probs >= 0.2 * probs.max()).flatten().tolist())
    assert set(draw(logits, SamplingParams(min_p=0.2, seed=3), 200)) <= allowed


def test_logit_bias_forces_and_bans(logits):
    worst = int(logits.argmin())
    assert draw(logits, SamplingParams(temperature=0, logit_bias={worst: 100.0}), 3) == [worst] * 3
    best = int(logits.argmax())
    assert best not in draw(logits, SamplingParams(temperature=0, logit_bias={best: -100.0}), 1)


def test_presence_and_frequency_penalties_discourage_repeats(logits):
    plain = draw(logits, SamplingParams(temperature=0), 4)
    penalised = draw(logits, SamplingParams(temperature=0, frequency_penalty=2.0, presence_penalty=2.0), 4)
    assert len(set(plain)) == 1 and len(set(penalised)) > 1


def test_repetition_penalty_covers_prompt_tokens(logits):
    best = int(logits.argmax())
    assert draw(logits, SamplingParams(temperature=0, repetition_penalty=50.0), 1, prompt=[best]) != [best]


def test_min_tokens_and_ignore_eos_ban_stop_tokens(logits):
    eos = int(logits.argmax())
    state = SequenceSamplingState.create(SamplingParams(temperature=0, min_tokens=2), [1])
    tokens = [sample_next(logits.unsqueeze(0), [state], (eos,))[0].token_id for _ in range(3)]
    assert tokens[0] != eos and tokens[1] != eos and tokens[2] == eos
    assert eos not in draw(logits, SamplingParams(temperature=0, ignore_eos=True), 5, eos=(eos,))


def test_logprobs_are_raw_log_softmax_with_top_alternatives(logits):
    state = SequenceSamplingState.create(SamplingParams(temperature=0, logprobs=3), [1])
    token = sample_next(logits.unsqueeze(0), [state])[0]
    reference = torch.log_softmax(logits, -1)
    assert token.logprob == pytest.approx(float(reference[token.token_id]), abs=1e-5)
    assert [i for i, _ in token.top_logprobs] == torch.topk(reference, 3).indices.tolist()


def test_rows_use_their_own_parameters(logits):
    rows = torch.stack([logits, -logits])
    states = [
        SequenceSamplingState.create(SamplingParams(temperature=0), [1]),
        SequenceSamplingState.create(SamplingParams(temperature=0), [1]),
    ]
    out = sample_next(rows, states)
    assert [t.token_id for t in out] == [int(logits.argmax()), int((-logits).argmax())]


@pytest.mark.parametrize(
    "field,value",
    [
        ("temperature", -1.0),
        ("temperature", float("nan")),
        ("top_p", 1.5),
        ("top_p", 0.0),
        ("max_tokens", 0),
        ("logit_bias", {V + 5: 1.0}),
        ("presence_penalty", 3.0),
        ("min_p", 2.0),
    ],
)
def test_validation_names_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value}).validate(V)


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=1e-300),
        SamplingParams(top_p=5e-324, seed=1),
        SamplingParams(repetition_penalty=100.0, temperature=0.01, seed=2),
    ],
)
def test_extreme_but_valid_parameters_never_produce_nan(logits, params):
    params.validate(V)
    token = draw(logits, params, 1, prompt=list(range(V)))[0]
    assert 0 <= token < V


def test_a_nan_row_does_not_fail_the_other_rows(logits):
    rows = torch.stack([logits, torch.full((V,), float("nan"))])
    states = [SequenceSamplingState.create(SamplingParams(seed=1), [1]) for _ in range(2)]
    out = sample_next(rows, states)
    assert out[0].token_id >= 0 and 0 <= out[1].token_id < V


def test_a_row_samples_the_same_alone_and_in_a_mixed_batch(logits):
    """The filters run batched: a row's tokens must not depend on the other rows' parameters."""
    mixed = [
        SamplingParams(temperature=0.8, top_p=0.9, seed=5),
        SamplingParams(temperature=1.0, seed=6),
        SamplingParams(temperature=0.7, top_k=5, seed=7),
        SamplingParams(temperature=0),
        SamplingParams(temperature=1.2, min_p=0.1, seed=8),
        SamplingParams(temperature=0.9, seed=9, presence_penalty=1.5),
    ]
    alone = [draw(logits, p, 30) for p in mixed]
    states = [SequenceSamplingState.create(p, [1]) for p in mixed]
    together = [[] for _ in mixed]
    for _ in range(30):
        for row, token in enumerate(sample_next(logits.expand(len(mixed), V).clone(), states)):
            together[row].append(token.token_id)
    assert together == alone


def test_top_p_one_keeps_the_whole_tail_next_to_a_top_p_row():
    """A row without top-p keeps every token even where the cumulative probability rounds to 1 before
    its tail (batched with a top-p row, whose threshold must not leak into it)."""
    from model.sampling import _filter

    row = torch.cat([torch.zeros(3), torch.full((V - 3,), -30.0)])  # float32 cumsum reaches 1.0 at token 3
    out = _filter(torch.stack([row, row]), [SamplingParams(top_p=0.5), SamplingParams()])
    assert torch.isinf(out[0]).sum() == V - 2 and torch.isfinite(out[1]).all()


def test_a_greedy_row_with_nan_logits_still_gets_a_token(logits):
    broken = logits.clone()
    broken[3] = float("nan")
    states = [SequenceSamplingState.create(SamplingParams(temperature=0), [1]) for _ in range(2)]
    out = sample_next(torch.stack([logits, broken]), states)
    expected = int(torch.nan_to_num(broken, nan=float("-inf")).argmax())
    assert [t.token_id for t in out] == [int(logits.argmax()), expected] and expected != 3


def _reference_probs(row: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The per-row sampler's distribution, written one row at a time from the documented rules."""
    x = row / p.temperature
    if 0 < p.top_k < x.numel():
        x = x.masked_fill(x < torch.sort(x, descending=True).values[p.top_k - 1], float("-inf"))
    if p.top_p < 1.0:
        values, order = torch.sort(x, descending=True)
        probs = torch.softmax(values, -1)
        drop = (probs.cumsum(-1) - probs) >= p.top_p
        x = x.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    if p.min_p:
        probs = torch.softmax(x, -1)
        x = x.masked_fill(probs < p.min_p * probs.max(), float("-inf"))
    return torch.softmax(x, -1)


MIXED = [
    SamplingParams(temperature=0.8, top_p=0.95, seed=1),
    SamplingParams(temperature=1.3, top_k=7, seed=2),
    SamplingParams(temperature=0.6, min_p=0.05, seed=3),
    SamplingParams(temperature=1.0, top_k=20, top_p=0.8, min_p=0.01, seed=4),
    SamplingParams(temperature=1.0, seed=5),
]


def test_batched_distribution_equals_the_per_row_reference():
    from model.sampling import sampling_probs

    torch.manual_seed(3)
    rows = torch.randn(len(MIXED), V) * 2
    batched = sampling_probs(rows, MIXED)
    for i, p in enumerate(MIXED):
        torch.testing.assert_close(batched[i], _reference_probs(rows[i], p), rtol=1e-5, atol=1e-7)


def test_draws_follow_the_filtered_distribution(logits):
    """4000 draws of one seeded row: every drawn token is allowed, frequencies match the probabilities."""
    params = SamplingParams(temperature=0.9, top_p=0.9, top_k=12, seed=11)
    expected = _reference_probs(logits, params)
    state = SequenceSamplingState.create(params, [1])
    counts = torch.zeros(V)
    for _ in range(4000):
        counts[sample_batch(logits.unsqueeze(0), [state])[0]] += 1
    assert (counts[expected == 0] == 0).all()
    total_variation = 0.5 * (counts / counts.sum() - expected).abs().sum()
    assert total_variation < 0.04, float(total_variation)


def test_seeded_rows_do_not_depend_on_batch_composition_or_order(logits):
    """Bias, penalties and filters batched: a row's tokens are those it draws alone, wherever it sits."""
    params = MIXED + [
        SamplingParams(temperature=0.9, seed=6, repetition_penalty=1.3, logit_bias={4: 3.0}),
        SamplingParams(temperature=0.9, seed=7, frequency_penalty=0.7, presence_penalty=0.3),
        SamplingParams(temperature=0),
    ]
    alone = [draw(logits, p, 25) for p in params]
    order = [7, 2, 5, 0, 6, 1, 4, 3]
    states = [SequenceSamplingState.create(params[i], [1, 2]) for i in order]
    together = [[] for _ in order]
    for _ in range(25):
        for slot, token in enumerate(sample_batch(logits.expand(len(order), V).clone(), states).tolist()):
            together[slot].append(token)
    assert together == [alone[i] for i in order]


def test_greedy_rows_are_the_argmax_of_each_row():
    torch.manual_seed(5)
    rows = torch.randn(16, V)
    tokens = sample_batch(rows, [SamplingParams(temperature=0)] * 16)
    assert tokens.tolist() == rows.argmax(-1).tolist()


def test_token_mask_restricts_greedy_and_sampled_rows(logits):
    allowed = torch.zeros(2, V, dtype=torch.bool)
    allowed[0, [3, 9]] = True
    allowed[1, 10:20] = True
    rows = logits.expand(2, V).clone()
    states = [
        SequenceSamplingState.create(SamplingParams(temperature=0), [1]),
        SequenceSamplingState.create(SamplingParams(temperature=2.0, seed=1), [1]),
    ]
    drawn = [sample_batch(rows, states, allowed).tolist() for _ in range(100)]
    assert {d[0] for d in drawn} == {3 if logits[3] > logits[9] else 9}
    assert all(10 <= d[1] < 20 for d in drawn) and len({d[1] for d in drawn}) > 2


def test_constraint_mask_is_none_without_constraints_and_filled_per_row(logits):
    class OnlyEven:
        decides_end = True

        def __init__(self):
            self.accepted = []

        def fill_mask(self, mask_row):
            mask_row[::2] = True

        def accept(self, token_id):
            self.accepted.append(token_id)

        def is_done(self):
            return False

        def fork(self):
            return OnlyEven()

    constraint = OnlyEven()
    states = [
        SequenceSamplingState.create(SamplingParams(temperature=0), [1]),
        SequenceSamplingState.create(SamplingParams(temperature=0, constraint=constraint), [1]),
    ]
    assert constraint_mask(states[:1], V) is None
    mask = constraint_mask(states, V)
    assert mask[0].all() and mask[1, ::2].all() and not mask[1, 1::2].any()
    tokens = sample_batch(logits.expand(2, V).clone(), states).tolist()
    assert tokens[0] == int(logits.argmax()) and tokens[1] == int(logits[::2].argmax()) * 2
    assert constraint.accepted == [tokens[1]]


def test_large_vocabulary_draws_match_the_distribution_and_ignore_the_batch():
    """A 3000-token vocabulary: top-k/top-p rows draw among their best candidates unless some row's nucleus
    is wider (then the whole vocabulary is sorted). Either way a row's tokens are the same, and follow its
    filtered distribution."""
    from model.sampling import sampling_probs

    vocab = 3000
    torch.manual_seed(7)
    peaked = torch.randn(vocab) * 4
    flat = torch.randn(vocab) * 0.1  # a nucleus of thousands of tokens: forces the full sort
    params = [
        SamplingParams(temperature=0.8, top_p=0.95, seed=1),
        SamplingParams(temperature=1.0, top_k=40, seed=2),
        SamplingParams(temperature=0.7, min_p=0.05, seed=3),
        SamplingParams(temperature=1.0, top_p=0.9, seed=4),
    ]
    rows = [peaked, peaked, peaked, flat]

    def run(indices: list[int], steps: int = 20) -> list[list[int]]:
        states = [SequenceSamplingState.create(params[i], [1]) for i in indices]
        batch = torch.stack([rows[i] for i in indices])
        return [
            list(t) for t in zip(*(sample_batch(batch, states).tolist() for _ in range(steps)), strict=True)
        ]

    alone = [run([i])[0] for i in range(4)]
    assert run([0, 1, 2]) == alone[:3]  # candidates only
    assert run([3, 0, 1, 2]) == [alone[3]] + alone[:3]  # the flat row makes the batch sort fully
    state = SequenceSamplingState.create(params[0], [1])
    expected = sampling_probs(peaked.unsqueeze(0), [params[0]])[0]
    counts = torch.bincount(
        torch.cat([sample_batch(peaked.expand(50, vocab), [state] * 50) for _ in range(60)]), minlength=vocab
    ).float()
    assert (counts[expected == 0] == 0).all()
    assert 0.5 * (counts / counts.sum() - expected).abs().sum() < 0.06


def test_penalties_and_bias_match_their_dense_definitions_step_by_step():
    # Three rows with different penalties, greedy, over 30 steps of fresh logits on a small vocabulary, so
    # tokens repeat: each step's token is the argmax of the dense reference (OpenAI's count * frequency +
    # presence over output tokens, HF's repetition penalty over prompt and output, the bias added first).
    vocab, prompt = 12, [3, 5, 5]
    params = [
        SamplingParams(temperature=0, frequency_penalty=0.7, presence_penalty=0.4),
        SamplingParams(temperature=0, repetition_penalty=1.8),
        SamplingParams(temperature=0, logit_bias={2: 1.5, 7: -0.5}, frequency_penalty=-0.3),
    ]
    states = [SequenceSamplingState.create(p, prompt) for p in params]
    counts = torch.zeros(3, vocab)
    generator = torch.Generator().manual_seed(7)
    for _ in range(30):
        logits = torch.randn(3, vocab, generator=generator)
        expected = logits.clone()
        for row, p in enumerate(params):
            for token_id, bias in (p.logit_bias or {}).items():
                expected[row, token_id] += bias
            seen = (counts[row] > 0) | torch.isin(torch.arange(vocab), torch.tensor(prompt))
            shrunk = torch.where(
                expected[row] > 0, expected[row] / p.repetition_penalty, expected[row] * p.repetition_penalty
            )
            expected[row] = torch.where(seen & (p.repetition_penalty != 1.0), shrunk, expected[row])
            expected[row] -= counts[row] * p.frequency_penalty + (counts[row] > 0) * p.presence_penalty
        tokens = [t.token_id for t in sample_next(logits, states)]
        assert tokens == expected.argmax(-1).tolist()
        for row, token_id in enumerate(tokens):
            counts[row, token_id] += 1
    assert counts.max() > 1  # tokens did repeat, so the counts mattered
