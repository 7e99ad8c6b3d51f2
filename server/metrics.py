"""Prometheus metrics (prefix ``tinyllm_``), one registry per app so several apps can live in one process.

Names are a contract with deploy/ (dashboards, alerts) and docs/metrics.md. No label ever carries an API key
or a raw path: ``route`` is the route template (``/v1/models/{model_id}``), also for requests refused before
routing (a 401, 413 or 408 names the route it was meant for), or ``unmatched`` for a path no route serves.

The registry also carries the process (CPU seconds, resident memory, open files), platform and Python GC
collectors: on a CPU server, CPU saturation is the capacity signal.

Per-request series are fed by :class:`RequestMetrics` (one per admitted request): time to first token at the
first token, queue, prefill, decode and end-to-end time at the end. Engine gauges are read from
``engine.stats()`` when /metrics is scraped; the batch-size histogram is fed by the engine's step listener.
Buckets are sized for a CPU model: requests take seconds, not milliseconds.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)
PHASE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300)
LENGTH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4096, 8192)
N_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SAMPLES_BUCKETS = (1, 2, 3, 5, 7, 9, 12, 16, 32)
AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

# How a request ended. "disconnected": the client left first; "cancelled": shutdown; "error": engine failure.
FINISH_REASONS = ("stop", "length", "disconnected", "cancelled", "error")
# When a request's choices end differently, the request is labelled by the first of these it has.
_SEVERITY = ("error", "cancelled", "disconnected", "length", "stop")


def server_version() -> str:
    try:
        return importlib.metadata.version("tinyllm")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def available_cpus() -> float:
    """CPUs this process may use: the cgroup v2 CPU quota (a container's ``--cpus``) if set, else the CPUs
    it is allowed to run on."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return float(os.cpu_count() or 1)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # The process collector reads /proc: process_cpu_seconds_total, process_resident_memory_bytes...
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            "tinyllm_build_info",
            "Always 1; labels say what is served: server version, model name, checkpoint, quantization.",
            ["version", "model_name", "checkpoint", "quantization"],
            registry=r,
        )
        self.cpu_cores = Gauge(
            "tinyllm_cpu_cores", "CPUs the server may use (cgroup quota or CPU affinity).", registry=r
        )
        self.cpu_cores.set(available_cpus())
        self.requests = Counter(
            "tinyllm_requests_total", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.request_duration = Histogram(
            "tinyllm_request_duration_seconds",
            "HTTP request time, to the last byte sent.",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "tinyllm_time_to_first_token_seconds",
            "Admission to the first generated token, observed when that token arrives.",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "tinyllm_time_per_output_token_seconds",
            "Time between generated tokens.",
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "tinyllm_request_queue_time_seconds",
            "Admission to the engine starting the prompt (waiting for a free slot).",
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.prefill_time = Histogram(
            "tinyllm_request_prefill_time_seconds",
            "Engine starting the prompt to the first generated token.",
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.decode_time = Histogram(
            "tinyllm_request_decode_time_seconds",
            "First to last generated token, by how the request ended.",
            ["finish_reason"],
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "tinyllm_e2e_request_latency_seconds",
            "Admission to the end of generation, by how the request ended.",
            ["finish_reason"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.request_prompt_tokens = Histogram(
            "tinyllm_request_prompt_tokens",
            "Prompt tokens per request.",
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.request_generation_tokens = Histogram(
            "tinyllm_request_generation_tokens",
            "Generated tokens per request (all choices), by how the request ended.",
            ["finish_reason"],
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.params_n = Histogram(
            "tinyllm_request_params_n", "The n parameter per request.", buckets=N_BUCKETS, registry=r
        )
        self.params_max_tokens = Histogram(
            "tinyllm_request_params_max_tokens",
            "The completion budget per request (max_tokens, or what fits in the context).",
            buckets=LENGTH_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter("tinyllm_prompt_tokens_total", "Prompt tokens admitted.", registry=r)
        self.prompt_tokens_cached = Counter(
            "tinyllm_prompt_tokens_cached_total",
            "Prompt tokens taken from the prefix cache instead of computed (a share of the prompt tokens).",
            registry=r,
        )
        self.generation_tokens = Counter("tinyllm_generation_tokens_total", "Tokens generated.", registry=r)
        self.running = Gauge(
            "tinyllm_requests_running",
            "Requests (prompts) with sequences decoding in the engine.",
            registry=r,
        )
        self.waiting = Gauge(
            "tinyllm_requests_waiting", "Requests (prompts) waiting in the engine queue.", registry=r
        )
        self.sequences_running = Gauge(
            "tinyllm_sequences_running",
            "Sequences decoding in the engine (a request with n=4 runs 4).",
            registry=r,
        )
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
        # Export zeros before the first event, so rate() and alerts see a series from the start.
        for limit in ("requests", "tokens"):
            self.rate_limited.labels(limit=limit)
        for reason in FINISH_REASONS:
            for family in (self.decode_time, self.e2e_latency, self.request_generation_tokens):
                family.labels(finish_reason=reason)

    def set_build_info(self, model_name: str, checkpoint: str, quantization: str) -> None:
        """What is served, as labels of ``tinyllm_build_info`` (checkpoint: the directory's name)."""
        self.build_info.clear()
        self.build_info.labels(
            version=server_version(), model_name=model_name, checkpoint=checkpoint, quantization=quantization
        ).set(1)

    def observe_step(self, batch_size: int, duration_s: float) -> None:
        """Engine step listener (runs on the engine thread; prometheus-client is thread-safe)."""
        self.batch_size.observe(batch_size)

    def refresh_engine(self, stats: Any) -> None:
        self.running.set(stats.running_requests)
        self.waiting.set(stats.waiting)
        self.sequences_running.set(stats.running)
        self.kv_slots_used.set(stats.slots_used)
        self.kv_slots_total.set(stats.slots_total)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ----------------------------------------------------------------------------------------- per request


class _Handle(Protocol):
    scheduled_at: float | None  # perf_counter when the engine started the prompt (None while waiting)
    cached_tokens: int  # prompt tokens taken from the prefix cache


class _Choice(Protocol):
    num_tokens: int
    finish_reason: str | None
    first_token_at: float | None
    last_token_at: float | None


def request_finish_reason(reasons: Iterable[str | None]) -> str:
    """One label for a request from its choices' finish reasons (None: the client left before the end)."""
    present = {reason or "disconnected" for reason in reasons}
    for reason in _SEVERITY:
        if reason in present:
            return reason
    return "stop"


class RequestMetrics:
    """The timings of one admitted request. Built at admission (observes its size and parameters), told of
    each engine event (observes time to first token, queue and prefill time when the first token arrives),
    and finished once (observes decode and end-to-end time, lengths and token counters)."""

    def __init__(
        self,
        metrics: Metrics,
        handles: Sequence[_Handle],
        prompt_tokens: int,
        n: int,
        max_tokens: int,
        started_at: float | None = None,
    ) -> None:
        self.metrics = metrics
        self.handles = handles
        self.prompt_tokens = prompt_tokens
        self.started_at = time.perf_counter() if started_at is None else started_at
        self.first_token_seen = False
        self.finished = False
        metrics.request_prompt_tokens.observe(prompt_tokens)
        metrics.params_n.observe(n)
        metrics.params_max_tokens.observe(max_tokens)

    def _scheduled_at(self) -> float | None:
        times = [h.scheduled_at for h in self.handles if getattr(h, "scheduled_at", None) is not None]
        return min(times) if times else None

    def on_token(self, now: float | None = None) -> None:
        """A token arrived; the first one of the request is observed at once (a stream still running shows
        in the TTFT histogram)."""
        if self.first_token_seen:
            return
        self.first_token_seen = True
        now = time.perf_counter() if now is None else now
        m = self.metrics
        m.ttft.observe(max(0.0, now - self.started_at))
        scheduled = self._scheduled_at()
        if scheduled is not None:
            m.queue_time.observe(max(0.0, scheduled - self.started_at))
            m.prefill_time.observe(max(0.0, now - scheduled))

    def finish(self, choices: Sequence[_Choice]) -> None:
        if self.finished:
            return
        self.finished = True
        now = time.perf_counter()
        m = self.metrics
        reason = request_finish_reason(c.finish_reason for c in choices)
        completion_tokens = sum(c.num_tokens for c in choices)
        m.prompt_tokens.inc(self.prompt_tokens)
        m.prompt_tokens_cached.inc(sum(h.cached_tokens for h in self.handles))
        m.generation_tokens.inc(completion_tokens)
        m.request_generation_tokens.labels(finish_reason=reason).observe(completion_tokens)
        m.e2e_latency.labels(finish_reason=reason).observe(now - self.started_at)
        firsts = [c.first_token_at for c in choices if c.first_token_at is not None]
        lasts = [c.last_token_at for c in choices if c.last_token_at is not None]
        if firsts and not self.first_token_seen:  # events consumed without on_token (not expected)
            self.on_token(min(firsts))
        if firsts and lasts:
            m.decode_time.labels(finish_reason=reason).observe(max(0.0, max(lasts) - min(firsts)))
        for c in choices:
            if c.num_tokens > 1 and c.first_token_at is not None and c.last_token_at is not None:
                tpot = (c.last_token_at - c.first_token_at) / (c.num_tokens - 1)
                if math.isfinite(tpot):
                    m.tpot.observe(tpot)


# ----------------------------------------------------------------------------------------- HTTP


def route_templates(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], str]]:
    """(path regex, template) of every leaf route, descending into included routers (newer FastAPI keeps
    them nested rather than flattening them into the app's route list)."""
    found: list[tuple[re.Pattern[str], str]] = []
    for route in routes:
        nested = getattr(route, "routes", None)
        if nested is None:
            nested = getattr(getattr(route, "original_router", None), "routes", None)
        if nested is not None:
            found.extend(route_templates(nested))
        elif getattr(route, "path_regex", None) is not None and getattr(route, "path", None):
            found.append((route.path_regex, route.path))
    return found


def route_label(scope: Scope) -> str:
    """The route template that served the request; for one refused before routing (auth, body limit), the
    template it was meant for; ``unmatched`` when no route serves the path."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    app = scope.get("app")
    templates = getattr(app, "_tinyllm_route_templates", None)
    if templates is None and app is not None:
        templates = route_templates(getattr(getattr(app, "router", None), "routes", ()))
        app._tinyllm_route_templates = templates  # routes are fixed once the app serves
    for regex, template in templates or ():
        if regex.match(scope.get("path", "")):
            return template
    return "unmatched"


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
