"""Per-key rate limits: one limiter interface, two backends.

Each key has two token buckets, one of requests and one of tokens. A bucket holds up to its per-minute limit
(the burst) and refills continuously at limit/60 per second. A request takes 1 from the requests bucket and
reserves ``prompt + n * max_tokens`` from the tokens bucket at admission; when it ends, the part it did not
use is given back (reserve-then-refund). A limit of 0 means unlimited.

* :class:`server.ratelimit_local.LocalRateLimiter`: the buckets in this process (one replica);
* :class:`server.ratelimit_redis.RedisRateLimiter`: the same buckets in Redis, updated atomically by a Lua
  script, so every replica draws on one budget per key (``TINYLLM_REDIS_URL``).

Why not slowapi for these: it counts requests in fixed or moving windows (the ``limits`` package) and has no
notion of a reservation that is partly refunded later, which is the point of a token limit for generation
(we cannot know the completion length up front). slowapi does the per-client-IP limits in front of
authentication (:mod:`server.client_limits`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import IDENTITY_SCOPE_KEY, Identity

KINDS = ("requests", "tokens")


class RateLimitExceeded(Exception):
    def __init__(self, limit: str, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.limit = limit  # "requests" or "tokens"
        self.retry_after = retry_after  # seconds; inf when the request can never fit
        self.message = message

    @classmethod
    def for_bucket(cls, kind: str, capacity: int, wait: float, tokens: int) -> RateLimitExceeded:
        """The refusal for ``kind`` with the same wording whichever backend refused."""
        if kind == "requests":
            message = f"Rate limit reached for requests: limit {capacity} per minute. Retry in {wait:.1f}s."
        elif math.isinf(wait):
            message = (
                f"Request too large for the token rate limit: it needs {tokens} tokens (prompt + n * "
                f"max_tokens) and the limit is {capacity} per minute. Ask for fewer max_tokens."
            )
        else:
            message = (
                f"Rate limit reached for tokens: limit {capacity} per minute, requested {tokens}. "
                f"Retry in {wait:.1f}s."
            )
        return cls(kind, wait, message)


@dataclass
class Reservation:
    """Tokens held for one request; ``settle`` gives back what the request did not use (once)."""

    limiter: RateLimiter
    identity: Identity
    reserved: int
    settled: bool = field(default=False)

    def settle(self, used_tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        self.limiter.refund(self.identity, max(0, self.reserved - used_tokens))


@dataclass(frozen=True)
class BucketState:
    """A bucket as the headers show it: capacity and level (fractional) now."""

    capacity: int
    level: float

    def headers(self, kind: str) -> dict[str, str]:
        rate = self.capacity / 60.0
        return {
            f"x-ratelimit-limit-{kind}": str(self.capacity),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.level))),
            f"x-ratelimit-reset-{kind}": format_duration(max(0.0, (self.capacity - self.level) / rate)),
        }


def bucket_id(identity: Identity) -> str:
    """What a bucket is keyed by: the key's SHA-256 (the same on every replica and across key reloads)."""
    return identity.digest.hex() if identity.digest else "name:" + identity.name


class RateLimiter(ABC):
    """Reserve-then-refund on a key's request and token buckets."""

    def __init__(self, default_rpm: int, default_tpm: int) -> None:
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm

    def limits(self, identity: Identity) -> tuple[int, int]:
        rpm = identity.rpm if identity.rpm is not None else self.default_rpm
        tpm = identity.tpm if identity.tpm is not None else self.default_tpm
        return rpm, tpm

    @abstractmethod
    async def reserve(self, identity: Identity, tokens: int) -> Reservation:
        """Take one request and reserve ``tokens``, or raise RateLimitExceeded having taken nothing."""

    @abstractmethod
    def refund(self, identity: Identity, tokens: int) -> None:
        """Give back ``tokens`` of a reservation (never blocks: a remote backend does it in the background)."""

    @abstractmethod
    def refund_request(self, identity: Identity) -> None:
        """Give back the request of an admission the server itself could not serve (queue full)."""

    @abstractmethod
    async def states(self, identity: Identity) -> dict[str, BucketState]:
        """The key's limited buckets now, by kind ("requests", "tokens"); empty when unlimited."""

    async def headers(self, identity: Identity) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for this key (a limited dimension only)."""
        out: dict[str, str] = {}
        for kind, state in (await self.states(identity)).items():
            out.update(state.headers(kind))
        return out

    @abstractmethod
    async def aclose(self) -> None:
        """Wait for background refunds and release connections."""


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: ``"20ms"``, ``"1.5s"``, ``"6m0s"``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


class RateLimitHeadersMiddleware:
    """Adds the caller's x-ratelimit-* headers to every authenticated ``/v1`` response (errors included).

    The headers are computed when the response starts, so they reflect this request's own admission.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            identity = scope.get(IDENTITY_SCOPE_KEY)
            if message["type"] == "http.response.start" and identity is not None:
                headers = await self.limiter.headers(identity)
                extra = [(k.encode(), v.encode()) for k, v in headers.items()]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
