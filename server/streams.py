"""The I/O under every endpoint: the engine's events merged across prompts, the client's disconnect, and the
SSE response that frees the request's slots however it ends. No OpenAI objects here: :mod:`server.serving`
decides what is sent, this module moves it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from sse_starlette import EventSourceResponse

from model.request_handle import RequestHandle, TokenEvent
from server.outputs import SequenceAccounting
from server.settings import Settings

T = TypeVar("T")


async def merged_batches(handles: list[RequestHandle]) -> AsyncIterator[list[tuple[int, TokenEvent]]]:
    """``(prompt index, event)`` from every handle in arrival order, each time all that have arrived (see
    :meth:`RequestHandle.batches`)."""
    if len(handles) == 1:
        async for batch in handles[0].batches():
            yield [(0, event) for event in batch]
        return
    queue: asyncio.Queue[list[tuple[int, TokenEvent]] | None] = asyncio.Queue()

    async def forward(i: int, handle: RequestHandle) -> None:
        async for batch in handle.batches():
            queue.put_nowait([(i, event) for event in batch])
        queue.put_nowait(None)

    tasks = [asyncio.ensure_future(forward(i, h)) for i, h in enumerate(handles)]
    try:
        remaining = len(tasks)
        while remaining:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            remaining -= items.count(None)
            merged = [pair for item in items if item is not None for pair in item]
            if merged:
                yield merged
    finally:
        for task in tasks:
            task.cancel()


async def collect(
    batches: AsyncIterator[list[tuple[int, TokenEvent]]], choices: Sequence[SequenceAccounting], n: int
) -> bool:
    """Feed every ``(prompt index, event)`` of a non-streaming request (``Admission.batches()``) to its choice
    (choice ``p * n + i`` is sequence i of prompt p) until all are done; True once they are."""
    async for batch in batches:
        for p, event in batch:
            choices[p * n + event.index].on_event(event)
        if all(c.done for c in choices):
            break
    return True


async def run_until_disconnect(
    work: Awaitable[T], request: Request, on_disconnect: Callable[[], None]
) -> T | None:
    """Await ``work`` (a non-streaming generation) unless the client disconnects first: then
    ``on_disconnect`` frees the engine slots at once and the result is None (nobody is left to answer)."""
    work_task = asyncio.ensure_future(work)

    async def wait_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(wait_disconnect())
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not work_task.done():
            on_disconnect()
            return None
        return work_task.result()
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()


class _SSEResponse(EventSourceResponse):
    """An SSE response that runs ``on_close`` however it ends. The stream's own ``finally`` normally does
    that work; this covers a client that leaves before the stream's first step, when the generator never
    starts and so never runs its ``finally``."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(events, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def sse_response(
    settings: Settings, events: AsyncIterator[str], on_close: Callable[[], None]
) -> EventSourceResponse:
    """An SSE response with keep-alive comments. On shutdown the stream may run for the grace period, then the
    lifecycle cancels it and it ends with an error event; sse-starlette's own cut comes a second later, for a
    stream that cannot even send that (a client that stopped reading)."""
    return _SSEResponse(
        events,
        on_close,
        ping=settings.keepalive_seconds,
        sep="\n",
        shutdown_grace_period=settings.shutdown_grace_seconds + 1.0,
    )


def error_event(message: str, code: str) -> str:
    """An error inside a started stream (the OpenAI SDKs raise APIError on it)."""
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": code}})


class TextChunkTemplate:
    """The commonest streamed chunk (text for one choice, nothing else) from a template made once per
    choice: ``dump(text)`` (the pydantic chunk as JSON) is called once with a marker, and every later chunk
    is the text's JSON string between the two halves. Building a pydantic model per token cost ~25 µs; this
    ~3, with the same bytes (tested against ``dump`` itself)."""

    _MARK = "\x00text\x00"

    def __init__(self, dump: Callable[[str], str]) -> None:
        head, found, tail = dump(self._MARK).partition(json.dumps(self._MARK))
        if not found:
            raise ValueError("the chunk does not hold its text as one JSON string")
        self._head, self._tail = head, tail

    def __call__(self, text: str) -> str:
        return self._head + json.dumps(text, ensure_ascii=False) + self._tail
