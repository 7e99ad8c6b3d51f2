"""deploy/kubernetes/, checked offline: every manifest against the Kubernetes API schemas
(``kubernetes-validate``, no cluster), and the manifests against each other and the server's settings."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from server.settings import Settings, env_name

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
SETTINGS_ENV = {env_name(field): field for field in Settings.model_fields}
UVICORN_MARGIN_SECONDS = 2  # server/cli.py: uvicorn's graceful-shutdown timeout is the grace + 2 s


def manifests() -> list[dict]:
    docs = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def one(kind: str, name: str | None = None) -> dict:
    (found,) = [
        d for d in manifests() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return found


def container() -> dict:
    (main,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return main


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_is_valid_for_the_kubernetes_api(doc: dict):
    kubernetes_validate.validate(doc, latest_version(), strict=True)  # raises on any unknown or bad field


def test_kustomization_applies_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_settings_in_the_configmap_and_secret_are_real_and_valid():
    config = one("ConfigMap", "tinyllm")["data"]
    secret = one("Secret", "tinyllm-keys")["stringData"]
    for name, value in {**config, **secret}.items():
        assert name in SETTINGS_ENV, name
        Settings(**{SETTINGS_ENV[name]: value})  # raises if the value does not validate
    sources = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container()["envFrom"]}
    assert sources == {"tinyllm", "tinyllm-keys"}


def test_probes_ask_ready_and_health_on_the_server_port():
    main = container()
    config = one("ConfigMap", "tinyllm")["data"]
    (port,) = main["ports"]
    assert port["containerPort"] == int(config["TINYLLM_PORT"]) and port["name"] == "http"
    assert main["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/health"


def test_termination_grace_covers_the_prestop_and_the_drain():
    spec = one("Deployment")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(one("ConfigMap", "tinyllm")["data"]["TINYLLM_SHUTDOWN_GRACE_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + UVICORN_MARGIN_SECONDS


def test_threads_match_the_cpu_request_and_memory_has_a_limit():
    resources = container()["resources"]
    assert int(one("ConfigMap", "tinyllm")["data"]["TINYLLM_THREADS"]) == int(resources["requests"]["cpu"])
    mebibytes = {
        k: int(re.fullmatch(r"(\d+)Mi", v).group(1))
        for k, v in (("request", resources["requests"]["memory"]), ("limit", resources["limits"]["memory"]))
    }
    assert mebibytes["request"] <= mebibytes["limit"]


def test_service_hpa_and_budget_point_at_the_deployment():
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert one("Service", "tinyllm")["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert one("Service", "tinyllm")["spec"]["ports"][0]["targetPort"] == "http"


def test_the_redis_url_names_the_redis_service():
    url = one("ConfigMap", "tinyllm")["data"]["TINYLLM_REDIS_URL"]
    host, port = re.fullmatch(r"redis://([\w-]+):(\d+)/\d+", url).groups()
    service = one("Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert one("StatefulSet", host)["spec"]["serviceName"] == host
