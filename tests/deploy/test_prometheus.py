"""The Prometheus files, checked by Prometheus itself.

promtool validates the config and the rules and runs the alert unit tests (alerts.test.yml). Then the real
Prometheus binary scrapes a running TinyLLM server on loopback, with the shipped scrape job and alert
rules, and the test reads series back through Prometheus's HTTP API: the scrape works, every metric the
dashboard and the alerts name is there, every dashboard query is valid PromQL and every rule evaluates.
Both need Debian's `prometheus` package (promtool and prometheus); CI installs it, and with CI=true a missing
binary fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.support import PROMETHEUS_OWN, REDIS_ONLY, alert_exprs, dashboard_exprs, metric_names
from tests.support import require_binary

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"

INSTALL = "apt-get install prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = require_binary("promtool", INSTALL)
    return subprocess.run([binary, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_config_and_its_rule_files():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_cover_every_alert():
    alerts = {
        r["alert"]
        for g in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())["tests"]
    firing = {c["alertname"] for t in tests for c in t["alert_rule_test"] if c["exp_alerts"]}
    quiet = {c["alertname"] for t in tests for c in t["alert_rule_test"] if not c["exp_alerts"]}
    assert firing == alerts and quiet == alerts, "each alert has a firing case and a quiet case"


# --- a real Prometheus against a real server ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape_config_for(target: str, directory: Path) -> Path:
    """The shipped prometheus.yml with the tinyllm job pointed at ``target``, every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / f) for f in config["rule_files"]]
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] == "tinyllm"]
    config["scrape_configs"][0].pop("dns_sd_configs", None)  # the compose replicas: here, the one server
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
            if result:
                return result
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def prometheus(live_server, tmp_path_factory) -> Iterator[httpx.Client]:
    """A Prometheus process scraping ``live_server``; yields a client for its HTTP API."""
    binary = require_binary("prometheus", INSTALL)
    tmp_path = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = scrape_config_for(f"127.0.0.1:{live_server.port}", tmp_path)
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{(tmp_path / 'prometheus.log').read_text()}")
        return client.get("/-/ready").status_code == 200

    try:
        wait_for("Prometheus to start", started)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        if process.returncode not in (0, -15):
            print((tmp_path / "prometheus.log").read_text())


def query(client: httpx.Client, expr: str) -> list[dict]:
    response = client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body.get('error')}"
    return body["data"]["result"]


def test_prometheus_scrapes_the_server_and_serves_its_series(live_server, prometheus):
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    with httpx.Client(base_url=live_server.base_url, timeout=60) as api:
        chat = api.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": "tinyllm", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 4},
        )
        assert chat.status_code == 200, chat.text
        assert api.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        metrics = api.get("/metrics")
    # Prometheus 3 (the compose image) refuses a scrape whose media type it does not know, where the
    # Debian 2.x used here would still guess.
    media_type = metrics.headers["content-type"].split(";")[0].strip()
    assert media_type in ("text/plain", "application/openmetrics-text"), metrics.headers["content-type"]

    # The chat request, counted by the server and read back through Prometheus (route template label).
    series = wait_for(
        "the chat request to be scraped",
        lambda: query(
            prometheus, 'tinyllm_requests_total{job="tinyllm", route="/v1/chat/completions", status="200"}'
        ),
    )
    assert float(series[0]["value"][1]) >= 1
    # The alerts' and the dashboard's "/v1/.+" route filter selects it.
    assert query(prometheus, 'sum(tinyllm_requests_total{route=~"/v1/.+"})')
    wait_for("the auth failure", lambda: query(prometheus, "tinyllm_auth_failures_total >= 1"))

    targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets

    names = set(prometheus.get("/api/v1/label/__name__/values").json()["data"])
    wanted = set().union(*map(metric_names, dashboard_exprs() + alert_exprs())) - PROMETHEUS_OWN - REDIS_ONLY
    assert wanted <= names, f"named by the dashboard or alerts but not scraped: {sorted(wanted - names)}"


def test_dashboard_queries_and_alert_rules_run_in_prometheus(live_server, prometheus):
    wait_for("a first scrape", lambda: query(prometheus, "tinyllm_kv_slots_total"))
    for expr in dashboard_exprs():
        # Grafana substitutes $__rate_interval before sending a query; 4 scrape intervals is its minimum.
        query(prometheus, expr.replace("$__rate_interval", "4s"))

    def evaluated_rules() -> list[dict]:
        groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []

    rules = wait_for("the alert rules to be evaluated", evaluated_rules)
    assert len(rules) == len(alert_exprs())
    assert all(r["health"] == "ok" for r in rules), json.dumps(rules, indent=1)


def test_prometheus_stores_the_process_build_and_request_phase_series(live_server, prometheus):
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    with httpx.Client(base_url=live_server.base_url, timeout=60) as api:
        body = {
            "model": "tinyllm",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 3,
            "n": 2,
        }
        assert api.post("/v1/chat/completions", headers=headers, json=body).status_code == 200
        assert api.post("/v1/completions", headers={}, json={}).status_code == 401

    def value(expr: str) -> float | None:
        result = query(prometheus, expr)
        return float(result[0]["value"][1]) if result else None

    def scraped(expr: str) -> float:
        return wait_for(f"{expr} to be scraped", lambda: value(expr) is not None and value(expr))

    # The process collector on the server's registry: CPU time and memory, with real values.
    assert scraped('process_cpu_seconds_total{job="tinyllm"}') > 0
    assert scraped('process_resident_memory_bytes{job="tinyllm"}') > 10_000_000
    assert scraped('tinyllm_cpu_cores{job="tinyllm"}') >= 1
    assert scraped('sum(python_gc_collections_total{job="tinyllm"}) >= 0') >= 0
    assert scraped('tinyllm_build_info{job="tinyllm", model_name="tinyllm"}') == 1
    # The request's phases, sizes and parameters, each observed once at least.
    for series in (
        "tinyllm_time_to_first_token_seconds_count",
        "tinyllm_request_queue_time_seconds_count",
        "tinyllm_request_prefill_time_seconds_count",
        "sum(tinyllm_request_decode_time_seconds_count)",
        "sum(tinyllm_e2e_request_latency_seconds_count)",
        "sum(tinyllm_request_generation_tokens_count)",
        "tinyllm_request_prompt_tokens_count",
        "tinyllm_request_params_n_sum",
        "tinyllm_request_params_max_tokens_count",
    ):
        assert scraped(series) >= 1, series
    assert value("tinyllm_sequences_running") is not None
    # A 401 answered before routing is labelled with the route it was meant for.
    assert scraped('tinyllm_requests_total{route="/v1/completions", status="401"}') >= 1
    assert value('tinyllm_requests_total{route="unmatched", status="401"}') is None
