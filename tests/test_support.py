"""tests/support.py's require_binary: a missing program skips a test on a developer's machine and fails it
in CI, so a CI machine without promtool, prometheus or docker-compose cannot pass by skipping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import require_binary

REPO = Path(__file__).resolve().parents[1]
MISSING = "tinyllm-no-such-program"


def test_a_present_program_is_found():
    assert require_binary("sh", "apt-get install dash") == shutil.which("sh")


def test_a_missing_program_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_binary(MISSING, "nowhere")


@pytest.mark.parametrize("value", ["true", "TRUE"])
def test_a_missing_program_fails_in_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=f"{MISSING} is not installed .*CI=true"):
        require_binary(MISSING, "nowhere")


def test_ci_run_sets_ci_before_running_the_tests():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "export CI=true" in lines
    assert lines.index("export CI=true") < next(
        i for i, line in enumerate(lines) if "scripts/test.sh" in line
    )
