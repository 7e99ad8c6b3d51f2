"""Loading a checkpoint for serving: :func:`model.checkpoint.load_checkpoint` plus the checks that make a bad
checkpoint fail at start-up, with one line naming the file, instead of at the first request with a 500.

``load_checkpoint`` names the file for the corruptions it knows (missing files, truncated safetensors or
JSON, a broken SentencePiece model). What it does not check, and the server relies on:

* every JSON file of the checkpoint is a JSON *object* (``[]`` in ``config.json`` is valid JSON);
* the sampling defaults of ``generation_config.json`` are numbers in range (they become every request's
  defaults: a ``"temperature": "hot"`` would fail each request that leaves it out);
* the chat template renders (it is compiled lazily, so a syntax error would surface per request);
* the network can generate one token through the engine (a config with 0 heads or -1 layers builds, then
  fails in the KV cache or the forward pass).

Anything else that goes wrong while loading is still reported as a :class:`CheckpointError` naming the
directory, so ``tinyllm serve`` prints one line and exits 1 rather than a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from model.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from model.engine import Engine, EngineConfig
from model.model_cache import resolve_model
from model.sampling import SamplingParams
from server.settings import DEFAULT_MAX_MODEL_LEN

JSON_FILES = ("config.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json")

# The checks of the generation_config.json keys that become request defaults: one per key of
# server.protocol.CHECKPOINT_SAMPLING_KEYS.
GENERATION_CONFIG_CHECKS = {
    "temperature": ("a number >= 0", lambda v: v >= 0),
    "top_p": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "min_p": ("a number in [0, 1]", lambda v: 0 <= v <= 1),
    "repetition_penalty": ("a number > 0", lambda v: v > 0),
    "top_k": ("an integer", lambda v: v == int(v)),
}


def _check_json_objects(directory: Path) -> None:
    for name in JSON_FILES:
        path = directory / name
        if not path.is_file():
            continue  # load_checkpoint says which files are required
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{path}: expected a JSON object, found {type(value).__name__}")


# Our extension of generation_config.json: a reasoning checkpoint thinks unless a request says otherwise.
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


def _check_generation_defaults(generation_config: dict[str, Any], path: Path) -> None:
    effort = generation_config.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise CheckpointError(
            f"{path}: reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, found {str(effort)[:40]!r}"
        )
    for key, (wanted, ok) in GENERATION_CONFIG_CHECKS.items():
        value = generation_config.get(key)
        if value is None:
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not (number and ok(value)):
            raise CheckpointError(f"{path}: {key} must be {wanted}, found {str(value)[:40]!r}")


def _smoke_test(loaded: LoadedCheckpoint, directory: Path) -> None:
    """Render the chat template and generate one token, through the same code paths requests take."""
    try:
        prompt = loaded.tokenizer.encode_chat([{"role": "user", "content": "hello"}])
    except Exception as e:
        raise CheckpointError(
            f"{directory / 'tokenizer_config.json'}: the chat template does not render "
            f"({type(e).__name__}: {e})"
        ) from None
    engine = None
    try:
        # One thread: a two-thread OpenMP team started here outlives this engine as a parked thread, and
        # the serving engine's decode then ran at half speed (see tests/server/test_loading.py).
        engine = Engine(
            loaded.model,
            EngineConfig(max_batch=1, max_queue=1, max_seq_len=len(prompt) + 1, num_threads=1),
            eos_token_ids=list(loaded.tokenizer.stop_token_ids),
        )
        engine.start()
        engine.generate(prompt, SamplingParams(temperature=0.0, max_tokens=1))
    except Exception as e:
        raise CheckpointError(
            f"{directory / 'config.json'}: the model built from it cannot generate ({type(e).__name__}: {e})"
        ) from None
    finally:
        if engine is not None:
            engine.shutdown(timeout=1.0)


def load_for_serving(
    model: str | Path, max_model_len: int = 0, cache_dir: str | Path | None = None
) -> LoadedCheckpoint:
    """Load ``model`` (a checkpoint directory, or a .gguf file imported into the cache once) for sequences
    of at most ``max_model_len`` tokens (0: the model's context, capped at ``DEFAULT_MAX_MODEL_LEN``) and
    check that it can serve; raises :class:`CheckpointError` naming the file."""
    try:
        directory = resolve_model(model, cache_dir)
    except OSError as e:
        raise CheckpointError(f"{model}: cannot import into the cache ({e})") from None
    if directory.is_dir():
        _check_json_objects(directory)
    try:
        loaded = load_checkpoint(directory, max_len=max_model_len or DEFAULT_MAX_MODEL_LEN)
    except CheckpointError:
        raise
    except Exception as e:  # an inconsistency load_checkpoint does not name; still one line, not a traceback
        raise CheckpointError(
            f"{directory}: unexpected error while loading ({type(e).__name__}: {e})"
        ) from None
    _check_generation_defaults(loaded.generation_config, directory / "generation_config.json")
    _smoke_test(loaded, directory)
    return loaded
