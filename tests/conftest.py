"""Fixtures shared by every test folder. Checkpoints are built with the project's own code at test time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model.tokenizer import Tokenizer
from tests.server.support import CONTEXT, LiveServer, run_server
from tests.support import make_checkpoint, make_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_path: Path) -> Path:
    """A small random-weight checkpoint directory (GQA, tied embeddings, 256-token context)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), tiny_tokenizer_path)


@pytest.fixture(scope="session")
def server_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_path: Path) -> Path:
    """A tiny random-weight checkpoint (tokenizer trained on English + Chinese text) with a 1024 context."""
    return make_checkpoint(
        tmp_path_factory.mktemp("server-ckpt"), tiny_tokenizer_path, seed=1, max_position_embeddings=CONTEXT
    )


@pytest.fixture(scope="session")
def server_tokenizer(server_checkpoint: Path) -> Tokenizer:
    return Tokenizer.from_directory(server_checkpoint)


@pytest.fixture(scope="module")
def live_server(server_checkpoint: Path) -> Iterator[LiveServer]:
    """A real server with the default served model name ("tinyllm") and key ``API_KEY``, one per module."""
    with run_server(server_checkpoint, served_model_name="tinyllm") as live:
        yield live
