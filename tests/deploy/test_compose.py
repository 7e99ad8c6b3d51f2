"""docker-compose.yml and .env.example, checked without a Docker engine.

The compose file is read as YAML, its ${VAR} interpolation resolved the way Compose does, and every file,
port and variable it names is held against the repository, the server's settings and the Prometheus and
Grafana configuration it mounts. Where the legacy `docker-compose` (Debian package) is installed, its
`config` command validates the file against the Compose schema too; it needs no engine for that.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from server.settings import Settings, env_name
from tests.deploy.support import healthcheck_command
from tests.support import require_binary

REPO = Path(__file__).resolve().parents[2]
SETTINGS_ENV = {env_name(field): field for field in Settings.model_fields}
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def env_example() -> dict[str, str]:
    """The assignments of .env.example (comments and blank lines skipped)."""
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; an unset required variable raises."""

    def replace(match: re.Match[str]) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VAR.sub(replace, text)


def resolved_compose(env: dict[str, str]) -> dict:
    return yaml.safe_load(interpolate((REPO / "docker-compose.yml").read_text(), env))


def environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    """(host path relative to the repository, container path) of each bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def container_ports(service: dict) -> list[int]:
    return [int(str(p).split(":")[-1].split("/")[0]) for p in service.get("ports", [])]


# --- the tests --------------------------------------------------------------------------------------


def test_stack_has_api_nginx_redis_prometheus_and_grafana():
    services = compose()["services"]
    assert {"api", "nginx", "redis", "prometheus", "grafana"} <= set(services)
    assert environment(services["api"])["TINYLLM_REDIS_URL"] == "redis://redis:6379/0"
    build = services["api"]["build"]
    assert build["context"] == "."
    assert (REPO / build.get("dockerfile", "Dockerfile")).is_file()


def test_every_bind_mount_exists_with_default_settings():
    services = resolved_compose(env_example())["services"]
    for name, service in services.items():
        for source, target in bind_mounts(service):
            assert (REPO / source).exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_api_ports_agree_with_the_server_settings():
    api = compose()["services"]["api"]
    default_port = Settings.model_fields["port"].default
    env = environment(api)
    assert int(env["TINYLLM_PORT"]) == default_port
    assert env["TINYLLM_HOST"] == "0.0.0.0"
    # Replicas publish nothing (so --scale works); nginx publishes the API port.
    assert container_ports(api) == [] and [int(p) for p in api["expose"]] == [default_port]
    assert container_ports(compose()["services"]["nginx"]) == [default_port]
    # The image's HEALTHCHECK, which tests/deploy/test_docker.py runs against a live server.
    assert api["healthcheck"]["test"] == ["CMD", *healthcheck_command()]


def test_tinyllm_variables_are_real_settings_and_all_reach_the_container():
    text = (REPO / "docker-compose.yml").read_text() + (REPO / ".env.example").read_text()
    used = set(re.findall(r"\bTINYLLM_\w+", text))
    assert used <= set(SETTINGS_ENV), f"not server settings: {sorted(used - set(SETTINGS_ENV))}"
    passed = set(environment(compose()["services"]["api"]))
    assert set(SETTINGS_ENV) <= passed, (
        f"settings that cannot be set from .env (add them to the api environment): {sorted(set(SETTINGS_ENV) - passed)}"
    )


def test_env_example_sets_every_required_variable_and_only_used_ones():
    text = (REPO / "docker-compose.yml").read_text()
    required = {name for name, kind, _ in _VAR.findall(text) if kind == "?"}
    referenced = {name for name, _, _ in _VAR.findall(text)}
    example = env_example()
    assert {"TINYLLM_API_KEYS", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert all(example.get(name) for name in required), f"{required - set(example)} missing from .env.example"
    assert set(example) <= referenced | set(SETTINGS_ENV), (
        f"unused: {set(example) - referenced - set(SETTINGS_ENV)}"
    )
    resolved = resolved_compose(example)  # resolves without error: cp .env.example .env is enough
    assert environment(resolved["services"]["api"])["TINYLLM_API_KEYS"] == example["TINYLLM_API_KEYS"]
    with pytest.raises(KeyError, match="TINYLLM_API_KEYS"):
        resolved_compose({k: v for k, v in example.items() if k != "TINYLLM_API_KEYS"})


def test_env_example_documents_the_server_defaults():
    documented = re.findall(r"^#\s*(TINYLLM_\w+)=(\S+)\s*$", (REPO / ".env.example").read_text(), re.M)
    assert len(documented) >= 15
    for name, value in documented:
        field = SETTINGS_ENV[name]
        assert Settings(**{field: value}).model_dump()[field] == Settings.model_fields[field].default, name


def test_nginx_balances_least_connections_without_buffering_and_hides_metrics():
    nginx = compose()["services"]["nginx"]
    mounts = dict((target, REPO / source) for source, target in bind_mounts(nginx))
    config = mounts["/etc/nginx/nginx.conf"].read_text()
    upstream = re.search(r"upstream tinyllm \{(.*?)\}", config, re.S).group(1)
    assert "least_conn;" in upstream and "server api:8000 resolve;" in upstream
    assert re.search(r"location = /metrics \{\s*return 403;", config)
    included = re.search(r"include (\S+);", config).group(1)
    proxy = (mounts[str(Path(included).parent)] / Path(included).name).read_text()
    for directive in ("proxy_buffering off;", "proxy_read_timeout 600s;", "proxy_http_version 1.1;"):
        assert directive in proxy


def test_ports_are_published_on_loopback_by_default():
    services = resolved_compose(env_example())["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_shutdown_grace_fits_before_docker_kills_the_server():
    period = compose()["services"]["api"]["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", period).group(1))
    assert seconds > Settings.model_fields["shutdown_grace_seconds"].default


def test_prometheus_gets_its_config_and_scrapes_the_api_service():
    services = compose()["services"]
    prometheus = services["prometheus"]
    mounts = dict((target, source) for source, target in bind_mounts(prometheus))
    flags = dict(arg.split("=", 1) for arg in prometheus["command"])
    config_path = Path(flags["--config.file"])
    host_dir = REPO / mounts[str(config_path.parent)]
    config = yaml.safe_load((host_dir / config_path.name).read_text())
    for rule_file in config["rule_files"]:
        assert (host_dir / rule_file).is_file(), rule_file
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "tinyllm"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # DNS service discovery of every replica of the api service, on the port it listens on.
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["api"] and discovery["type"] == "A"
    assert str(discovery["port"]) in [str(p) for p in services["api"]["expose"]]
    assert container_ports(prometheus) == [9090]


def test_grafana_gets_its_provisioning_dashboards_and_datasource():
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = dict((target, REPO / source) for source, target in bind_mounts(grafana))
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "tinyllm.yml").read_text())["providers"]
    dashboards_dir = mounts[provider["options"]["path"]]
    assert list(dashboards_dir.glob("*.json")), "the provider's folder holds the dashboard"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (mounts[str(Path(home).parent)] / Path(home).name).is_file()
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus" and url.port in container_ports(services["prometheus"])


def test_compose_validates_with_docker_compose_config(tmp_path):
    compose = require_binary("docker-compose", "apt-get install docker-compose")
    # --env-file, and no inherited TINYLLM_* from this shell: the result depends on the files only.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYLLM_", "GRAFANA_", "COMPOSE_"))}

    def config(env_file: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                compose,
                "--project-directory",
                str(REPO),
                "-f",
                str(REPO / "docker-compose.yml"),
                "--env-file",
                str(env_file),
                "config",
            ],
            env=base_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    env_file = tmp_path / "settings.env"
    env_file.write_text((REPO / ".env.example").read_text() + "TINYLLM_MAX_BATCH=8\n")
    result = config(env_file)
    assert result.returncode == 0, result.stderr
    api = yaml.safe_load(result.stdout)["services"]["api"]
    assert environment(api)["TINYLLM_MAX_BATCH"] == "8", "a setting in .env reaches the container"

    no_key = tmp_path / "no-key.env"
    no_key.write_text("GRAFANA_ADMIN_PASSWORD=x\n")
    result = config(no_key)
    assert result.returncode != 0 and "TINYLLM_API_KEYS" in result.stderr
