"""The rate limiter of a fleet: each key's buckets in Redis, so every replica draws on one budget.

A bucket is a Redis hash ``{level, ts}`` (``tinyllm:ratelimit:{<sha256 of key>}:requests`` / ``:tokens``; the
braces keep a key's two buckets in one Redis Cluster slot). The Lua scripts below refill, check and take
atomically on Redis' own clock (``TIME``), so replicas with skewed clocks still agree. A bucket untouched for
two minutes expires: a missing bucket is a full one.

When Redis cannot answer (see :class:`server.redis_link.RedisLink`), ``TINYLLM_REDIS_FAILURE`` decides:
``open`` (default) serves with this replica's own in-process buckets, so each replica still enforces the
limits by itself (a key gets at most N times its budget across N replicas, never unlimited) and an outage of
the limiter's store does not take the API down; ``closed`` answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Literal

from server.auth import Identity
from server.errors import APIError, retry_after_headers
from server.ratelimit import KINDS, BucketState, RateLimiter, RateLimitExceeded, Reservation, bucket_id
from server.ratelimit_local import LocalRateLimiter
from server.redis_link import RETRY_AFTER_FAILURE_SECONDS, RedisLink, RedisUnavailable

logger = logging.getLogger("tinyllm.server")

KEY_PREFIX = "tinyllm:ratelimit:"
BUCKET_TTL_SECONDS = 120  # a bucket refills completely in 60 s: after that, missing and full are the same

# Shared by the scripts: the clock, and a bucket's level refilled to now. ARGV[1], ARGV[2]: rpm, tpm (0 = no
# bucket); KEYS[1], KEYS[2]: the requests and tokens buckets.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local caps = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local function level(i)
  local v = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local lvl, ts = tonumber(v[1]), tonumber(v[2])
  if lvl == nil or ts == nil then return caps[i] end
  if now > ts then lvl = math.min(caps[i], lvl + (now - ts) * caps[i] / 60) end
  return lvl
end
local function store(i, lvl)
  redis.call('HSET', KEYS[i], 'level', tostring(lvl), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[5]))
end
"""

# ARGV[3]: tokens to reserve. Returns {"ok"} having taken, or {kind, wait seconds (-1 = never)} having
# taken nothing.
_RESERVE = (
    _PRELUDE
    + """
local want = {1, tonumber(ARGV[3])}
local levels = {}
for i = 1, 2 do
  if caps[i] > 0 then
    levels[i] = level(i)
    if want[i] > levels[i] then
      local wait = -1
      if want[i] <= caps[i] then wait = (want[i] - levels[i]) / (caps[i] / 60) end
      return {i == 1 and 'requests' or 'tokens', tostring(wait)}
    end
  end
end
for i = 1, 2 do
  if caps[i] > 0 then store(i, levels[i] - want[i]) end
end
return {'ok'}
"""
)

# ARGV[3], ARGV[4]: requests and tokens to give back (never above capacity).
_REFUND = (
    _PRELUDE
    + """
local give = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i = 1, 2 do
  if caps[i] > 0 and give[i] > 0 then store(i, math.min(caps[i], level(i) + give[i])) end
end
return 'ok'
"""
)

# The levels now, without changing them.
_PEEK = (
    _PRELUDE
    + """
local out = {}
for i = 1, 2 do
  if caps[i] > 0 then out[i] = tostring(level(i)) else out[i] = '' end
end
return out
"""
)


class RedisRateLimiter(RateLimiter):
    def __init__(
        self,
        default_rpm: int,
        default_tpm: int,
        link: RedisLink,
        failure: Literal["open", "closed"] = "open",
    ) -> None:
        super().__init__(default_rpm, default_tpm)
        self.link = link
        self.failure = failure
        self.fallback = LocalRateLimiter(default_rpm, default_tpm)
        self._reserve = link.client.register_script(_RESERVE)
        self._refund = link.client.register_script(_REFUND)
        self._peek = link.client.register_script(_PEEK)
        self._background: set[asyncio.Task[None]] = set()

    def _keys(self, identity: Identity) -> list[str]:
        base = KEY_PREFIX + "{" + bucket_id(identity) + "}:"
        return [base + kind for kind in KINDS]

    def _args(self, identity: Identity, *amounts: int) -> list[int]:
        rpm, tpm = self.limits(identity)
        return [rpm, tpm, *amounts] + [0] * (2 - len(amounts)) + [BUCKET_TTL_SECONDS]

    def _unavailable(self) -> APIError:
        return APIError(
            503,
            "The rate-limit store is unreachable; retry shortly.",
            code="server_unavailable",
            headers=retry_after_headers(RETRY_AFTER_FAILURE_SECONDS),
        )

    async def reserve(self, identity: Identity, tokens: int) -> Reservation:
        rpm, tpm = self.limits(identity)
        if not rpm and not tpm:
            return Reservation(self, identity, 0)  # unlimited: nothing to ask Redis
        keys, args = self._keys(identity), self._args(identity, tokens)
        try:
            result = await self.link.call("ratelimit", lambda: self._reserve(keys=keys, args=args))
        except RedisUnavailable:
            if self.failure == "closed":
                raise self._unavailable() from None
            local = self.fallback.reserve_now(identity, tokens)
            # Settled against the local buckets it was taken from.
            return Reservation(self.fallback, identity, local.reserved)
        if result[0] != "ok":
            kind, wait = result[0], float(result[1])
            capacity = rpm if kind == "requests" else tpm
            raise RateLimitExceeded.for_bucket(kind, capacity, math.inf if wait < 0 else wait, tokens)
        return Reservation(self, identity, tokens if tpm else 0)

    def _in_background(self, identity: Identity, requests: int, tokens: int) -> None:
        keys, args = self._keys(identity), self._args(identity, requests, tokens)

        async def give_back() -> None:
            try:
                await self.link.call("refund", lambda: self._refund(keys=keys, args=args))
            except RedisUnavailable:
                pass  # counted and logged by the link; the bucket refills with time anyway

        try:
            task = asyncio.get_running_loop().create_task(give_back())
        except RuntimeError:  # no event loop (shutdown): the bucket refills by itself
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def refund(self, identity: Identity, tokens: int) -> None:
        if tokens > 0 and self.limits(identity)[1]:
            self._in_background(identity, 0, tokens)

    def refund_request(self, identity: Identity) -> None:
        if self.limits(identity)[0]:
            self._in_background(identity, 1, 0)

    async def states(self, identity: Identity) -> dict[str, BucketState]:
        rpm, tpm = self.limits(identity)
        if not rpm and not tpm:
            return {}
        keys, args = self._keys(identity), self._args(identity)
        try:
            levels = await self.link.call("ratelimit_headers", lambda: self._peek(keys=keys, args=args))
        except RedisUnavailable:
            return self.fallback.states_now(identity) if self.failure == "open" else {}
        return {
            kind: BucketState(capacity, float(level))
            for kind, capacity, level in zip(KINDS, (rpm, tpm), levels, strict=True)
            if capacity
        }

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(list(self._background), timeout=2 * self.link.timeout + 0.1)
