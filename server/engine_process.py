"""Where the engine runs: a thread of the server's process (the default), or a process of its own
(``TINYLLM_ENGINE_PROCESS=true``), started here and driven by :func:`model.engine_core.serve`.

The engine process loads the checkpoint itself (the same directory, checked by the API process first), and
builds the requests' constraints from their recipes: a grammar compiled again from its source (cached, as in
the API process, which compiled it first to answer a bad schema with a 400), the calculator guide from the
question. Its log lines go to stderr in the server's format.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from typing import Any

from model.checkpoint import LoadedCheckpoint
from model.engine import Engine, EngineConfig
from model.engine_client import EngineClient, connect
from model.engine_core import ConstraintBuilder, serve
from model.inference import prepare_for_serving
from model.sampling import TokenConstraint
from reasoning.arithmetic_guide import ArithmeticGuide, GuideVocabulary
from server.constrained_output import grammar_compiler
from server.loading import load_for_serving
from server.request_log import configure_logging
from server.settings import Settings

logger = logging.getLogger("tinyllm.server")


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_batch=settings.max_batch,
        max_queue=settings.max_queue,
        prefix_cache_entries=settings.prefix_cache_entries,
        num_threads=settings.threads or None,
    )


def build_engine(loaded: LoadedCheckpoint, config: EngineConfig, quantize: str) -> Engine:
    """The engine for ``loaded`` (not started): a fused copy of the network laid out for decoding (int8 or
    fp32); ``loaded.model`` stays as loaded."""
    precision = "int8" if quantize == "int8" else "fp32"
    return Engine(
        prepare_for_serving(loaded.model, precision),
        config,
        eos_token_ids=list(loaded.tokenizer.stop_token_ids),
    )


def start_engine(settings: Settings, loaded: LoadedCheckpoint) -> Engine | EngineClient:
    """Start the engine where ``settings.engine_process`` says; blocks until it can take requests."""
    if not settings.engine_process:
        engine = build_engine(loaded, engine_config(settings), settings.quantize)
        engine.start()
        return engine
    # spawn, not fork: the API process has threads (and may have an OpenMP pool) that a fork would copy
    # half-way through whatever they were doing.
    spawn = multiprocessing.get_context("spawn")
    requests_in, requests_out = spawn.Pipe(duplex=False)  # (reader, writer)
    outputs_in, outputs_out = spawn.Pipe(duplex=False)
    process = spawn.Process(
        target=_main,
        args=(
            str(loaded.path),
            settings.max_model_len,
            settings.cache_dir,
            engine_config(settings),
            settings.quantize,
            settings.log_level,
            requests_in,
            outputs_out,
        ),
        name="tinyllm-engine",
        daemon=True,
    )
    return connect(process, requests_out, outputs_in, child_ends=(requests_in, outputs_out))


def constraint_builder(tokenizer: Any, vocab_size: int) -> ConstraintBuilder:
    """Builds the constraints of the engine process from their recipes; what each kind needs of the
    tokenizer is built at its first use and kept (the grammar compiler as the API process keeps its own)."""
    guide_vocabulary = functools.cache(lambda: GuideVocabulary.of(tokenizer))

    def build(recipe: tuple[str, tuple[Any, ...]]) -> TokenConstraint:
        kind, args = recipe
        if kind == "grammar":
            compiler = grammar_compiler(tokenizer, vocab_size)
            return compiler.constraint(compiler.compile(*args))
        if kind == "arithmetic_guide":
            return ArithmeticGuide(guide_vocabulary(), *args)
        raise ValueError(f"no engine-side builder for constraints of kind {kind!r}")

    return build


def _main(
    checkpoint: str,
    max_model_len: int,
    cache_dir: str | None,
    config: EngineConfig,
    quantize: str,
    log_level: str,
    requests: Connection,
    outputs: Connection,
) -> None:
    """The engine process: load the checkpoint, serve the API process until it asks to stop."""
    # Shutdown is the API process's to run (it drains, then tells us): a Ctrl-C reaches the whole process
    # group, and the engine must not die under the streams the API is letting finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(log_level)
    loaded = load_for_serving(checkpoint, max_model_len, cache_dir)
    engine = build_engine(loaded, config, quantize)
    serve(engine, requests, outputs, constraint_builder(loaded.tokenizer, engine.vocab_size))
    logger.info("engine process stopped")
