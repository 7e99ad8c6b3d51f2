"""Per-client-IP limits in front of authentication (slowapi and its ``limits`` package).

* Routes without a key (``/health``, ``/ready``, ``/metrics``, ``/docs``): one budget per client IP across
  them (``TINYLLM_CLIENT_LIMIT_PUBLIC``), by slowapi's middleware as an application-wide limit; ``/v1`` routes
  are exempt (they have per-key buckets, :mod:`server.ratelimit`).
* Requests that fail authentication: ``TINYLLM_CLIENT_LIMIT_AUTH_FAILURES`` per client IP; past it, every
  ``/v1`` request from that IP gets 429 before its key is even looked at, so guessing keys is slow, while
  other clients' keys are unaffected. Checked on every ``/v1`` request, so it uses the asyncio side of
  ``limits`` (a blocking Redis call there would stall every stream on the event loop).

With ``TINYLLM_REDIS_URL`` both count in Redis, so the limits hold across replicas. The client IP is the
TCP peer, or the X-Forwarded-For entry that uvicorn accepts from a trusted proxy
(``TINYLLM_FORWARDED_ALLOW_IPS``). Redis unreachable: slowapi falls back to in-memory counting (and logs
it); the auth-failure limit counts in this process until Redis answers again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded as SlowAPIRateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware
from starlette.responses import Response
from starlette.types import Scope

from server.errors import error_response, retry_after_headers
from server.redis_link import RedisLink, RedisUnavailable
from server.settings import Settings

KEY_PREFIX = "tinyllm:clients"

T = TypeVar("T")


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _too_many(retry_after: float, what: str) -> Response:
    return error_response(
        429,
        f"Too many {what} from your address; retry in {max(1, math.ceil(retry_after))}s.",
        code="rate_limit_exceeded",
        type="requests",
        headers=retry_after_headers(retry_after),
    )


def install_public_limits(app: FastAPI, settings: Settings) -> None:
    """slowapi on every route outside ``/v1`` (call after the routes are added, before the auth middleware)."""
    if not settings.client_limit_public.strip():
        return
    redis_url = settings.redis_url.get_secret_value()
    timeout = settings.redis_timeout_seconds
    limiter = Limiter(
        key_func=lambda request: client_ip(request.scope),
        application_limits=[settings.client_limit_public],
        storage_uri=redis_url or "memory://",
        storage_options={"socket_timeout": timeout, "socket_connect_timeout": timeout} if redis_url else {},
        strategy="moving-window",
        key_prefix=KEY_PREFIX,
        in_memory_fallback_enabled=True,  # Redis gone: count per replica, recheck it with backoff
        headers_enabled=False,
    )
    for route in app.routes:
        if isinstance(route, APIRoute) and (route.path == "/v1" or route.path.startswith("/v1/")):
            limiter.exempt(route.endpoint)  # registers the route's name; the wrapper it returns is unused
    app.state.limiter = limiter  # where slowapi's middleware looks for it

    def too_many_requests(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SlowAPIRateLimitExceeded)
        retry_after = 1.0
        if getattr(request.state, "view_rate_limit", None):
            item, keys = request.state.view_rate_limit
            try:
                retry_after = limiter.limiter.get_window_stats(item, *keys).reset_time - time.time()
            except Exception:  # the storage failed between the hit and now: 1 s is a fair guess
                pass
        return _too_many(retry_after, "requests")

    app.add_exception_handler(SlowAPIRateLimitExceeded, too_many_requests)
    app.add_middleware(SlowAPIASGIMiddleware)


class AuthFailureLimit:
    """Counts requests that failed authentication per client IP, in Redis when there is a link."""

    def __init__(self, limit: str, link: RedisLink | None, redis_url: str = "") -> None:
        self.item: RateLimitItem = parse(limit)
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

    async def _strategy_call(self, call: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        """``call`` on the shared counters, or on this process' own while Redis cannot answer."""
        if self.shared is not None and self.link is not None:
            try:
                return await self.link.call("client_limits", lambda: call(self.shared))
            except RedisUnavailable:
                pass
        return await call(self.local)

    async def retry_after(self, scope: Scope) -> float | None:
        """Seconds this client must wait before its next ``/v1`` request, or None when it may go on."""
        ip = client_ip(scope)
        allowed = await self._strategy_call(lambda s: s.test(self.item, "auth-failures", ip))
        if allowed:
            return None
        stats = await self._strategy_call(lambda s: s.get_window_stats(self.item, "auth-failures", ip))
        return max(1.0, stats.reset_time - time.time())

    async def record(self, scope: Scope) -> None:
        ip = client_ip(scope)
        await self._strategy_call(lambda s: s.hit(self.item, "auth-failures", ip))

    def refusal(self, retry_after: float) -> Response:
        return _too_many(retry_after, "requests with a wrong or missing API key")
