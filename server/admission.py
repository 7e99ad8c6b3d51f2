"""An admitted request (made by :meth:`server.serving.OpenAIServing.admit`): its engine handles, its
rate-limit reservation and its timings, and the accounting once it ends, whatever the end (the response
sent, a stop string, the client gone, a shutdown or a failure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from model.request_handle import RequestHandle
from server.outputs import SequenceAccounting
from server.ratelimit import Reservation
from server.request_log import log_fields

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
    started_at: float = field(default_factory=time.perf_counter)
    finished: bool = False

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()

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
        m = self.ctx.metrics
        m.prompt_tokens.inc(self.prompt_tokens)
        m.generation_tokens.inc(completion_tokens)
        firsts = [c.first_token_at for c in choices if c.first_token_at is not None]
        if firsts:
            m.ttft.observe(min(firsts) - self.started_at)
        for c in choices:
            if c.num_tokens > 1 and c.first_token_at is not None and c.last_token_at is not None:
                m.tpot.observe((c.last_token_at - c.first_token_at) / (c.num_tokens - 1))
        self.ctx.lifecycle.untrack(self)
        log_fields(scope).update(
            prompt_tokens=self.prompt_tokens,
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
