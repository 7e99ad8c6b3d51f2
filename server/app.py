"""Builds the FastAPI app: settings, lifespan (load, quantize, start the engine, drain on shutdown),
middleware and error handlers. Routes live in :mod:`server.routes`.

Middleware, outermost first (all pure ASGI, so streamed responses pass through unbuffered):
request id + access log -> metrics -> auth (``/v1``; per-IP failed-auth limit) -> per-IP limit (routes outside
``/v1``) -> rate-limit headers -> body size limit -> FastAPI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from model.checkpoint import LoadedCheckpoint
from model.engine import Engine
from model.engine_client import EngineClient
from server import routes
from server.auth import AuthMiddleware, ConfigError, KeyStore
from server.body_limit import BodySizeLimitMiddleware
from server.client_limits import AuthFailureLimit, ClientCounters, PublicRouteLimitMiddleware, parse_limit
from server.engine_process import start_engine
from server.errors import install_error_handlers
from server.keys_reload import KeyReloader
from server.lifecycle import Lifecycle
from server.loading import load_for_serving
from server.metrics import Metrics, MetricsMiddleware
from server.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from server.ratelimit_local import LocalRateLimiter
from server.ratelimit_redis import RedisRateLimiter
from server.redis_link import RedisLink
from server.request_log import RequestContextMiddleware
from server.serving import ServingContext, system_fingerprint
from server.serving_chat import ServingChat
from server.serving_completions import ServingCompletions
from server.settings import Settings

logger = logging.getLogger("tinyllm.server")


@dataclass
class ServerState:
    """Everything the routes need, kept on ``app.state.tinyllm``."""

    settings: Settings
    keys: KeyStore
    limiter: RateLimiter
    metrics: Metrics
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    engine: Engine | EngineClient | None = None
    context: ServingContext | None = None
    chat: ServingChat | None = None
    completions: ServingCompletions | None = None
    model_owner: str = "tinyllm"


def create_app(settings: Settings, *, checkpoint: LoadedCheckpoint | None = None) -> FastAPI:
    """The app for ``settings``. ``checkpoint`` is a checkpoint already loaded with
    :func:`server.loading.load_for_serving` (``tinyllm serve`` loads it before binding the port, to fail
    fast with a clear error); without it the lifespan loads ``settings.model``.

    Raises :class:`server.auth.ConfigError` when no API key is configured and auth is not disabled.
    """
    keys = KeyStore.from_settings(settings)
    metrics = Metrics()
    # Replicas share limits and keys through Redis (docs/scaling.md); without it all of it is in-process.
    redis_url = settings.redis_url.get_secret_value()
    try:
        link = RedisLink(redis_url, settings.redis_timeout_seconds, metrics.registry) if redis_url else None
    except ValueError as e:  # never echo the URL: it may hold a password
        raise ConfigError(
            f"TINYLLM_REDIS_URL is not a Redis URL (redis://host:6379/0): {type(e).__name__}"
        ) from None
    limiter: RateLimiter = (
        RedisRateLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm, link, settings.redis_failure)
        if link is not None
        else LocalRateLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm)
    )
    reloader = KeyReloader(keys, settings, link)
    counters = ClientCounters(link, redis_url)  # per client IP, before authentication
    failure_limit = (
        AuthFailureLimit(settings.client_limit_auth_failures, counters)
        if settings.client_limit_auth_failures.strip() and not settings.auth_disabled
        else None
    )
    state = ServerState(settings=settings, keys=keys, metrics=metrics, limiter=limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        loaded = checkpoint or await asyncio.to_thread(
            load_for_serving, settings.model, settings.max_model_len, settings.cache_dir
        )
        engine = await asyncio.to_thread(start_engine, settings, loaded)
        engine.add_step_listener(metrics.observe_step)
        ctx = ServingContext(
            settings=settings,
            engine=engine,
            tokenizer=loaded.tokenizer,
            limiter=state.limiter,
            metrics=metrics,
            lifecycle=state.lifecycle,
            generation_defaults=dict(loaded.generation_config),
            fingerprint=system_fingerprint(loaded.config.to_hf_dict(), settings.quantize),
        )
        state.engine, state.context = engine, ctx
        metrics.set_build_info(settings.served_model_name, loaded.path.name, settings.quantize)
        state.model_owner = loaded.owner or "tinyllm"
        state.chat, state.completions = ServingChat(ctx), ServingCompletions(ctx)
        if settings.reasoning_arithmetic == "calculator":
            # The calculator's index of the vocabulary (~0.1 s for 49 K tokens): built now, off the event
            # loop, instead of inside the first reasoning request.
            await asyncio.to_thread(lambda: ctx.guide_vocabulary)
        state.lifecycle.attach(asyncio.get_running_loop(), settings.shutdown_grace_seconds)
        if not keys.disabled:
            await reloader.start()
        state.lifecycle.ready = True
        logger.info(
            "ready",
            extra={
                "model": settings.served_model_name,
                "checkpoint": str(loaded.path),
                "quantize": settings.quantize,
                "context": engine.max_seq_len,
                "kv_cache_bytes": engine.kv_cache_bytes,
                "engine_pid": engine.pid if isinstance(engine, EngineClient) else None,
                "max_batch": settings.max_batch,
                "parameters": loaded.model.num_parameters(),
                "startup_s": round(time.perf_counter() - started, 2),
            },
        )
        try:
            yield
        finally:
            await _drain(state)
            await reloader.stop()
            await limiter.aclose()
            if link is not None:
                await link.aclose()

    app = FastAPI(
        title="TinyLLM",
        version="0.1.0",
        lifespan=lifespan,
        description="OpenAI-compatible API for a small Llama-family model trained on a CPU.",
        docs_url="/docs" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        redoc_url=None,
    )
    app.state.tinyllm = state
    install_error_handlers(app)
    app.include_router(routes.router)
    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(RateLimitHeadersMiddleware, limiter=state.limiter)
    if settings.client_limit_public.strip():
        parse_limit(
            "TINYLLM_CLIENT_LIMIT_PUBLIC", settings.client_limit_public
        )  # fail at start, not at first use
        app.add_middleware(PublicRouteLimitMiddleware, limit=settings.client_limit_public, counters=counters)
    app.add_middleware(
        AuthMiddleware, keys=keys, on_failure=metrics.auth_failures.inc, failure_limit=failure_limit
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware)
    return app


async def _drain(state: ServerState) -> None:
    """Stop admitting (503), give in-flight requests up to the grace period, then cancel what is left.

    Under ``tinyllm serve`` the drain starts at the signal (see :mod:`server.cli`) and uvicorn has already
    waited for open responses; this is the last word, and the whole story under other ASGI servers.
    """
    state.lifecycle.begin_drain()
    deadline = time.monotonic() + state.settings.shutdown_grace_seconds
    while state.lifecycle.inflight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if state.engine is not None:
        await asyncio.to_thread(state.engine.shutdown, 1.0)
    state.lifecycle.ready = False
    logger.info("stopped", extra={"cancelled_in_flight": state.lifecycle.inflight})
