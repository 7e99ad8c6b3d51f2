"""An admitted request (made by :meth:`server.serving.OpenAIServing.admit`): its engine handles, its
rate-limit reservation and its timings, and the accounting once it ends, whatever the end (the response
sent, a stop string, the client gone, a shutdown or a failure).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model.request_handle import RequestHandle, TokenEvent
from server.metrics import RequestMetrics
from server.outputs import SequenceAccounting
from server.ratelimit import Reservation
from server.request_log import log_fields
from server.streams import merged_batches

if TYPE_CHECKING:  # server.serving builds Admissions: importing it here would be a cycle
    from server.serving import ServingContext

prompt_logger = logging.getLogger("tinyllm.prompts")


@dataclass(eq=False)  # hashed by identity: the lifecycle keeps a set of them
class Admission:
    """An admitted request: its engine handles (one per prompt), token reservation and timings."""

    ctx: ServingContext
    handles: list[RequestHandle]
    reservation: Reservation
    prompt_tokens: int
    timing: RequestMetrics
    finished: bool = False

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the engine took from its prefix cache instead of computing them."""
        return sum(handle.cached_tokens for handle in self.handles)

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()

    async def batches(self) -> AsyncIterator[list[tuple[int, TokenEvent]]]:
        """``(prompt index, event)`` from every handle, as many as have arrived each time
        (:func:`server.streams.merged_batches`); the first token is timed as it arrives, so a stream still
        running already shows in time to first token."""
        async for batch in merged_batches(self.handles):
            if any(event.token_id is not None for _, event in batch):
                self.timing.on_token()
            yield batch

    def finish(
        self, choices: Sequence[SequenceAccounting], scope: dict[str, Any], extra_log: dict[str, Any]
    ) -> None:
        """Once per request, whatever its end: refund unused tokens, count, time and log it."""
        if self.finished:
            return
        self.finished = True
        if not all(c.engine_finished for c in choices):
            # A stop string matched, the client left or something failed: free the slots now.
            self.cancel()
        completion_tokens = sum(c.num_tokens for c in choices)
        self.reservation.settle(self.prompt_tokens + completion_tokens)
        self.timing.finish(choices)
        self.ctx.lifecycle.untrack(self)
        log_fields(scope).update(
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            completion_tokens=completion_tokens,
            finish_reasons=[c.finish_reason or "disconnected" for c in choices],
            **extra_log,
        )
        if self.ctx.settings.log_prompts:
            prompt_logger.info(
                "completion",
                extra={
                    "request_id": scope.get("tinyllm.request_id"),
                    "completions": [c.text for c in choices],
                },
            )
