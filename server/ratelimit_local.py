"""The rate limiter of one process: each key's buckets in memory (no ``TINYLLM_REDIS_URL``).

Also the fallback of :class:`server.ratelimit_redis.RedisRateLimiter` while Redis is unreachable and
``TINYLLM_REDIS_FAILURE=open``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.auth import Identity
from server.ratelimit import BucketState, RateLimiter, RateLimitExceeded, Reservation, bucket_id


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

    def state(self, now: float) -> BucketState:
        self._refill(now)
        return BucketState(int(self.capacity), self.level)


@dataclass
class _KeyBuckets:
    limits: tuple[int, int]
    requests: TokenBucket | None
    tokens: TokenBucket | None


class LocalRateLimiter(RateLimiter):
    def __init__(
        self, default_rpm: int, default_tpm: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(default_rpm, default_tpm)
        self.clock = clock
        # By the key's hash, not the Identity object: a keys reload makes new objects for the same keys.
        self._buckets: dict[str, _KeyBuckets] = {}
        # The event loop is the only caller today; the lock keeps the arithmetic right if that changes.
        self._lock = threading.Lock()

    def _buckets_of(self, identity: Identity) -> _KeyBuckets:
        limits = self.limits(identity)
        buckets = self._buckets.get(bucket_id(identity))
        if buckets is None or buckets.limits != limits:  # new key, or its limits changed on a reload
            rpm, tpm = limits
            now = self.clock()
            buckets = _KeyBuckets(
                limits, TokenBucket(rpm, now) if rpm else None, TokenBucket(tpm, now) if tpm else None
            )
            self._buckets[bucket_id(identity)] = buckets
        return buckets

    def reserve_now(self, identity: Identity, tokens: int) -> Reservation:
        """:meth:`reserve` without the coroutine (it never waits)."""
        with self._lock:
            b = self._buckets_of(identity)
            now = self.clock()
            if b.requests is not None:
                wait = b.requests.wait_time(1, now)
                if wait > 0:
                    raise RateLimitExceeded.for_bucket("requests", int(b.requests.capacity), wait, 1)
            if b.tokens is not None:
                wait = b.tokens.wait_time(tokens, now)
                if wait > 0:
                    raise RateLimitExceeded.for_bucket("tokens", int(b.tokens.capacity), wait, tokens)
            if b.requests is not None:
                b.requests.take(1, now)
            if b.tokens is not None:
                b.tokens.take(tokens, now)
            return Reservation(self, identity, tokens if b.tokens is not None else 0)

    async def reserve(self, identity: Identity, tokens: int) -> Reservation:
        return self.reserve_now(identity, tokens)

    def refund(self, identity: Identity, tokens: int) -> None:
        with self._lock:
            b = self._buckets_of(identity)
            if b.tokens is not None and tokens > 0:
                b.tokens.give_back(tokens, self.clock())

    def refund_request(self, identity: Identity) -> None:
        with self._lock:
            b = self._buckets_of(identity)
            if b.requests is not None:
                b.requests.give_back(1, self.clock())

    def states_now(self, identity: Identity) -> dict[str, BucketState]:
        with self._lock:
            b = self._buckets_of(identity)
            now = self.clock()
            return {
                kind: bucket.state(now)
                for kind, bucket in (("requests", b.requests), ("tokens", b.tokens))
                if bucket is not None
            }

    async def states(self, identity: Identity) -> dict[str, BucketState]:
        return self.states_now(identity)

    async def aclose(self) -> None:
        return None  # nothing in the background, nothing to release
