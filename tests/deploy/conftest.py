"""Fixtures of the deploy tests: one live server for the tests that check files against a running one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.support import LiveServer, run_server


@pytest.fixture(scope="module")
def live_server(server_checkpoint: Path) -> Iterator[LiveServer]:
    """A real server with the default served model name ("tinyllm") and key ``API_KEY``, one per module."""
    with run_server(server_checkpoint, served_model_name="tinyllm") as live:
        yield live
