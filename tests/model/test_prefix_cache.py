"""The prefix cache: a request that starts like an earlier one (the same prompt, a chat's next turn) takes
those tokens' keys and values from a spare slot, computes only the rest, and writes the tokens it writes
without the cache; least recently used entries go first."""

from __future__ import annotations

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.kv_cache import KVCache
from model.prefix_cache import MIN_TOKENS, PrefixCache
from model.sampling import SamplingParams


@pytest.fixture(scope="module", params=["int8", "fp32"])
def served(request: pytest.FixtureRequest, tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    return prepare_for_serving(loaded.model, request.param)


def _prompt(seed: int, length: int, vocab: int) -> list[int]:
    return torch.randint(10, vocab, (length,), generator=torch.Generator().manual_seed(seed)).tolist()


def _run(engine: Engine, prompt: list[int], max_tokens: int = 20, **params) -> tuple[list[int], int]:
    handle = engine.submit(prompt, SamplingParams(max_tokens=max_tokens, ignore_eos=True, **params))
    tokens = [e.token_id for e in handle.iter_sync() if e.token_id is not None]
    return tokens, handle.cached_tokens


def _submit_together(engine: Engine, prompts, params: SamplingParams) -> list:
    """Queue the prompts while the engine thread cannot take any (it waits on the same lock), so that they
    are prefilled as one batch."""
    with engine._cond:
        return [engine.submit(p, params) for p in prompts]


def _engines(model, **config):
    plain = Engine(model, EngineConfig(max_batch=4, **config), eos_token_ids=[])
    cached = Engine(model, EngineConfig(max_batch=4, prefix_cache_entries=2, **config), eos_token_ids=[])
    plain.start(), cached.start()
    return plain, cached


def test_a_repeated_prompt_computes_only_its_last_token_and_writes_the_same_tokens(served) -> None:
    vocab = served.config.vocab_size
    plain, cached = _engines(served)
    try:
        prompt = _prompt(1, 60, vocab)
        first, hit = _run(cached, prompt)
        assert hit == 0
        for params in ({"temperature": 0.0}, {"temperature": 0.9, "top_p": 0.9, "seed": 7}):
            again, hit = _run(cached, prompt, **params)
            assert hit == len(prompt) - 1  # the last prompt token is computed: its logits start the reply
            assert again == _run(plain, prompt, **params)[0]
        assert _run(plain, prompt)[1] == 0  # off: nothing is ever cached
    finally:
        plain.shutdown(), cached.shutdown()


def test_a_chats_next_turn_reuses_the_previous_turn_and_its_reply(served) -> None:
    """Even where the cached prefix and the whole prompt together are longer than the context (only the
    rest is padded to the batch's width, not the prompt)."""
    vocab = served.config.vocab_size
    plain, cached = _engines(served, max_seq_len=128)
    try:
        turn = _prompt(2, 40, vocab)
        reply, _ = _run(cached, turn, max_tokens=30)
        next_turn = turn + reply + _prompt(3, 12, vocab)
        tokens, hit = _run(cached, next_turn, temperature=0.0)
        # The reply's last token was sampled but never fed, so its keys and values are not in the cache.
        assert hit == len(turn) + len(reply) - 1
        assert tokens == _run(plain, next_turn, temperature=0.0)[0]
    finally:
        plain.shutdown(), cached.shutdown()


def test_a_batch_mixing_a_hit_and_a_miss_writes_what_each_writes_without_the_cache(served) -> None:
    vocab = served.config.vocab_size
    plain, cached = _engines(served)
    try:
        known, new = _prompt(4, 50, vocab), _prompt(5, 33, vocab)
        _run(cached, known)
        extended = known + _prompt(6, 9, vocab)
        handles = _submit_together(cached, (extended, new), SamplingParams(temperature=0.0, max_tokens=16))
        got = [[e.token_id for e in h.iter_sync() if e.token_id is not None] for h in handles]
        assert handles[0].scheduled_at == handles[1].scheduled_at  # one prefill, from different positions
        assert [h.cached_tokens for h in handles] == [len(known), 0]
        assert got == [_run(plain, p, max_tokens=16, temperature=0.0)[0] for p in (extended, new)]
    finally:
        plain.shutdown(), cached.shutdown()


def test_a_hit_that_would_pad_past_the_context_computes_the_whole_prompt(served) -> None:
    """Rows of a prefill batch are padded to its longest rest: a row starting far in would write padding past
    the cache's end, so it gives up its hit (and still writes the right tokens)."""
    vocab = served.config.vocab_size
    plain, cached = _engines(served, max_seq_len=128)
    try:
        known = _prompt(7, 100, vocab)
        _run(cached, known, max_tokens=4)
        prompts = (known + [11], _prompt(8, 101, vocab))
        handles = _submit_together(cached, prompts, SamplingParams(temperature=0.0, max_tokens=8))
        got = [[e.token_id for e in h.iter_sync() if e.token_id is not None] for h in handles]
        assert handles[0].scheduled_at == handles[1].scheduled_at
        expected = [
            _run(plain, p, max_tokens=8, temperature=0.0)[0] for p in (known + [11], _prompt(8, 101, vocab))
        ]
        assert got == expected
        assert [h.cached_tokens for h in handles] == [0, 0]
    finally:
        plain.shutdown(), cached.shutdown()


def test_the_least_recently_used_entry_goes_first_and_short_prompts_are_not_kept(tiny_checkpoint) -> None:
    config = load_checkpoint(tiny_checkpoint).config
    cache = KVCache(config, num_slots=3, max_len=64)
    prefix = PrefixCache(cache, first_slot=1, entries=2)
    a, b, c = ([seed] * 20 for seed in (1, 2, 3))
    for tokens in (a, b):
        cache.k[:, 0, :, :20] = float(tokens[0])  # what slot 0 "computed" for these tokens
        prefix.store(tokens, 0)
    assert prefix.restore(a + [9], 0) == 20  # a is used: b is now the least recent
    cache.k[:, 0, :, :20] = 3.0
    prefix.store(c, 0)
    assert prefix.restore(b + [9], 0) == 0
    assert prefix.restore(a + [9], 0) == 20 and bool((cache.k[:, 0, :, :20] == 1.0).all())
    assert prefix.restore(c + [9], 0) == 20 and bool((cache.k[:, 0, :, :20] == 3.0).all())
    prefix.store([5] * (MIN_TOKENS - 1), 0)
    assert prefix.restore([5] * (MIN_TOKENS - 1) + [9], 0) == 0
    assert prefix.cached_tokens() == 40
