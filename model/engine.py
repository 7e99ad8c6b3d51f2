"""The generation engine: a KV cache of fixed slots and continuous batching, in its own thread.

Each loop iteration (all torch work happens in the engine thread):

1. drop cancelled requests and free their slots;
2. fill free slots from the waiting queue: prefill their prompts (batched, padded, in chunks) and sample
   each sequence's first token; a request for ``n`` continuations is prefilled once and its prompt KV is
   copied into ``n`` slots (prefix sharing);
3. one decode step over every active sequence at once, each row at its own position, each sampled with
   its own parameters and random generator;
4. emit token events and retire finished sequences (stop token, max tokens, cancel).

Active sequences always occupy slots ``0..n_active``: a finished one's slot is refilled by moving the last
active sequence into it, so the decode step reads the cache as a view. Callers get a
:class:`~model.request_handle.RequestHandle` whose events arrive on an asyncio queue (or a plain queue for
synchronous callers).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from model.kv_cache import KVCache
from model.prefix_cache import PrefixCache
from model.request_handle import (
    EventSink,
    GenerationResult,
    RequestHandle,
    TokenEvent,
    deliver,
    wait_for_results,
)
from model.sampling import SamplingParams, SequenceSamplingState, sample_next
from model.transformer import Transformer

log = logging.getLogger("tinyllm.engine")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The sampler's tensors are small ([rows, vocab]): a second OpenMP thread costs more to wake and join
    than it saves (measured: 32 sampled rows of the shipped model 19 -> 6.6 ms on one thread; exp over
    [32, 6000] 0.7 -> 0.35 ms). The setting is the calling thread's own, restored after."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def default_threads() -> int:
    """Every CPU this process may run on (not OMP_NUM_THREADS: the server keeps that at 1 for the other
    threads, see server/cli.py)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class EngineError(Exception):
    pass


class QueueFullError(EngineError):
    """The waiting queue is at capacity: the caller should retry later."""


class PromptTooLongError(EngineError):
    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        super().__init__(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} for "
            f"the completion). Please reduce the prompt or the completion length."
        )
        self.prompt_tokens, self.max_tokens, self.context = prompt_tokens, max_tokens, context


def check_prompt(prompt_tokens: int, max_tokens: int, context: int) -> None:
    if prompt_tokens + max_tokens > context:
        raise PromptTooLongError(prompt_tokens, max_tokens, context)


def check_request(
    prompt_ids: list[int], params: SamplingParams, n: int, max_batch: int, vocab_size: int, context: int
) -> None:
    if not prompt_ids:
        raise ValueError("the prompt is empty")
    if not 1 <= n <= max_batch:
        raise ValueError(f"n must be between 1 and {max_batch}")
    if any(not 0 <= t < vocab_size for t in prompt_ids):
        raise ValueError("prompt token id out of range")
    params.validate(vocab_size)
    check_prompt(len(prompt_ids), params.max_tokens, context)


@dataclass
class EngineConfig:
    max_batch: int = 32  # KV slots = sequences decoded together
    max_queue: int = 256  # waiting requests before submit() refuses
    max_seq_len: int | None = None  # defaults to the model's context
    prefill_chunk: int = 256  # tokens per row per prefill forward
    prefill_batch_tokens: int = 4096  # padded tokens per prefill forward (bounds memory and others' stall)
    prefix_cache_entries: int = 0  # spare KV slots keeping recent prompts for reuse (model/prefix_cache.py)
    num_threads: int | None = None


@dataclass
class EngineStats:
    running: int  # sequences decoding (a request with n=4 runs 4)
    waiting: int  # requests queued
    slots_total: int
    slots_used: int
    last_batch_size: int
    running_requests: int = 0  # requests with sequences decoding (same unit as ``waiting``)


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    n: int
    handle: RequestHandle
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class _Sequence:
    request: _Request
    index: int
    slot: int
    state: SequenceSamplingState
    pos: int = 0  # tokens already in the cache
    last_token: int = -1  # sampled but not yet fed to the model
    finished: bool = False
    generated: list[int] = field(default_factory=list)  # sampled tokens (the last one not yet fed)
    failed: bool = False  # ended by an engine error: its cache rows are not worth keeping


