"""Request body limits with OpenAI-shaped errors: size (``TINYLLM_MAX_BODY_BYTES``, 413) and time
(``TINYLLM_BODY_READ_TIMEOUT_SECONDS``, 408).

A declared ``Content-Length`` over the limit is refused before a byte of the body is read. A chunked body
is counted as it arrives; crossing the limit raises an HTTPException(413) from ``receive``, which FastAPI
passes through its body reader to our error handler. (Starlette's own ``RequestBodyLimitMiddleware``
answers in plain text, hence this small version.)

Before answering 413 the rest of the body is read and discarded, up to a bound: a server that closes the
connection while the client is still sending makes the client's kernel see a reset instead of our 413.

A client that declares a body and then stops sending it would hold its connection and coroutine forever
(uvicorn has no body timeout): each wait for the next body chunk is bounded, then 408. Once the body is
complete the timeout no longer applies: later ``receive`` calls wait for a disconnect, which may be long.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_response

DISCARD_LIMIT = 16 * 1024 * 1024  # read at most this much of a refused body; beyond it, just close


async def _discard_body(receive: Receive, budget: int, timeout: float | None) -> None:
    """Read and throw away up to ``budget`` more bytes of a refused body, each chunk within ``timeout``, so
    that the client is done sending when our 413 arrives (else its kernel may see a reset instead)."""
    try:
        await asyncio.wait_for(_read_and_discard(receive, budget), timeout)
    except TimeoutError:
        pass  # a client that stops sending gets its 413 now


async def _read_and_discard(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        budget -= len(message.get("body", b""))


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, read_timeout: float = 0.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout or None  # seconds per body chunk; None = wait forever

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > self.max_body_bytes:
            if declared <= DISCARD_LIMIT:
                await _discard_body(receive, declared, self.read_timeout)
            response = error_response(
                413,
                f"Request body too large: {declared} bytes, the limit is {self.max_body_bytes}.",
                code="request_too_large",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return

        received = 0
        body_complete = False

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"The request body was not received in time (nothing for {self.read_timeout:g} s).",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                body_complete = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if message.get("more_body", False):
                        await _discard_body(receive, DISCARD_LIMIT - received, self.read_timeout)
                    raise HTTPException(413, "Request body too large.")
            return message

        await self.app(scope, limited_receive, send)
