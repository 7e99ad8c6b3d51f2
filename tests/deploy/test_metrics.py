"""The dashboard and the alerts only name metrics the server exports, and show all of them.

The metric names are read from PromQL (a small lexer, tested here) and compared with what the server's
own metrics registry renders in the Prometheus text format. tests/deploy/test_prometheus.py repeats the
comparison end to end, against the series a real Prometheus scraped from a running server.
"""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics
from server.redis_link import RedisLink
from tests.deploy.support import (
    ALERT_TESTS,
    PROMETHEUS_OWN,
    alert_exprs,
    dashboard_exprs,
    metric_names,
)


def exported_families(exposition: str) -> dict[str, set[str]]:
    """Family name -> the series names Prometheus stores for it, from a /metrics text.

    Labelled families with no children yet have no sample lines, so the names come from each family's
    type, not from the samples. The text format lists a counter's or histogram's ``_created`` timestamp
    as a gauge family of its own; it is folded back into its family.
    """
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["", "_sum", "_count", "_created"],
        "gauge": [""],
        "info": ["_info"],
        "stateset": [""],
        "gaugehistogram": ["_bucket", "_gsum", "_gcount"],
        "unknown": [""],
    }
    families = {
        f.name: {f.name + suffix for suffix in suffixes[f.type]}
        for f in text_string_to_metric_families(exposition)
    }
    return {
        name: series
        for name, series in families.items()
        if not (name.endswith("_created") and name.removesuffix("_created") in families)
    }


def server_exposition() -> str:
    """What the server's metrics registry renders after one chat request (labelled metrics show their
    buckets only once they have a child), with TINYLLM_REDIS_URL set (the Redis link adds its metrics)."""
    metrics = Metrics()
    RedisLink("redis://127.0.0.1:6379/0", 0.25, metrics.registry)  # connects only when first used
    metrics.set_build_info("tinyllm", "tinyllm-default", "int8")
    metrics.requests.labels(route="/v1/chat/completions", status="200").inc()
    metrics.request_duration.labels(route="/v1/chat/completions").observe(1.0)
    return metrics.render().decode()


def histogram_buckets(exposition: str) -> dict[str, set[float]]:
    """Histogram family -> its finite bucket bounds."""
    buckets: dict[str, set[float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.type == "histogram":
            bounds = {float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")}
            buckets[family.name] = {b for b in bounds if b != float("inf")}
    return buckets


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (route, status) (rate(tinyllm_requests_total{route=~"/v1/.+"}[$__rate_interval]))',
            {"tinyllm_requests_total"},
        ),
        ("histogram_quantile(0.95, sum(rate(a_bucket[5m])) by (le)) > 1e3", {"a_bucket"}),
        ("a / on(instance) group_left(job) b offset 5m > bool 0.5", {"a", "b"}),
        ('(x > 0) and (y{l="{not_a_metric}"} / z >= 0.9)', {"x", "y", "z"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") unless ignoring(le) n[1h:5m]', {"m", "n"}),
        (
            "sum(rate(tinyllm_x_sum[15m])) / sum(rate(tinyllm_x_count[${__range}]))",
            {"tinyllm_x_sum", "tinyllm_x_count"},
        ),
        ("up == 0", {"up"}),
        ("vector(1) + time()", set()),
    ],
)
def test_promql_metric_names(expr, names):
    assert metric_names(expr) == names


def test_exported_families_include_unobserved_labelled_metrics():
    families = exported_families(Metrics().render().decode())
    assert families["tinyllm_requests"] == {"tinyllm_requests_total", "tinyllm_requests_created"}
    assert "tinyllm_request_duration_seconds_bucket" in families["tinyllm_request_duration_seconds"]
    assert families["tinyllm_requests_waiting"] == {"tinyllm_requests_waiting"}


def test_dashboard_and_alerts_name_only_exported_metrics():
    exported = set().union(*exported_families(server_exposition()).values())
    dashboard = set().union(*map(metric_names, dashboard_exprs()))
    alerts = set().union(*map(metric_names, alert_exprs()))
    assert dashboard, "the dashboard has queries"
    assert dashboard <= exported, f"dashboard names unknown metrics: {sorted(dashboard - exported)}"
    assert alerts <= exported | PROMETHEUS_OWN, f"alerts name unknown metrics: {sorted(alerts - exported)}"


# What the dashboard must show of the process collector's series (the rest: file descriptors, start time,
# GC and Python version are for ad-hoc queries).
PROCESS_ON_DASHBOARD = {"process_cpu_seconds", "process_resident_memory_bytes"}


def test_a_fresh_registry_exports_the_process_platform_and_gc_series():
    families = exported_families(Metrics().render().decode())
    for family in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections",
    ):
        assert family in families, family
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(Metrics().render().decode())
        for s in f.samples
        if not s.labels
    }
    assert samples["process_cpu_seconds_total"] > 0 and samples["process_resident_memory_bytes"] > 0
    assert samples["tinyllm_cpu_cores"] >= 1


