"""Whether the server admits work, and what is in flight: readiness and the shutdown drain.

On a drain (SIGTERM, or the app's shutdown) new requests get 503; requests in flight get the grace period
(``TINYLLM_SHUTDOWN_GRACE_SECONDS``) to finish, then they are cancelled, so that each ends the way a
cancelled request does (a stream with an error event and a proper end of its body, a non-streaming request
with a 503) rather than by a connection cut in the middle of a chunk.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

logger = logging.getLogger("tinyllm.server")


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Lifecycle:
    """Readiness, draining, and the requests in flight (an :class:`server.admission.Admission` each)."""

    def __init__(self) -> None:
        self.ready = False
        self.draining = False
        self.grace_seconds = 0.0
        self._admissions: set[Cancellable] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def inflight(self) -> int:
        return len(self._admissions)

    def attach(self, loop: asyncio.AbstractEventLoop, grace_seconds: float) -> None:
        """The event loop that serves requests, and the grace period of a drain."""
        self._loop, self.grace_seconds = loop, grace_seconds

    def track(self, admission: Cancellable) -> None:
        self._admissions.add(admission)

    def untrack(self, admission: Cancellable) -> None:
        self._admissions.discard(admission)

    def begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            logger.info("draining: new requests get 503 while in-flight requests finish")
            if self._loop is not None and not self._loop.is_closed():
                # Often called from a signal handler: only schedule, on the loop, never act from here.
                self._loop.call_soon_threadsafe(
                    self._loop.call_later, self.grace_seconds, self.cancel_in_flight
                )

    def cancel_in_flight(self) -> None:
        if self._admissions:
            logger.info(
                "grace period over: cancelling the requests still in flight",
                extra={"cancelled": len(self._admissions)},
            )
        for admission in list(self._admissions):
            admission.cancel()
