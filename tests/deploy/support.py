"""Readers shared by the deploy tests: the Dockerfile's instructions and the metric names in PromQL."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

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
