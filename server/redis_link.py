"""The connection to the Redis that replicas share (``TINYLLM_REDIS_URL``), and what happens when it is gone.

Every command goes through :meth:`RedisLink.call`: short socket timeouts and no retries inside redis-py, so a
command never waits longer than ``TINYLLM_REDIS_TIMEOUT_SECONDS`` (twice that for a new connection). A
failure counts in ``tinyllm_redis_errors_total{operation}``, sets ``tinyllm_redis_up`` to 0, logs one warning
per outage (not one per request), and for a second after it the link does not try at all (callers get
:class:`RedisUnavailable` at once), so an outage costs each request nothing but the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger("tinyllm.server")

T = TypeVar("T")

# After a failure, this long without trying: an outage is not paid for again by every request.
RETRY_AFTER_FAILURE_SECONDS = 1.0


class RedisUnavailable(Exception):
    """Redis could not answer (unreachable, timed out, or in the pause after a failure)."""


class RedisLink:
    def __init__(self, url: str, timeout: float, registry: CollectorRegistry) -> None:
        self.timeout = timeout
        self.client = aioredis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # redis-py retries 3 times by default: that multiplies the wait
            decode_responses=True,
        )
        self.errors = Counter(
            "tinyllm_redis_errors_total",
            "Redis commands that failed (unreachable, timeout, error); the server then applies "
            "TINYLLM_REDIS_FAILURE.",
            ["operation"],
            registry=registry,
        )
        self.up = Gauge("tinyllm_redis_up", "1 while the last Redis command succeeded.", registry=registry)
        self.up.set(1)
        self._pause_until = 0.0
        self._down = False

    @property
    def down(self) -> bool:
        return self._down

    async def call(self, operation: str, command: Callable[[], Awaitable[T]]) -> T:
        """``await command()`` within the timeout, or raise :class:`RedisUnavailable`."""
        if self._down and time.monotonic() < self._pause_until:
            raise RedisUnavailable(operation)
        try:
            # A new connection may take the connect timeout and then the command's own.
            async with asyncio.timeout(2 * self.timeout + 0.05):
                result = await command()
        except (RedisError, OSError, TimeoutError) as e:
            self.errors.labels(operation=operation).inc()
            self._pause_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            if not self._down:
                self._down = True
                self.up.set(0)
                logger.warning(
                    "redis unreachable: applying TINYLLM_REDIS_FAILURE until it answers again",
                    extra={"operation": operation, "error": type(e).__name__},
                )
            raise RedisUnavailable(operation) from None
        if self._down:
            self._down = False
            self.up.set(1)
            logger.info("redis reachable again: shared limits and keys resume")
        return result

    async def aclose(self) -> None:
        try:
            await self.client.aclose()
        except (RedisError, OSError):
            pass
