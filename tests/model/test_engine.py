"""The engine: cached continuous batching gives the plain forward pass's tokens; slots, queue, cancel."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig, EngineError, PromptTooLongError, QueueFullError
from model.request_handle import RequestHandle, TokenEvent, deliver
from model.sampling import SamplingParams


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


def reference_greedy(model, prompt: list[int], steps: int, stop_ids=()) -> list[int]:
    """The naive loop: recompute the whole sequence for every token."""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(torch.tensor([ids]))[0, -1].argmax())
            if token in stop_ids:
                break
            ids.append(token)
    return ids[len(prompt) :]


def collect(handle) -> dict[int, tuple[list[int], str]]:
    out: dict[int, tuple[list[int], str]] = {}
    for event in handle.iter_sync():
        tokens, _ = out.get(event.index, ([], ""))
        if event.token_id is not None:
            tokens.append(event.token_id)
        out[event.index] = (tokens, event.finish_reason or "")
    return out


def make_engine(loaded, **config) -> Engine:
    engine = Engine(loaded.model, EngineConfig(**config), eos_token_ids=[])
    engine.start()
    return engine


def test_batched_cached_decoding_matches_uncached_forward(loaded):
    """Sequences of different lengths join the running batch at different steps; chunked prefill too."""
    engine = make_engine(loaded, max_batch=4, prefill_chunk=7)
    g = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(10, loaded.config.vocab_size, (n,), generator=g).tolist() for n in (3, 20, 9, 1, 33, 12)
    ]
    lengths = [12, 5, 20, 9, 7, 15]
    handles = []
    for prompt, steps in zip(prompts, lengths, strict=True):
        handles.append(engine.submit(prompt, SamplingParams(temperature=0, max_tokens=steps)))
        time.sleep(0.002)  # let some decode steps run so later requests join a running batch
    try:
        for prompt, steps, handle in zip(prompts, lengths, handles, strict=True):
            tokens, reason = collect(handle)[0]
            assert tokens == reference_greedy(loaded.model, prompt, steps)
            assert reason == "length"
    finally:
        engine.shutdown()


def test_prefix_sharing_forks_n_sequences(loaded):
    engine = make_engine(loaded, max_batch=8)
    prompt = loaded.tokenizer.encode("你好 hello world")
    try:
        greedy = collect(engine.submit(prompt, SamplingParams(temperature=0, max_tokens=10), n=3))
        expected = reference_greedy(loaded.model, prompt, 10)
        assert [greedy[i][0] for i in range(3)] == [expected] * 3
        sampled = collect(engine.submit(prompt, SamplingParams(temperature=1.0, seed=5, max_tokens=10), n=4))
        assert len({tuple(sampled[i][0]) for i in range(4)}) > 1  # each fork has its own generator
        again = collect(engine.submit(prompt, SamplingParams(temperature=1.0, seed=5, max_tokens=10), n=4))
        assert again == sampled  # seed s+i for sequence i: reproducible
    finally:
        engine.shutdown()


def test_stop_tokens_end_a_sequence_without_emitting_them(loaded):
    prompt = loaded.tokenizer.encode("hello")
    free_run = reference_greedy(loaded.model, prompt, 8)
    stop = free_run[3]
    engine = make_engine(loaded)
    try:
        tokens, reason = collect(
            engine.submit(prompt, SamplingParams(temperature=0, max_tokens=8, stop_token_ids=(stop,)))
        )[0]
        assert reason == "stop" and tokens == free_run[: free_run.index(stop)]
    finally:
        engine.shutdown()


def test_cancel_frees_the_slot(loaded):
    engine = make_engine(loaded, max_batch=2)
    try:
        handle = engine.submit([5, 6, 7], SamplingParams(temperature=0, max_tokens=200, ignore_eos=True))
        events = handle.iter_sync()
        next(events)
        assert engine.stats().slots_used == 1
        handle.cancel()
        reasons = [e.finish_reason for e in events]
        assert reasons[-1] == "cancelled"
        deadline = time.monotonic() + 5
        while engine.stats().slots_used and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats().slots_used == 0
    finally:
        engine.shutdown()


def test_full_queue_is_reported_not_hung(loaded):
    engine = make_engine(loaded, max_batch=1, max_queue=2)
    try:
        params = SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)
        running = engine.submit([1, 2, 3], params)
        next(running.iter_sync())  # it holds the only slot now
        queued = [engine.submit([1, 2, 3], params) for _ in range(2)]
        assert engine.stats().waiting == 2
        with pytest.raises(QueueFullError):
            engine.submit([1, 2, 3], params)
        for handle in [running, *queued]:
            handle.cancel()
    finally:
        engine.shutdown()


def test_too_long_prompt_is_refused_before_any_work(loaded):
    engine = make_engine(loaded)
    try:
        context = loaded.config.max_position_embeddings
        with pytest.raises(PromptTooLongError) as err:
            engine.submit([5] * (context - 10), SamplingParams(max_tokens=20))
        assert err.value.context == context and "maximum context length" in str(err.value)
        assert engine.stats().waiting == 0
        with pytest.raises(ValueError):
            engine.submit([], SamplingParams())
    finally:
        engine.shutdown()


def test_async_stream_from_an_event_loop(loaded):
    engine = make_engine(loaded)

    async def run() -> list[list[int]]:
        handles = [
            engine.submit([3, 4, 5 + i], SamplingParams(temperature=0, max_tokens=6)) for i in range(5)
        ]

        async def consume(h):
            return [e.token_id async for e in h.stream() if e.token_id is not None]

        return await asyncio.gather(*(consume(h) for h in handles))

    try:
        results = asyncio.run(run())
        assert [len(r) for r in results] == [6] * 5
        assert results[0] == reference_greedy(loaded.model, [3, 4, 5], 6)
    finally:
        engine.shutdown()


def test_events_that_arrived_together_are_read_together():
    """A reader that fell behind gets what is waiting as one batch (a stream then writes it as one chunk);
    one that keeps up gets each event alone."""

    async def read() -> list[list[tuple[int, int | None]]]:
        handle = RequestHandle(2, lambda: None)
        deliver([(handle, TokenEvent(0, 5)), (handle, TokenEvent(1, 6)), (handle, TokenEvent(0, 7))])
        await asyncio.sleep(0)  # the hand-off runs: three events wait
        deliver([(handle, TokenEvent(0, None, finish_reason="stop"))])
        batches = []
        async for batch in handle.batches():
            batches.append([(e.index, e.token_id) for e in batch])
            if len(batches) == 2:
                deliver([(handle, TokenEvent(1, None, finish_reason="length"))])
        return batches

    assert asyncio.run(read()) == [[(0, 5), (1, 6), (0, 7)], [(0, None)], [(1, None)]]


def test_shutdown_drains_then_refuses(loaded):
    engine = make_engine(loaded)
    handle = engine.submit([1, 2], SamplingParams(temperature=0, max_tokens=5))
    results = {}
    reader = threading.Thread(target=lambda: results.update(collect(handle)))
    reader.start()
    engine.shutdown(timeout=10)
    reader.join(5)
    assert results[0][1] == "length" and len(results[0][0]) == 5
    with pytest.raises(EngineError):
        engine.submit([1], SamplingParams())


def test_step_listener_sees_batch_sizes(loaded):
    engine = make_engine(loaded, max_batch=4)
    sizes: list[int] = []
    engine.add_step_listener(lambda size, seconds: sizes.append(size))
    try:
        collect(engine.submit([7, 8], SamplingParams(temperature=0, max_tokens=4), n=3))
        assert sizes and max(sizes) == 3
    finally:
        engine.shutdown()


@pytest.mark.parametrize("kv_heads", [2, 4])  # grouped-query and plain multi-head attention
def test_cached_attention_matches_the_uncached_forward(kv_heads, tmp_path):
    """The cached path stacks the query heads that share a KV head into one query block with an additive mask:
    prefill and decode logits equal the plain causal forward, for rows at different positions (a long
    prefix too), and the engine's greedy tokens equal the uncached loop."""
    from model.kv_cache import KVCache
    from model.transformer import Transformer
    from tests.support import tiny_config

    torch.manual_seed(0)
    model = Transformer(tiny_config(512, num_key_value_heads=kv_heads)).eval()
    prompt = torch.randint(10, model.config.vocab_size, (3, 150), generator=torch.Generator().manual_seed(5))
    token = torch.randint(10, model.config.vocab_size, (3, 1), generator=torch.Generator().manual_seed(6))
    positions = torch.tensor([150, 137, 9])  # each row attends a different prefix
    cache = KVCache(model.config, 3, 256)
    with torch.inference_mode():
        prefill = model.forward_cached(prompt, torch.zeros(3, dtype=torch.long), cache, 0)
        decode = model.forward_cached(token, positions, cache, 0)
        full = model(prompt)
        for row, pos in enumerate(positions.tolist()):
            ids = torch.cat([prompt[row, :pos], token[row]]).unsqueeze(0)
            assert (model(ids)[0, -1] - decode[row]).abs().max().item() < 1e-4
    assert (prefill - full[:, -1]).abs().max().item() < 1e-4

    ids = prompt[0, :5].tolist()
    engine = Engine(model, EngineConfig(max_batch=2), eos_token_ids=[])
    engine.start()
    try:
        got = engine.generate(ids, SamplingParams(temperature=0, max_tokens=12))[0].token_ids
    finally:
        engine.shutdown()
    expected = list(ids)
    with torch.no_grad():
        for _ in range(12):
            expected.append(int(model(torch.tensor([expected]))[0, -1].argmax()))
    assert got == expected[5:]


def test_seeded_tokens_do_not_depend_on_the_rest_of_the_batch_with_default_settings(loaded):
    """The served copy with the default precision (int8): one request's tokens alone and among others."""
    from model.inference import prepare_for_serving

    served = prepare_for_serving(loaded.model)
    params = SamplingParams(temperature=0.8, top_p=0.95, seed=42, max_tokens=24, ignore_eos=True)
    prompt = loaded.tokenizer.encode("hello world")
    g = torch.Generator().manual_seed(1)
    others = [torch.randint(10, loaded.config.vocab_size, (n,), generator=g).tolist() for n in (5, 30, 17)]
    engine = Engine(served, EngineConfig(max_batch=8), eos_token_ids=[])
    engine.start()
    try:
        alone = collect(engine.submit(prompt, params))[0]
        crowd = [engine.submit(p, SamplingParams(temperature=1.0, max_tokens=40)) for p in others]
        crowded = collect(engine.submit(prompt, params))[0]
        for handle in crowd:
            collect(handle)
        assert crowded == alone
    finally:
        engine.shutdown()
