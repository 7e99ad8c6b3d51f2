"""The Dockerfile and .dockerignore, checked without a Docker engine.

The Dockerfile is parsed (instructions, stages, ENV, COPY, HEALTHCHECK) and held against the rest of the
repository: the files it copies exist and survive .dockerignore, its TINYLLM_* defaults are real server
settings that validate, the torch it installs is the one pyproject.toml pins, and its HEALTHCHECK command
is run for real against a live server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib

from model import native
from server.settings import Settings, env_name
from tests.deploy.support import (
    REPO,
    copies,
    env_of,
    expand,
    global_args,
    healthcheck_command,
    read_instructions,
    stages,
)

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# --- .dockerignore, with Docker's matching rules ----------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match plus "**", as Docker applies it: "*" and "?" stay within one path segment."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def excluded_from_context(path: str) -> bool:
    """True if Docker leaves ``path`` out of the build context: the last rule matching the path or one of
    its parent folders decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in dockerignore_rules():
        if any(regex.match(p) for p in prefixes):
            excluded = not negated
    return excluded


# --- the tests --------------------------------------------------------------------------------------


def test_builds_in_stages_from_python_311_slim():
    froms = [
        expand(args, global_args()).split() for keyword, args in read_instructions() if keyword == "FROM"
    ]
    assert len(froms) >= 2, "multi-stage: a builder stage and a runtime stage"
    assert all(words[0] == "python:3.11-slim" for words in froms), froms
    runtime = stages()[-1]
    assert any(
        flags.get("from") == "builder" and sources == ["/opt/venv"] for flags, sources, _ in copies(runtime)
    ), "the runtime stage takes the virtual environment from the builder stage"


def test_torch_comes_from_the_cpu_index_at_the_pyproject_pin():
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_pin,) = [p for p in pins if re.match(r"torch\s*==", p)]
    builder = stages()[1]
    variables = {**global_args(), **dict(a.split("=", 1) for k, a in builder if k == "ARG" and "=" in a)}
    torch_installs = [expand(a, variables) for k, a in builder if k == "RUN" and "torch==" in a]
    assert len(torch_installs) == 1
    assert f"--index-url {CPU_INDEX}" in torch_installs[0]
    assert f'"torch=={torch_pin.split("==")[1].strip()}"' in torch_installs[0], (torch_installs, torch_pin)


def test_runtime_stage_is_small():
    builder, runtime = stages()[1], stages()[-1]
    assert env_of(builder).get("PIP_NO_CACHE_DIR") == "1", "pip keeps no wheel cache in a layer"
    for keyword, args in runtime:
        if keyword == "RUN":
            assert not re.search(r"\b(apt-get|apt|pip)\s+install\b", args), (
                f"install in the final stage: {args}"
            )
    sources = [s for flags, srcs, _ in copies(runtime) if "from" not in flags for s in srcs]
    assert sources == ["checkpoints/tinyllm-default/"], "only the checkpoint comes from the build context"


def test_runs_as_a_non_root_user():
    users = [args for keyword, args in stages()[-1] if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_copied_files_exist_and_are_in_the_build_context():
    for stage in stages()[1:]:
        for flags, sources, _ in copies(stage):
            if "from" in flags:
                continue
            for source in sources:
                path = REPO / source
                assert path.exists(), f"COPY {source}: missing from the repository"
                files = (
                    [path]
                    if path.is_file()
                    else [f for f in path.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
                )
                assert files, f"COPY {source}: empty folder"
                for file in files:
                    relative = file.relative_to(REPO).as_posix()
                    assert not excluded_from_context(relative), (
                        f"{relative} is copied but .dockerignore drops it"
                    )


def test_dockerignore_keeps_secrets_tests_and_other_checkpoints_out():
    for path in (
        ".env",
        ".git/HEAD",
        "tests/deploy/test_docker.py",
        ".venv/bin/python",
        "checkpoints/my-model/model.safetensors",
        "server/__pycache__/app.cpython-311.pyc",
        "benchmarks/bench_engine.py",
        "data/corpus.txt",
    ):
        assert excluded_from_context(path), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "server/app.py", "checkpoints/tinyllm-default/config.json"):
        assert not excluded_from_context(path), path


def test_env_defaults_are_server_settings_that_validate():
    env = env_of(stages()[-1])
    tinyllm = {k: v for k, v in env.items() if k.startswith("TINYLLM_")}
    known = {env_name(field): field for field in Settings.model_fields}
    unknown = set(tinyllm) - set(known) - set(native.ENVIRONMENT)
    assert not unknown, f"neither server settings nor the int8 kernel's variables: {unknown}"
    settings = Settings(**{known[k]: v for k, v in tinyllm.items() if k in known})
    assert settings.host == "0.0.0.0"
    assert settings.port == Settings.model_fields["port"].default
    exposed = [int(p.split("/")[0]) for k, a in stages()[-1] if k == "EXPOSE" for p in a.split()]
    assert exposed == [settings.port]
    copied_to = [dest.rstrip("/") for flags, _, dest in copies(stages()[-1]) if "from" not in flags]
    assert settings.model in copied_to, "TINYLLM_MODEL names the folder the checkpoint is copied to"


def test_command_is_the_installed_console_script():
    (cmd,) = [json.loads(a) for k, a in stages()[-1] if k == "CMD"]
    assert cmd == ["tinyllm", "serve"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tinyllm" in scripts


def test_healthcheck_asks_ready_with_python_not_curl():
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "/ready" in command[2] and "TINYLLM_PORT" in command[2]


def run_healthcheck(command: list[str], port: int, path: str = "/ready") -> subprocess.CompletedProcess:
    """Run a container healthcheck command here: the image's python is this interpreter."""
    argv = [sys.executable, *command[1:-1], command[-1].replace("/ready", path)]
    env = {**os.environ, "TINYLLM_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as s:  # a port that was free a moment ago, and that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_healthcheck(healthcheck_command(), port).returncode != 0


def test_healthcheck_passes_on_a_ready_server_and_fails_on_an_error_status(live_server):
    command = healthcheck_command()
    result = run_healthcheck(command, live_server.port)
    assert result.returncode == 0, result.stderr
    # The same command on a route that answers 401 without a key: a non-2xx status must fail the check.
    assert run_healthcheck(command, live_server.port, path="/v1/models").returncode != 0


def test_the_image_builds_the_int8_kernel_and_the_server_loads_that_build():
    builder, runtime = stages()[1], stages()[-1]
    builds = [a for k, a in builder if k == "RUN" and "load_kernel()" in a]
    assert len(builds) == 1 and "assert load_kernel()" in builds[0], (
        "the kernel build must fail the image build"
    )
    assert "g++" in builds[0]
    # Headers are removed only after the kernel is built (same RUN, after the build command).
    assert builds[0].index("load_kernel()") < builds[0].index("torch/include")
    path = env_of(runtime)["TINYLLM_NATIVE_PATH"]
    assert (
        path.startswith("/opt/venv/")
        and f"cp /tmp/kernels/tinyllm_native/tinyllm_native.so {path.rsplit('/', 1)[0]}/" in builds[0]
    )
