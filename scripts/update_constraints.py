"""Write constraints.txt: the exact versions of the runtime dependencies (pyproject.toml's, and theirs) as
installed in the running environment. The Dockerfile installs with ``-c constraints.txt``, so a rebuild next
month is the same server; bump deliberately by upgrading the environment and running this again.

    .venv/bin/python scripts/update_constraints.py       # from the repository root

Only runtime dependencies: the dev and train extras are not in the image. Environment markers are evaluated
for the running interpreter (the image's Python: 3.11 on Linux).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = """\
# Exact versions of TinyLLM's runtime dependencies and theirs, as resolved and tested; the Dockerfile installs
# with them (pip install -c constraints.txt). Regenerate: python scripts/update_constraints.py
# torch is pinned without its local label, so "2.13.0+cpu" from PyTorch's CPU index satisfies it.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str], extras: frozenset[str] = frozenset()) -> list[str]:
    """Names of the requirements that apply here (markers evaluated; no extras requested)."""
    from packaging.requirements import Requirement

    names = []
    for text in requirements:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        names.append(canonical(requirement.name))
    return names


def closure(roots: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(name -> installed version, name -> who requires it but is not installed here)."""
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    pending = [(name, "pyproject.toml") for name in roots]
    while pending:
        name, parent = pending.pop()
        if name in versions or name in missing:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing[name] = parent
            continue
        versions[name] = dist.version.split("+")[0]
        pending.extend((child, name) for child in requirement_names(dist.requires or []))
    return versions, missing


def main() -> int:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    versions, missing = closure(requirement_names(project["dependencies"]))
    lines = [f"{name}=={version}" for name, version in sorted(versions.items())]
    # Required by a runtime package but absent where this was written (installed there with --no-deps):
    # left unpinned, and said so.
    notes = [
        f"# not pinned: {name} (required by {parent}; not installed here)" for name, parent in missing.items()
    ]
    (REPO / "constraints.txt").write_text(HEADER + "\n".join(sorted(notes) + lines) + "\n")
    print(f"constraints.txt: {len(lines)} packages (Python {sys.version.split()[0]})")
    for note in notes:
        print(note[2:], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
