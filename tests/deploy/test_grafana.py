"""Grafana provisioning and the dashboard JSON, checked without Grafana.

Which metrics the dashboard may name is tests/deploy/test_metrics.py's concern; whether its PromQL runs is
checked against a real Prometheus in tests/deploy/test_prometheus.py. Here: the provisioning files agree
with each other and with Prometheus, and the dashboard is well formed and has the panels users need.
"""

from __future__ import annotations

import json
import re
from itertools import combinations
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"


def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "tinyllm.json").read_text())


def datasource() -> dict:
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    return source


def query_panels() -> list[dict]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def test_provisioning_files_are_version_1():
    for path in (GRAFANA / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(path.read_text())["apiVersion"] == 1, path


def test_datasource_matches_the_prometheus_scrape_interval():
    source = datasource()
    assert source["type"] == "prometheus" and source["isDefault"] is True
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    # $__rate_interval is at least four times timeInterval: equal to scrape_interval, rate() always sees
    # enough samples.
    assert source["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_dashboard_identity():
    board = dashboard()
    assert board["uid"] == "tinyllm-overview" and board["title"] == "TinyLLM"
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_every_panel_queries_the_provisioned_datasource():
    source = datasource()
    for panel in query_panels():
        assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"


def test_panels_fit_the_grid_without_overlapping():
    rects = []
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        rects.append((panel["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for (a, ax0, ay0, ax1, ay1), (b, bx0, by0, bx1, by1) in combinations(rects, 2):
        assert ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, f"{a!r} overlaps {b!r}"


def test_dashboard_has_the_panels_users_watch():
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in query_panels()}

    def panel_with(*patterns: str) -> str:
        found = [title for title, expr in exprs.items() if all(re.search(p, expr) for p in patterns)]
        assert found, f"no panel queries all of {patterns}"
        return found[0]

    assert "status" in panel_with(r"sum by \([^)]*status[^)]*\) \(rate\(tinyllm_requests_total")
    for histogram in ("tinyllm_request_duration_seconds", "tinyllm_time_to_first_token_seconds"):
        panel_with(
            rf"histogram_quantile\(0\.5, [^\n]*{histogram}_bucket",
            rf"histogram_quantile\(0\.95, [^\n]*{histogram}_bucket",
        )
    panel_with(r"rate\(tinyllm_generation_tokens_total")
    panel_with(r"tinyllm_requests_running", r"tinyllm_requests_waiting")
    panel_with(r"tinyllm_batch_size")
    panel_with(r"tinyllm_kv_slots_used", r"tinyllm_kv_slots_total")
    panel_with(r"tinyllm_rate_limited_total", r"tinyllm_auth_failures_total")
    panel_with(r"tinyllm_self_consistency_agreement")
    # CPU saturation: CPU seconds per second over the CPUs the server may use.
    panel_with(r"rate\(process_cpu_seconds_total[^\n]*/[^\n]*tinyllm_cpu_cores")
    panel_with(r"process_resident_memory_bytes")
    panel_with(
        r"tinyllm_request_queue_time_seconds_bucket",
        r"tinyllm_request_prefill_time_seconds_bucket",
        r"tinyllm_request_decode_time_seconds_bucket",
    )
    panel_with(r"by \(le, finish_reason\) \(rate\(tinyllm_e2e_request_latency_seconds_bucket")
    panel_with(r"tinyllm_request_prompt_tokens_bucket", r"tinyllm_request_generation_tokens_bucket")
    panel_with(r"tinyllm_request_params_n_bucket", r"tinyllm_request_params_max_tokens_bucket")
    panel_with(r"tinyllm_requests_running", r"tinyllm_sequences_running")
    panel_with(r"tinyllm_build_info")
