"""Per-key rate limits as token buckets: one bucket of requests, one of tokens.

A bucket holds up to its per-minute limit (the burst) and refills continuously at limit/60 per second. A
request takes 1 from the requests bucket and reserves ``prompt + n * max_tokens`` from the tokens bucket at
admission; when it ends, the part it did not use is given back. A limit of 0 means unlimited.

Why not slowapi: it counts requests in fixed or moving windows (the ``limits`` package) and has no notion of
a reservation that is partly refunded later, which is the point of a token limit for generation (we cannot
know the completion length up front). The bucket below is small enough to read in one sitting.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import IDENTITY_SCOPE_KEY, Identity


class TokenBucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # refill per second
        self.level = float(per_minute)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` can be taken (0 = now). Infinite if it exceeds the capacity."""
        self._refill(now)
        if amount <= self.level:
            return 0.0
        if amount > self.capacity:
            return math.inf
        return (amount - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def give_back(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def remaining(self, now: float) -> int:
        self._refill(now)
        return max(0, math.floor(self.level))

    def reset_seconds(self, now: float) -> float:
        """Seconds until the bucket is full again."""
        self._refill(now)
        return max(0.0, (self.capacity - self.level) / self.rate)


class RateLimitExceeded(Exception):
    def __init__(self, limit: str, retry_after: float, message: str) -> None:
        super().__init__(message)
        self.limit = limit  # "requests" or "tokens"
        self.retry_after = retry_after  # seconds; inf when the request can never fit
        self.message = message


@dataclass
class _KeyBuckets:
    requests: TokenBucket | None
    tokens: TokenBucket | None


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


class RateLimiter:
    def __init__(
        self, default_rpm: int, default_tpm: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm
        self.clock = clock
        self._buckets: dict[Identity, _KeyBuckets] = {}  # Identity hashes by object: one per key
        # The event loop is the only caller today; the lock keeps the arithmetic right if that changes.
        self._lock = threading.Lock()

    def limits(self, identity: Identity) -> tuple[int, int]:
        rpm = identity.rpm if identity.rpm is not None else self.default_rpm
        tpm = identity.tpm if identity.tpm is not None else self.default_tpm
        return rpm, tpm

    def _buckets_of(self, identity: Identity) -> _KeyBuckets:
        buckets = self._buckets.get(identity)
        if buckets is None:
            rpm, tpm = self.limits(identity)
            now = self.clock()
            buckets = _KeyBuckets(
                TokenBucket(rpm, now) if rpm else None, TokenBucket(tpm, now) if tpm else None
            )
            self._buckets[identity] = buckets
        return buckets

    def reserve(self, identity: Identity, tokens: int) -> Reservation:
        """Take one request and reserve ``tokens``, or raise RateLimitExceeded having taken nothing."""
        with self._lock:
            b = self._buckets_of(identity)
            now = self.clock()
            if b.requests is not None:
                wait = b.requests.wait_time(1, now)
                if wait > 0:
                    raise RateLimitExceeded(
                        "requests",
                        wait,
                        f"Rate limit reached for requests: limit "
                        f"{int(b.requests.capacity)} per minute. Retry in {wait:.1f}s.",
                    )
            if b.tokens is not None:
                wait = b.tokens.wait_time(tokens, now)
                if math.isinf(wait):
                    raise RateLimitExceeded(
                        "tokens",
                        wait,
                        f"Request too large for the token rate limit: it "
                        f"needs {tokens} tokens (prompt + n * max_tokens) and the limit is "
                        f"{int(b.tokens.capacity)} per minute. Ask for fewer max_tokens.",
                    )
                if wait > 0:
                    raise RateLimitExceeded(
                        "tokens",
                        wait,
                        f"Rate limit reached for tokens: limit "
                        f"{int(b.tokens.capacity)} per minute, requested {tokens}. Retry "
                        f"in {wait:.1f}s.",
                    )
            if b.requests is not None:
                b.requests.take(1, now)
            if b.tokens is not None:
                b.tokens.take(tokens, now)
            return Reservation(self, identity, tokens if b.tokens is not None else 0)

    def refund(self, identity: Identity, tokens: int) -> None:
        with self._lock:
            b = self._buckets_of(identity)
            if b.tokens is not None and tokens > 0:
                b.tokens.give_back(tokens, self.clock())

    def refund_request(self, identity: Identity) -> None:
        """Give back the request of an admission the server itself could not serve (queue full)."""
        with self._lock:
            b = self._buckets_of(identity)
            if b.requests is not None:
                b.requests.give_back(1, self.clock())

    def headers(self, identity: Identity) -> dict[str, str]:
        """OpenAI's x-ratelimit-* headers for this key (a limited dimension only)."""
        with self._lock:
            b = self._buckets_of(identity)
            now = self.clock()
            out: dict[str, str] = {}
            for kind, bucket in (("requests", b.requests), ("tokens", b.tokens)):
                if bucket is None:
                    continue
                out[f"x-ratelimit-limit-{kind}"] = str(int(bucket.capacity))
                out[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining(now))
                out[f"x-ratelimit-reset-{kind}"] = format_duration(bucket.reset_seconds(now))
            return out


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
                extra = [(k.encode(), v.encode()) for k, v in self.limiter.headers(identity).items()]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
