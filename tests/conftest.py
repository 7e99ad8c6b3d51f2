"""Shared fixtures. Checkpoints are built with the project's own code at test time."""

from __future__ import annotations

import pytest

from tests.fixtures_model import make_checkpoint, make_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_tokenizer_path):
    """A small random-weight checkpoint directory (GQA, tied embeddings, 256-token context)."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), tiny_tokenizer_path)


# Server test fixtures: a checkpoint with a 1024 context, its tokenizer, and ``live_server`` (a real uvicorn
# on a loopback port serving it as "tinyllm", key ``tests.server_fixtures.API_KEY``; one per module).
from tests.server_fixtures import live_server, server_checkpoint, server_tokenizer  # noqa: E402, F401
