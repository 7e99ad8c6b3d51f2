"""Prometheus metrics (prefix ``tinyllm_``), one registry per app so several apps can live in one process.

Names are a contract with deploy/ (dashboards, alerts). No label ever carries an API key or a raw path:
``route`` is the route template (``/v1/models/{model_id}``), or ``unmatched``.

Engine gauges are read from ``engine.stats()`` when /metrics is scraped; the batch-size histogram is fed by
the engine's step listener. Buckets are sized for a CPU model: requests take seconds, not milliseconds.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SAMPLES_BUCKETS = (1, 2, 3, 5, 7, 9, 12, 16, 32)
AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "tinyllm_requests_total", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            "tinyllm_request_duration_seconds",
            "End-to-end request time.",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "tinyllm_time_to_first_token_seconds",
            "Admission to first generated token.",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "tinyllm_time_per_output_token_seconds",
            "Time between generated tokens.",
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("tinyllm_prompt_tokens_total", "Prompt tokens admitted.", registry=r)
        self.generation_tokens = Counter("tinyllm_generation_tokens_total", "Tokens generated.", registry=r)
        self.running = Gauge("tinyllm_requests_running", "Sequences decoding in the engine.", registry=r)
        self.waiting = Gauge("tinyllm_requests_waiting", "Requests waiting in the engine queue.", registry=r)
        self.batch_size = Histogram(
            "tinyllm_batch_size", "Active sequences per decode step.", buckets=BATCH_BUCKETS, registry=r
        )
        self.kv_slots_used = Gauge("tinyllm_kv_slots_used", "KV-cache slots in use.", registry=r)
        self.kv_slots_total = Gauge("tinyllm_kv_slots_total", "KV-cache slots.", registry=r)
        self.rate_limited = Counter(
            "tinyllm_rate_limited_total", "Requests refused by a rate limit.", ["limit"], registry=r
        )
        self.auth_failures = Counter(
            "tinyllm_auth_failures_total", "Requests with a missing or wrong key.", registry=r
        )
        self.queue_rejections = Counter(
            "tinyllm_queue_rejections_total", "Requests refused: queue full.", registry=r
        )
        self.sc_samples = Histogram(
            "tinyllm_self_consistency_samples",
            "Votes per reasoning request.",
            buckets=SAMPLES_BUCKETS,
            registry=r,
        )
        self.sc_agreement = Histogram(
            "tinyllm_self_consistency_agreement",
            "Share of votes for the answer.",
            buckets=AGREEMENT_BUCKETS,
            registry=r,
        )
        for limit in ("requests", "tokens"):  # export zeros before the first refusal
            self.rate_limited.labels(limit=limit)

    def observe_step(self, batch_size: int, duration_s: float) -> None:
        """Engine step listener (runs on the engine thread; prometheus-client is thread-safe)."""
        self.batch_size.observe(batch_size)

    def refresh_engine(self, stats: Any) -> None:
        self.running.set(stats.running)
        self.waiting.set(stats.waiting)
        self.kv_slots_used.set(stats.slots_used)
        self.kv_slots_total.set(stats.slots_total)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it to the last byte sent."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering, the error middleware outside us sends a 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route = route_label(scope)
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.request_duration.labels(route=route).observe(time.perf_counter() - start)