def test_dashboard_shows_every_server_metric():
    families = exported_families(server_exposition())
    dashboard = set().union(*map(metric_names, dashboard_exprs()))
    ours = {name: series for name, series in families.items() if name.startswith("tinyllm_")}
    ours |= {name: families[name] for name in PROCESS_ON_DASHBOARD}
    missing = sorted(name for name, series in ours.items() if not series & dashboard)
    assert not missing, f"metrics exported but not on the dashboard: {missing}"


def test_finish_reason_series_exist_before_the_first_request():
    # rate() and the alerts see every finish reason from the first scrape, not after the first such request.
    families = list(text_string_to_metric_families(Metrics().render().decode()))
    for name in (
        "tinyllm_e2e_request_latency_seconds",
        "tinyllm_request_decode_time_seconds",
        "tinyllm_request_generation_tokens",
    ):
        (family,) = [f for f in families if f.name == name]
        reasons = {s.labels["finish_reason"] for s in family.samples}
        assert reasons == {"stop", "length", "disconnected", "cancelled", "error"}, name


def test_alerts_about_latency_and_errors_leave_out_the_models_route():
    # /v1/models is polled by dashboards and UIs: cheap, frequent, and no measure of generation.
    for expr in alert_exprs():
        if "tinyllm_requests_total" in expr or "tinyllm_request_duration_seconds" in expr:
            assert 'route=~"/v1/.+"' not in expr and "/v1/models" not in expr, expr
            assert "/v1/(chat/)?completions" in expr, expr


def test_latency_alert_thresholds_lie_inside_the_histogram_buckets():
    # histogram_quantile cannot return more than the largest finite bucket bound, so a threshold above it
    # would never fire.
    buckets = histogram_buckets(server_exposition())
    checked = 0
    for expr in alert_exprs():
        match = re.search(r"histogram_quantile\(.*?(tinyllm_\w+)_bucket.*\)\s*>\s*([\d.]+)", expr, re.S)
        if match:
            family, threshold = match.group(1), float(match.group(2))
            assert threshold < max(buckets[family]), f"{family}: {threshold} never reached"
            checked += 1
    assert checked >= 2


def test_alert_unit_tests_use_exported_series_and_server_buckets():
    families = exported_families(server_exposition())
    exported = set().union(*families.values()) | PROMETHEUS_OWN
    buckets = histogram_buckets(server_exposition())
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    series = [s["series"] for t in tests for s in t["input_series"]]
    assert series
    for text in series:
        name = text.split("{")[0]
        assert name in exported, f"alerts.test.yml feeds {name}, which the server does not export"
        le = re.search(r'le="([^"]+)"', text)
        if le and le.group(1) != "+Inf":
            family = name.removesuffix("_bucket")
            assert float(le.group(1)) in buckets[family], f"{text}: not one of the server's buckets"
