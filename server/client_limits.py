"""Per-client-IP limits in front of authentication, counted by the ``limits`` package (slowapi's engine).

* Routes without a key (``/health``, ``/ready``, ``/metrics``, ``/docs``): one budget per client IP across
  them (``TINYLLM_CLIENT_LIMIT_PUBLIC``). ``/v1`` routes have per-key buckets instead (:mod:`server.ratelimit`).
* Requests that fail authentication: ``TINYLLM_CLIENT_LIMIT_AUTH_FAILURES`` per client IP; past it, every
  ``/v1`` request from that IP gets 429 before its key is even looked at, so guessing keys is slow, while
  other clients' keys are unaffected.

Both are moving windows, in Redis with ``TINYLLM_REDIS_URL`` (so they hold across replicas), otherwise in
this process. Why ``limits`` directly rather than slowapi's middleware: slowapi finds the route through
``app.routes``, where FastAPI 0.16x lists an included router as one opaque entry, so it silently limits
nothing (checked); and its Redis calls are blocking, which on the event loop would stall every stream. The
asyncio API of ``limits`` (slowapi's own storage and strategies) has neither problem.

The client IP is the TCP peer, or the X-Forwarded-For entry that uvicorn accepts from a trusted proxy
(``TINYLLM_FORWARDED_ALLOW_IPS``). Redis unreachable: counted in this process until it answers again
(:class:`server.redis_link.RedisLink` counts and logs the outage).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.auth import ConfigError
from server.errors import error_response, retry_after_headers
from server.redis_link import RedisLink, RedisUnavailable

KEY_PREFIX = "tinyllm:clients"

T = TypeVar("T")


def parse_limit(setting: str, value: str) -> RateLimitItem:
    """``"30/minute"`` as a ``limits`` item; a clear ConfigError naming the setting otherwise."""
    try:
        return parse(value)
    except ValueError:
        raise ConfigError(
            f"{setting} must look like '30/minute' (a count per second, minute, hour or day); got {value!r}"
        ) from None


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def too_many(retry_after: float, what: str) -> Response:
    return error_response(
        429,
        f"Too many {what} from your address; retry in {max(1, math.ceil(retry_after))}s.",
        code="rate_limit_exceeded",
        type="requests",
        headers=retry_after_headers(retry_after),
    )


class ClientCounters:
    """Moving-window counters per client IP: in Redis when there is a link, else (or meanwhile) local."""

    def __init__(self, link: RedisLink | None, redis_url: str = "") -> None:
        self.link = link
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        if link is not None:
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                socket_timeout=link.timeout,
                socket_connect_timeout=link.timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self.shared = MovingWindowRateLimiter(storage)

    async def _call(self, call: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        shared = self.shared
        if shared is not None and self.link is not None:
            try:
                return await self.link.call("client_limits", lambda: call(shared))
            except RedisUnavailable:
                pass
        return await call(self.local)

    async def _wait(self, item: RateLimitItem, *ids: str) -> float:
        stats = await self._call(lambda s: s.get_window_stats(item, *ids))
        return max(1.0, stats.reset_time - time.time())

    async def hit(self, item: RateLimitItem, *ids: str) -> float | None:
        """Count one; None if within the limit, else the seconds to wait (nothing counted)."""
        if await self._call(lambda s: s.hit(item, *ids)):
            return None
        return await self._wait(item, *ids)

    async def over(self, item: RateLimitItem, *ids: str) -> float | None:
        """Without counting: None if one more fits, else the seconds to wait."""
        if await self._call(lambda s: s.test(item, *ids)):
            return None
        return await self._wait(item, *ids)


class AuthFailureLimit:
    """Failed authentications per client IP (see :class:`server.auth.AuthMiddleware`)."""

    def __init__(self, limit: str, counters: ClientCounters) -> None:
        self.item = parse_limit("TINYLLM_CLIENT_LIMIT_AUTH_FAILURES", limit)
        self.counters = counters

    async def retry_after(self, scope: Scope) -> float | None:
        """Seconds this client must wait before its next ``/v1`` request, or None when it may go on."""
        return await self.counters.over(self.item, "auth-failures", client_ip(scope))

    async def record(self, scope: Scope) -> None:
        await self.counters.hit(self.item, "auth-failures", client_ip(scope))

    def refusal(self, retry_after: float) -> Response:
        return too_many(retry_after, "requests with a wrong or missing API key")


class PublicRouteLimitMiddleware:
    """429 for a client IP past ``limit`` requests on routes outside ``/v1`` (one budget across them)."""

    def __init__(self, app: ASGIApp, limit: str, counters: ClientCounters) -> None:
        self.app = app
        self.item = parse_limit("TINYLLM_CLIENT_LIMIT_PUBLIC", limit)
        self.counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and not (path == "/v1" or path.startswith("/v1/")):
            retry_after = await self.counters.hit(self.item, "public", client_ip(scope))
            if retry_after is not None:
                await too_many(retry_after, "requests")(scope, receive, send)
                return
        await self.app(scope, receive, send)
