"""Server configuration: one settings object, filled from ``TINYLLM_*`` environment variables and CLI flags.

Every field is both an environment variable (``TINYLLM_MAX_BATCH=8``) and a flag of ``tinyllm serve``
(``--max-batch 8``); a flag wins over the environment, the environment over the default. deploy/ builds on
these names, so they are a contract: add fields, do not rename them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The shipped checkpoint, next to the packages in the repository (and at the same place in the image).
DEFAULT_MODEL_DIR = str(Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default")
# Default cap on prompt + completion tokens. Every slot preallocates its KV cache for this many positions:
# SmolLM2-135M (30 layers, 3 KV heads of 64) needs 45 KiB per position in float32, so its 8192-token context
# would be 360 MiB per slot, 5.6 GiB for 16 slots; 2048 keeps it at 1.4 GiB. Prefill of a 2048-token prompt
# already takes seconds on a CPU, so longer prompts are rare here. TINYLLM_MAX_MODEL_LEN raises it.
DEFAULT_MAX_MODEL_LEN = 2048


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TINYLLM_", extra="ignore", validate_default=True)

    model: str = Field(
        DEFAULT_MODEL_DIR,
        description="Checkpoint directory or .gguf file to serve (a GGUF is imported once).",
    )
    served_model_name: str | None = Field(
        None,
        min_length=1,
        # TINYLLM_MODEL_NAME is accepted too (the name the docs of real-model serving use).
        validation_alias=AliasChoices("served_model_name", "TINYLLM_SERVED_MODEL_NAME", "TINYLLM_MODEL_NAME"),
        description="Model id clients put in `model` (default: the checkpoint's directory name; tinyllm for "
        "the shipped model). Also TINYLLM_MODEL_NAME.",
    )
    max_model_len: int = Field(
        0,
        ge=0,
        description=f"Longest prompt + completion in tokens; sizes the KV cache (0 = the model's context, "
        f"at most {DEFAULT_MAX_MODEL_LEN}).",
    )
    cache_dir: str | None = Field(
        None, description="Where GGUF files are imported (default $TINYLLM_CACHE_DIR or ~/.cache/tinyllm)."
    )
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 = any free port).")
    # SecretStr: printing or logging the settings object never shows the keys.
    api_keys: SecretStr = Field(SecretStr(""), description="Comma-separated bearer API keys.")
    api_keys_file: str | None = Field(
        None, description='JSON file {"keys": [{"key", "name", "rpm", "tpm"}]}: named keys with own limits.'
    )
    auth_disabled: bool = Field(False, description="Serve without authentication (local use only).")
    quantize: Literal["int8", "none"] = Field(
        "int8", description="Dynamic int8 quantization of Linear layers."
    )
    max_batch: int = Field(16, ge=1, le=1024, description="Engine slots: sequences decoded together.")
    max_queue: int = Field(64, ge=0, description="Requests waiting for a slot before 503.")
    prefix_cache_entries: int = Field(
        4,
        ge=0,
        le=64,
        description="Recent prompts (and their completions) kept in spare KV slots, so a request that starts "
        "the same way (a chat's next turn, a shared system prompt) skips those tokens (0 = off).",
    )
    threads: int = Field(0, ge=0, description="Torch CPU threads (0 = torch default).")
    engine_process: bool = Field(
        False,
        description="Run the engine in its own process (the API process then only parses, streams and "
        "detokenizes; docs/performance.md measures both).",
    )
    max_tokens: int = Field(1024, ge=1, description="Largest max_tokens a request may ask for.")
    max_n: int = Field(8, ge=1, description="Largest n (choices per request).")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body; larger gets 413.")
    body_read_timeout_seconds: float = Field(
        30.0, ge=0, description="A client that stops sending its request body this long gets 408 (0 = never)."
    )
    rate_limit_rpm: int = Field(0, ge=0, description="Requests per minute per key (0 = unlimited).")
    rate_limit_tpm: int = Field(
        0, ge=0, description="Prompt + completion tokens per minute per key (0 = unlimited)."
    )
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="Log level."
    )
    log_prompts: bool = Field(
        False, description="Also log prompts and completions (off: they may be private)."
    )
    docs_enabled: bool = Field(True, description="Serve /docs and /openapi.json.")
    shutdown_grace_seconds: float = Field(
        20.0,
        ge=0,
        description="On shutdown, how long in-flight requests may finish before they are cancelled.",
    )
    keepalive_seconds: float = Field(15.0, ge=0, description="SSE keep-alive comment interval (0 = off).")
    reasoning_samples_low: int = Field(
        1, ge=1, description="Self-consistency samples for reasoning_effort=low."
    )
    reasoning_samples_medium: int = Field(5, ge=1, description="Samples for reasoning_effort=medium.")
    reasoning_samples_high: int = Field(9, ge=1, description="Samples for reasoning_effort=high.")
    max_self_consistency_samples: int = Field(16, ge=1, description="Cap on self_consistency.samples.")
    reasoning_arithmetic: Literal["calculator", "model"] = Field(
        "calculator",
        description="Who writes the result of each `expression=` in a reasoning chain: the safe calculator "
        "(the model chooses what to compute) or the model alone. Requests may override it with "
        "self_consistency.arithmetic.",
    )
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = Field(
        None,
        description="reasoning_effort of requests that give none (default: the checkpoint's "
        "generation_config.json `reasoning_effort`; none there = plain answers).",
    )
    # Replicas: shared state in Redis (docs/scaling.md). Unset: every limit and key lives in this process.
    redis_url: SecretStr = Field(
        SecretStr(""),
        description="Redis URL (redis://host:6379/0) shared by replicas: rate limits, per-IP limits, keys.",
    )
    redis_failure: Literal["open", "closed"] = Field(
        "open",
        description="Redis unreachable: open = this replica's own buckets (per-replica limits), closed = 503.",
    )
    redis_timeout_seconds: float = Field(
        0.25, gt=0, le=10, description="Connect and command timeout for Redis (nothing waits longer)."
    )
    keys_reload_seconds: float = Field(
        2.0,
        ge=0,
        description="Re-read the keys file (on change) and Redis keys this often (0 = only on SIGHUP).",
    )
    client_limit_public: str = Field(
        "600/minute", description="Per client IP on routes without a key (/health, /metrics...); empty = off."
    )
    client_limit_auth_failures: str = Field(
        "30/minute", description="Requests with a wrong or missing key per client IP before 429; empty = off."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Proxies trusted for X-Forwarded-For (comma-separated IPs/CIDRs, * = any): the client IP.",
    )

    @model_validator(mode="after")
    def _default_served_name(self) -> Settings:
        if self.served_model_name is None:
            path = Path(self.model)
            shipped = path.resolve() == Path(DEFAULT_MODEL_DIR).resolve()
            self.served_model_name = (
                "tinyllm" if shipped else (path.stem if path.suffix == ".gguf" else path.name)
            )
        return self

    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]


def env_name(field: str) -> str:
    return "TINYLLM_" + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_parser(prog: str = "tinyllm serve") -> argparse.ArgumentParser:
    """An argparse parser with one flag per settings field (``max_batch`` -> ``--max-batch``).

    Flags default to "not given" so that unset flags leave the environment and defaults in charge.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a TinyLLM checkpoint over an OpenAI-compatible HTTP API.",
        epilog="Every flag can also be set as an environment variable: --max-batch is TINYLLM_MAX_BATCH.",
    )
    for name, field in Settings.model_fields.items():
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": f"{field.description} [env {env_name(name)}]",
        }
        annotation = field.annotation
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(annotation) is Literal:
            kwargs["choices"] = list(get_args(annotation))
        elif annotation in (int, float):
            kwargs["type"] = annotation
        parser.add_argument(flag_name(name), **kwargs)
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment, overridden by the flags in ``argv``."""
    namespace = build_parser().parse_args(argv)
    return Settings(**vars(namespace))