class Engine:
    def __init__(
        self,
        model: Transformer,
        config: EngineConfig | None = None,
        eos_token_ids: list[int] | tuple[int, ...] = (),
    ) -> None:
        self.model = model
        self.config = config or EngineConfig()
        model_config = model.config
        self.max_seq_len = min(
            self.config.max_seq_len or model_config.max_position_embeddings,
            getattr(model, "max_len", model_config.max_position_embeddings),  # its rotary tables' length
        )
        self.vocab_size = model_config.vocab_size
        self.eos_token_ids = tuple(eos_token_ids)
        entries = self.config.prefix_cache_entries
        self.cache = KVCache(model_config, self.config.max_batch + entries, self.max_seq_len)
        self.prefix_cache = PrefixCache(self.cache, self.config.max_batch, entries)
        self._waiting: collections.deque[_Request] = collections.deque()
        self._active: list[_Sequence] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._accepting = False
        self._last_batch_size = 0
        self._step_listeners: list[Callable[[int, float], None]] = []

    # ---- caller side -------------------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    @property
    def is_dead(self) -> bool:
        """The engine thread ended without being asked to: nothing will ever run again."""
        return self._thread is not None and not self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        """Run the engine in its own thread."""
        if self._thread is not None:
            return
        self.start_accepting()
        self._thread = threading.Thread(target=self._run, name="tinyllm-engine", daemon=True)
        self._thread.start()

    def add_step_listener(self, listener: Callable[[int, float], None]) -> None:
        """``listener(batch_size, seconds)`` runs in the engine thread after every decode step: keep it cheap."""
        self._step_listeners.append(listener)

    def check_prompt(self, prompt_tokens: int, max_tokens: int) -> None:
        """Raise PromptTooLongError if the prompt and the completion cannot fit in the context."""
        check_prompt(prompt_tokens, max_tokens, self.max_seq_len)

    @property
    def kv_cache_bytes(self) -> int:
        return self.cache.nbytes()

    def check_request(self, prompt_ids: list[int], params: SamplingParams, n: int) -> None:
        """Raise ValueError naming what is wrong, or PromptTooLongError, for a request this engine cannot
        run (the same checks wherever the engine runs: :class:`model.engine_client.EngineClient` too)."""
        check_request(prompt_ids, params, n, self.config.max_batch, self.vocab_size, self.max_seq_len)

    def submit(
        self, prompt_ids: list[int], params: SamplingParams, n: int = 1, sink: EventSink | None = None
    ) -> RequestHandle:
        """Queue a request for ``n`` continuations of ``prompt_ids``. Raises before any work is done:
        ValueError on bad arguments, PromptTooLongError, QueueFullError, EngineError when stopped.
        ``sink`` receives the request's events instead of the handle's queues (the engine process)."""
        self.check_request(prompt_ids, params, n)
        handle = RequestHandle(n, self._notify, sink)
        with self._cond:
            if not self._accepting:
                raise EngineError("the engine is not accepting requests (not started or shutting down)")
            if len(self._waiting) >= self.config.max_queue:
                raise QueueFullError(f"the waiting queue is full ({self.config.max_queue} requests)")
            self._waiting.append(_Request(list(prompt_ids), params, n, handle))
            self._cond.notify()
        return handle

    def generate(self, prompt_ids: list[int], params: SamplingParams, n: int = 1) -> list[GenerationResult]:
        """Blocking convenience for scripts and evaluation: returns the n finished sequences."""
        return wait_for_results(self.submit(prompt_ids, params, n))

    def stats(self) -> EngineStats:
        with self._cond:
            return EngineStats(
                running=len(self._active),
                waiting=len(self._waiting),
                slots_total=self.config.max_batch,
                slots_used=len(self._active),
                last_batch_size=self._last_batch_size,
                running_requests=len({id(s.request) for s in self._active}),
            )

    def start_accepting(self) -> None:
        with self._cond:
            self._accepting = True

    def stop_accepting(self) -> None:
        with self._cond:
            self._accepting = False

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop admitting, let running and queued requests finish for up to ``timeout`` seconds, then
        cancel what is left and stop the thread."""
        self.stop_accepting()
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._active or self._waiting) and time.monotonic() < deadline:
                self._cond.wait(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            self.cancel_all()
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ---- engine thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        # The thread count is each thread's own OpenMP setting: it must be set here, in the engine thread.
        torch.set_num_threads(self.config.num_threads or default_threads())
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self.has_work() or self._stopping):
                        self._cond.wait()
                    if self._stopping and not self.has_work():
                        return
                self.step()
                if self._stopping:
                    self._drop_cancelled()

    def has_work(self) -> bool:
        """Requests are waiting or sequences decoding."""
        return bool(self._waiting or self._active)

    def step(self) -> None:
        """One iteration: free cancelled requests' slots, prefill waiting prompts into free slots, one decode
        step over every active sequence. Runs in the engine thread, or in the engine process's loop
        (:mod:`model.engine_core`), under ``torch.inference_mode()``."""
        try:
            self._drop_cancelled()
            self._fill_free_slots()
            if self._active:
                self._decode_step()
        except Exception:  # keep serving others; the requests in flight end with "error"
            log.exception("engine step failed")
            self._fail_all_active()

    def cancel_all(self) -> None:
        """Mark every waiting and running request cancelled (the next step ends them)."""
        with self._cond:
            for request in list(self._waiting) + [s.request for s in self._active]:
                request.handle.cancelled = True

    def _drop_cancelled(self) -> None:
        with self._cond:
            cancelled = [r for r in self._waiting if r.handle.cancelled]
            for request in cancelled:
                self._waiting.remove(request)
        for request in cancelled:
            for i in range(request.n):
                request.handle._push(TokenEvent(i, None, finish_reason="cancelled"))
        for seq in self._active:
            if seq.request.handle.cancelled:
                self._finish(seq, "cancelled")
        self._retire()

    def _fill_free_slots(self) -> None:
        batch: list[_Request] = []
        free = self.config.max_batch - len(self._active)
        budget = self.config.prefill_batch_tokens
        with self._cond:
            while self._waiting and self._waiting[0].n <= free:
                request = self._waiting[0]
                longest = max([len(r.prompt_ids) for r in batch] + [len(request.prompt_ids)])
                if batch and longest * (len(batch) + 1) > budget:
                    break
                batch.append(self._waiting.popleft())
                free -= request.n
        if batch:
            self._prefill(batch)

    def _restore_prefixes(self, batch: list[_Request], first: int) -> list[int]:
        """Copy each prompt's longest cached prefix into its slot; the lengths restored. A row whose cached
        prefix would push the batch's padded positions past the cache computes its whole prompt instead."""
        starts = [self.prefix_cache.restore(r.prompt_ids, first + row) for row, r in enumerate(batch)]
        while True:  # each pass gives up at least one hit, and rows without one always fit
            width = max(len(r.prompt_ids) - start for r, start in zip(batch, starts, strict=True))
            too_far = [row for row, start in enumerate(starts) if start and start + width > self.max_seq_len]
            if not too_far:
                break
            for row in too_far:
                starts[row] = 0
        for request, start in zip(batch, starts, strict=True):
            request.handle.cached_tokens = start
        return starts

    def _prefill(self, batch: list[_Request]) -> None:
        """Prefill the batch's prompts into consecutive slots, then fork each into its n slots."""
        started = time.perf_counter()
        for request in batch:
            request.handle.scheduled_at = started
        first = len(self._active)
        # Each row computes its prompt from its cached prefix on (``starts``, 0 when nothing is cached).
        starts = torch.tensor(self._restore_prefixes(batch, first))
        lengths = torch.tensor([len(r.prompt_ids) for r in batch]) - starts
        width = int(lengths.max())
        ids = torch.full((len(batch), width), 0, dtype=torch.long)
        for row, request in enumerate(batch):
            ids[row, : int(lengths[row])] = torch.tensor(request.prompt_ids[int(starts[row]) :])
        last = lengths - 1
        logits = torch.empty(len(batch), self.vocab_size)
        chunk = self.config.prefill_chunk
        for start in range(0, width, chunk):
            piece = ids[:, start : start + chunk]
            # Each row's logits come from its own last prompt token, in whichever chunk that falls.
            index = (last - start).clamp(0, piece.shape[1] - 1)
            out = self.model.forward_cached(piece, starts + start, self.cache, first, index)
            in_chunk = (last >= start) & (last < start + piece.shape[1])
            logits[in_chunk] = out[in_chunk].float()
        for row, request in enumerate(batch):
            self.prefix_cache.store(request.prompt_ids, first + row)

        # Primaries sit in slots first..first+len(batch); their forks follow.
        primaries = [self._new_sequence(request, 0, first + row) for row, request in enumerate(batch)]
        rows = list(range(len(batch)))
        forks: list[_Sequence] = []
        slot = first + len(batch)
        for row, request in enumerate(batch):
            for i in range(1, request.n):
                self.cache.copy_slot(first + row, slot, len(request.prompt_ids))
                forks.append(self._new_sequence(request, i, slot))
                rows.append(row)
                slot += 1
        sequences = primaries + forks
        with self._cond:
            self._active.extend(sequences)
        self._accept_tokens(sequences, logits[rows])

    def _new_sequence(self, request: _Request, index: int, slot: int) -> _Sequence:
        state = SequenceSamplingState.create(request.params, request.prompt_ids, seed_offset=index)
        return _Sequence(request, index, slot, state, pos=len(request.prompt_ids))

    def _decode_step(self) -> None:
        started = time.perf_counter()
        batch = list(self._active)
        tokens = torch.tensor([[s.last_token] for s in batch])
        positions = torch.tensor([s.pos for s in batch])
        logits = self.model.forward_cached(tokens, positions, self.cache, 0)
        for seq in batch:
            seq.pos += 1
        self._accept_tokens(batch, logits)
        self._last_batch_size = len(batch)
        elapsed = time.perf_counter() - started
        for listener in self._step_listeners:
            listener(len(batch), elapsed)

    def _accept_tokens(self, sequences: list[_Sequence], logits: torch.Tensor) -> None:
        # Constrained rows (structured output) get their token mask inside the sampler.
        with _one_thread():
            sampled = sample_next(logits, [s.state for s in sequences], self.eos_token_ids)
        events: list[tuple[RequestHandle, TokenEvent]] = []
        for seq, token in zip(sequences, sampled, strict=True):
            params = seq.request.params
            if token.token_id in self.eos_token_ids or token.token_id in params.stop_token_ids:
                seq.finished = True
                events.append((seq.request.handle, TokenEvent(seq.index, None, finish_reason="stop")))
                continue
            seq.last_token = token.token_id
            seq.generated.append(token.token_id)
            done = seq.state.num_generated >= params.max_tokens or seq.pos + 1 >= self.max_seq_len
            events.append(
                (
                    seq.request.handle,
                    TokenEvent(
                        seq.index,
                        token.token_id,
                        token.logprob,
                        token.top_logprobs,
                        "length" if done else None,
                    ),
                )
            )
            seq.finished = done
        deliver(events)
        self._retire()

    def _finish(self, seq: _Sequence, reason: str) -> None:
        if not seq.finished:
            seq.finished = True
            seq.request.handle._push(TokenEvent(seq.index, None, finish_reason=reason))

    def _retire(self) -> None:
        """Remove finished sequences, moving the last active sequence into each freed slot."""
        if not any(s.finished for s in self._active):
            return
        with self._cond:
            active = self._active  # invariant: active[i].slot == i
            # From the end, so every sequence after i is already known to be running.
            for i in reversed(range(len(active))):
                if not active[i].finished:
                    continue
                self._remember(active[i])
                tail = active.pop()
                if i < len(active):
                    self.cache.copy_slot(tail.slot, i, tail.pos)
                    tail.slot = i
                    active[i] = tail
            self._cond.notify_all()

    def _remember(self, seq: _Sequence) -> None:
        """Keep a finished conversation's keys and values for its next turn (the first of its n only)."""
        if seq.index == 0 and not seq.failed:
            prompt = seq.request.prompt_ids
            self.prefix_cache.store(prompt + seq.generated[: seq.pos - len(prompt)], seq.slot)

    def _fail_all_active(self) -> None:
        for seq in self._active:
            seq.failed = True
            self._finish(seq, "error")
        self._retire()
