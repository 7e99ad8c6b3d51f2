"""The caller's side of an engine request: token events, the handle that streams them, their delivery.

The engine thread produces :class:`TokenEvent` objects and hands them over with :func:`deliver`; a caller
holds a :class:`RequestHandle` and reads them as an async stream (when it submitted from an event loop) or
synchronously, from any thread, and can cancel. In the engine process (:mod:`model.engine_core`) a handle
has a sink instead: its events are sent on to the API process, where a handle of the same shape streams them.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias


@dataclass(slots=True)
class TokenEvent:
    index: int  # which of the request's n sequences
    token_id: int | None
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    finish_reason: str | None = None  # None, "stop", "length", "cancelled" or "error"


@dataclass
class GenerationResult:
    token_ids: list[int]
    finish_reason: str
    logprobs: list[float | None]


def wait_for_results(handle: RequestHandle) -> list[GenerationResult]:
    """Wait for a request submitted outside an event loop and return its ``n`` finished sequences."""
    results = [GenerationResult([], "", []) for _ in range(handle.n)]
    for event in handle.iter_sync():
        result = results[event.index]
        if event.token_id is not None:
            result.token_ids.append(event.token_id)
            result.logprobs.append(event.logprob)
        if event.finish_reason is not None:
            result.finish_reason = event.finish_reason
    return results


class RequestHandle:
    """The caller's side of a request: its events and a cancel switch. Safe to use from any thread."""

    _ids = itertools.count()

    def __init__(self, n: int, wake: Callable[[], None], sink: EventSink | None = None) -> None:
        self.request_id = next(self._ids)
        self.n = n
        self.cancelled = False
        # time.perf_counter() when the engine starts the prompt: CLOCK_MONOTONIC on Linux, one clock for
        # every process, so the engine process's reading means the same in the API process.
        self.scheduled_at: float | None = None
        self.cached_tokens = 0  # prompt tokens whose keys and values came from the prefix cache
        self._wake = wake
        self._sink = sink
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            self._async_queue: asyncio.Queue[TokenEvent] | None = asyncio.Queue()
        except RuntimeError:
            self._loop, self._async_queue = None, None
        self._sync_queue: queue.SimpleQueue[TokenEvent] = queue.SimpleQueue()

    def cancel(self) -> None:
        """Stop generating; the engine frees the slots before its next step."""
        if not self.cancelled:
            self.cancelled = True
            self._wake()

    def _push(self, event: TokenEvent) -> None:
        deliver([(self, event)])

    async def stream(self) -> AsyncIterator[TokenEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[TokenEvent]]:
        """The events in the order they came, each time as many as have arrived: one when the reader keeps
        up, several when it fell behind (a streaming response then writes them as one chunk)."""
        if self._async_queue is None:
            raise RuntimeError("batches() needs the handle to be submitted from a running event loop")
        queue = self._async_queue
        remaining = self.n
        while remaining:
            batch = [await queue.get()]
            ended = batch[0].finish_reason is not None
            while ended < remaining and not queue.empty():  # nothing of this request comes after its ends
                batch.append(queue.get_nowait())
                ended += batch[-1].finish_reason is not None
            remaining -= ended
            yield batch

    def iter_sync(self) -> Iterator[TokenEvent]:
        remaining = self.n
        while remaining:
            event = self._sync_queue.get()
            remaining -= event.finish_reason is not None
            yield event


EventSink: TypeAlias = Callable[[list[tuple["RequestHandle", TokenEvent]]], None]


def deliver(items: list[tuple[RequestHandle, TokenEvent]]) -> None:
    """Hand events to their callers: one ``call_soon_threadsafe`` per event loop for the whole batch (each
    call wakes the loop through a pipe), not one per token; one call per sink."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[RequestHandle, TokenEvent]]] = {}
    by_sink: dict[EventSink, list[tuple[RequestHandle, TokenEvent]]] = {}
    for handle, event in items:
        if handle._sink is not None:
            by_sink.setdefault(handle._sink, []).append((handle, event))
        elif handle._loop is None:
            handle._sync_queue.put(event)
        else:
            by_loop.setdefault(handle._loop, []).append((handle, event))
    for sink, batch in by_sink.items():
        sink(batch)
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, batch)
        except RuntimeError:  # the caller's event loop is gone; nobody is listening any more
            for handle, _ in batch:
                handle.cancel()


def _put_all(batch: list[tuple[RequestHandle, TokenEvent]]) -> None:
    for handle, event in batch:
        handle._async_queue.put_nowait(event)
