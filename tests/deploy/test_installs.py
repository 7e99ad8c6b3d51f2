"""How TinyLLM gets installed: the constraints file the image installs from agrees with pyproject.toml, the
supported Pythons, the install scripts choose the CPU torch wheel by themselves, and (slow) the lowest
dependency versions pyproject.toml allows really install and serve (scripts/check_floors.sh)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.deploy.support import read_instructions

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, op, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)(==)(\S+)", line.strip()).groups()
        assert canonical(name) not in pins, f"{name} pinned twice"
        pins[canonical(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency_inside_its_range():
    pins = constraints()
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]} is outside {requirement.specifier}"


def test_constraints_hold_no_development_packages():
    # A test tool may be pinned only where a runtime package needs it too (pyyaml: gguf reads YAML).
    pins = constraints()
    dev = {canonical(Requirement(r).name) for r in PROJECT["optional-dependencies"]["dev"]}
    runtime = {canonical(Requirement(r).name) for r in PROJECT["dependencies"]}
    needed = set()
    for name in pins:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        needed |= {canonical(Requirement(r).name) for r in requires if "extra ==" not in r}
    stray = (dev - runtime - needed) & set(pins)
    assert not stray, sorted(stray)


def test_the_image_installs_torch_and_the_project_with_the_constraints():
    runs = [args for keyword, args in read_instructions() if keyword == "RUN" and "pip install" in args]
    installs = [args for args in runs if "torch==" in args or re.search(r"pip install\b.*\s\.(\s|$)", args)]
    assert len(installs) == 2, installs
    copied = [
        args for keyword, args in read_instructions() if keyword == "COPY" and "constraints.txt" in args
    ]
    assert copied, "the Dockerfile copies constraints.txt"
    destination = copied[0].split()[-1]
    for args in installs:
        assert f"-c {destination}" in args, args
    assert "!constraints.txt" in (REPO / ".dockerignore").read_text().splitlines()


def test_python_3_11_to_3_13_are_supported():
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert all(v in allowed for v in ("3.11.0", "3.12.0", "3.13.0", "3.13.9"))
    assert "3.10.12" not in allowed
    assert PROJECT.get("classifiers") is None or all("3.10" not in c for c in PROJECT["classifiers"])


@pytest.mark.parametrize("script", ["serve.sh", "test.sh", "check_floors.sh"])
def test_install_scripts_let_the_torch_helper_choose_the_index(script):
    text = (REPO / "scripts" / script).read_text()
    assert ". scripts/torch_index.sh" in text
    # Every install that can pull torch (a --no-deps install of the project alone cannot).
    installs = [
        line for line in text.splitlines() if re.search(r"pip install\b", line) and "--no-deps" not in line
    ]
    assert installs and all("$(torch_index_args " in line for line in installs), installs
    assert "download.pytorch.org" not in text  # one place decides: scripts/torch_index.sh


def torch_index_args(python: Path, **env: str) -> str:
    result = subprocess.run(
        ["bash", "-c", f'. scripts/torch_index.sh && torch_index_args "{python}"'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_torch_helper_adds_nothing_when_torch_is_installed():
    assert torch_index_args(Path(sys.executable)) == ""


@pytest.mark.skipif(
    (platform.system(), platform.machine()) != ("Linux", "x86_64"), reason="the CPU index is for Linux x86-64"
)
def test_the_torch_helper_adds_the_cpu_index_on_a_machine_with_no_torch_wheel(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    # No pip configuration, no local wheel directory: a fresh user's machine.
    fresh = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "PIP_NO_INDEX": "", "PIP_INDEX_URL": ""}
    assert torch_index_args(python, **fresh) == f"--extra-index-url {CPU_INDEX}"
    assert torch_index_args(python, **fresh, TINYLLM_TORCH_INDEX="none") == ""


@pytest.mark.slow
def test_the_lowest_allowed_versions_install_and_serve():
    """Minutes: a virtual environment with every runtime dependency at its floor, then a real server."""
    result = subprocess.run(
        ["bash", "scripts/check_floors.sh"], cwd=REPO, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "check_floors: the lowest allowed versions install and serve" in result.stdout


def test_the_wheel_carries_the_kernel_sources(tmp_path):
    """A non-editable install (the Docker image's) compiles model/kernels/ from the installed package."""
    import zipfile

    from model.native import SOURCES

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = {f"model/kernels/{path.name}" for path in SOURCES} | {"model/kernels/kernels.h"}
    assert needed <= names, f"missing from the wheel: {sorted(needed - names)}"
