"""Helpers shared by the deploy tests: the Dockerfile's instructions, the metric names in PromQL, and real
redis-server and nginx processes for the scale-out tests."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


# --- a small Dockerfile reader --------------------------------------------------------------------


def read_instructions(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # Docker drops comment lines even inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage; stage 0 holds the global ARGs before the first FROM."""
    groups: list[list[tuple[str, str]]] = [[]]
    for keyword, args in read_instructions():
        if keyword == "FROM":
            groups.append([])
        groups[-1].append((keyword, args))
    return groups


def global_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for keyword, arg in stages()[0] if keyword == "ARG")


def expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], text)


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def copies(stage: list[tuple[str, str]]) -> list[tuple[dict[str, str], list[str], str]]:
    """(flags, sources, destination) of each COPY."""
    result = []
    for keyword, args in stage:
        if keyword != "COPY":
            continue
        words = args.split()
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        result.append((flags, paths[:-1], paths[-1]))
    return result


def healthcheck_command() -> list[str]:
    (args,) = [a for keyword, a in stages()[-1] if keyword == "HEALTHCHECK"]
    return json.loads(args[args.index("CMD ") + 4 :])


# --- metric names in the dashboard and the alerts -------------------------------------------------


DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "tinyllm.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yml"
# Series Prometheus makes itself rather than scraping them from the server.
PROMETHEUS_OWN = {"up"}
# Exported only by a server with TINYLLM_REDIS_URL (errors once one happened); tests/deploy/test_scaleout.py
# reads them from replicas sharing a real Redis.
REDIS_ONLY = {"tinyllm_redis_up", "tinyllm_redis_errors_total"}

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
    "inf",
    "nan",
    "Inf",
    "NaN",
    "start",
    "end",
}


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (Grafana's $variables allowed).

    Removes what can hold identifiers that are not metrics (strings, label matchers, ranges, grouping
    label lists), then keeps the identifiers that are not keywords, not function calls and not part of a
    number or a duration.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)
    s = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", s):
        if match.group(0) in _KEYWORDS or s[match.end() :].lstrip().startswith("("):
            continue
        names.add(match.group(0))
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for g in groups for rule in g["rules"]]


# --- real Redis and nginx for the scale-out tests --------------------------------------------------


def require_binary(name: str) -> str:
    """The path of ``name`` (also looked for in the sbin folders); without it the test is skipped, or
    fails under CI (``CI=true``), where scripts/test.sh installs it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {name}; scripts/test.sh does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start on port {port}") from None
            time.sleep(0.05)


class RedisServer:
    """A real ``redis-server`` on a loopback port, without persistence; stop and start it at will."""

    def __init__(self, directory: Path) -> None:
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


NGINX_PROXY_CONF = REPO / "deploy" / "nginx" / "proxy.conf"


@contextmanager
def nginx_proxy(directory: Path, upstream_ports: list[int]) -> Iterator[str]:
    """A real nginx on a free loopback port in front of the given replicas, with the shipped proxy
    settings (deploy/nginx/proxy.conf) and least_conn as in deploy/nginx/nginx.conf. Yields its URL."""
    binary = require_binary("nginx")
    port = free_port()
    temp = "\n".join(
        f"    {kind}_temp_path {directory}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    (directory / "nginx.conf").write_text(
        f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
error_log {directory}/error.log warn;
pid {directory}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
{temp}
    upstream tinyllm {{
        least_conn;
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /metrics {{ return 403; }}
        location / {{ include {NGINX_PROXY_CONF}; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc, "nginx")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
