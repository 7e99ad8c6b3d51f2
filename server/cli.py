"""``tinyllm serve``: settings from flags and environment, load the checkpoint, run uvicorn.

The checkpoint is loaded before the port is bound so that a missing or corrupt file ends the process at
once with a message naming the file (exit status 1), and a configuration error with exit status 2.

Shutdown on SIGTERM/SIGINT: the app starts draining (new requests get 503, /ready turns 503), streams in
flight may run for ``TINYLLM_SHUTDOWN_GRACE_SECONDS`` before they are cancelled, then the engine stops.
"""

from __future__ import annotations

import logging
import os
import sys

# Only the engine thread runs parallel torch work (it sets its own thread count, model/engine.py). An OpenMP
# team left by another thread (loading, quantizing) made the engine's decode step twice as slow here
# (SmolLM2-135M: 8.4 ms from the main thread, 15-18 ms from a second thread; 9.9 ms with every other thread
# at one). Set before torch loads; an OMP_NUM_THREADS of the operator's wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
from collections.abc import Callable, Sequence
from types import FrameType

import uvicorn
from pydantic import ValidationError

from model.checkpoint import CheckpointError
from server.app import create_app
from server.auth import ConfigError
from server.loading import load_for_serving
from server.request_log import configure_logging
from server.settings import Settings, settings_from_args

logger = logging.getLogger("tinyllm.server")


class _DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the app to stop admitting the moment a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, on_exit_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit_signal = on_exit_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit_signal()
        super().handle_exit(sig, frame)


def serve(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is stopped; returns the process exit status."""
    try:
        settings: Settings = settings_from_args(argv)
    except ValidationError as e:
        print(f"tinyllm serve: invalid settings:\n{e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        logger.info("loading checkpoint", extra={"checkpoint": settings.model})
        checkpoint = load_for_serving(settings.model, settings.max_model_len, settings.cache_dir)
        app = create_app(settings, checkpoint=checkpoint)
    except CheckpointError as e:
        logger.error(f"cannot load the checkpoint: {e}")
        print(f"tinyllm serve: cannot load the checkpoint: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        logger.error(str(e))
        print(f"tinyllm serve: {e}", file=sys.stderr)
        return 2

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        # sse-starlette cancels streams after the grace period; uvicorn's own limit comes just after.
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 2,
        log_level=settings.log_level,
        # The client IP (per-IP limits, logs) comes from X-Forwarded-For only when these proxies send it.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = _DrainingServer(config, app.state.tinyllm.lifecycle.begin_drain)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(serve())
