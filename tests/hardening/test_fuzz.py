"""Schemathesis against the server's own /openapi.json: every route, valid and invalid inputs generated from
the schema, a valid key, a real server on loopback.

Checks on every response: no 5xx; the status code, content type and body are the ones the schema declares;
invalid data is rejected; a route that needs a key refuses a request without one; and every error (a 4xx
body, or an error event inside an SSE stream) is in OpenAI's shape ``{"error": {message, type, param,
code}}``. Not checked: that every schema-valid request is accepted, since limits that depend on the
configuration (the served model's name, the max_tokens cap, the context length) are not in a static schema.

The CI run is bounded (``TINYLLM_FUZZ_EXAMPLES`` examples per route and mode, 25 by default, well under a
minute on 2 cores). The long run: ``pytest tests/hardening/test_fuzz.py -m slow`` (1000 per route), or set
``TINYLLM_FUZZ_EXAMPLES`` for either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis import checks as core_checks
from schemathesis.specs.openapi import checks as openapi_checks

from tests.hardening.support import is_openai_error_body
from tests.server.support import API_KEY, MODEL, LiveServer, run_server

EXAMPLES = int(os.environ.get("TINYLLM_FUZZ_EXAMPLES", "25"))
LONG_EXAMPLES = int(os.environ.get("TINYLLM_FUZZ_EXAMPLES", "1000"))


def openai_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every error body, and every error event of a stream, is exactly OpenAI's error object."""
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if response.status_code >= 400:
        assert content_type.startswith("application/json"), (response.status_code, content_type)
        assert is_openai_error_body(json.loads(response.content)), response.content[:500]
    elif content_type.startswith("text/event-stream"):
        for line in response.content.decode("utf-8").splitlines():
            if line.startswith("data: {") and '"error"' in line[:20]:
                assert is_openai_error_body(json.loads(line[len("data: ") :])), line[:500]


CHECKS = [
    core_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,
    openapi_checks.unsupported_method,
    openai_error_shape,
]


@pytest.fixture(scope="module")
def fuzz_server(server_checkpoint: Path) -> Iterator[LiveServer]:
    # max_tokens capped low so that generated requests cost milliseconds; the caps' refusals are 400s.
    with run_server(
        server_checkpoint,
        served_model_name=MODEL,
        max_tokens=16,
        max_batch=8,
        max_queue=64,
        keepalive_seconds=0,
    ) as live:
        yield live


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/openapi.json")
    schema.config.update(base_url=fuzz_server.base_url, headers={"Authorization": f"Bearer {API_KEY}"})
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


# Accepted by the schema (``Any``), refused by the server unless null: the features we do not serve.
REFUSED = (
    "tools",
    "functions",
    "function_call",
    "audio",
    "prediction",
    "web_search_options",
    "tool_choice",
    "suffix",
    "response_format",
    "modalities",
)
REFUSED_IN_MESSAGES = ("tool_calls", "function_call", "tool_call_id", "audio")
ROLES = ("system", "developer", "user", "assistant")


def _steer(case: Any) -> None:
    """Schema-valid bodies nearly all stop at a 400 before any generation: a random ``model`` (404), a
    refused feature, a random role. So that generation itself is fuzzed too, a string ``model`` becomes the
    served one, and in *positive* cases refused features become null and roles valid ones (values the
    schema allows as well). Negative cases keep every mutation except a string model."""
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("model"), str):
        body["model"] = MODEL
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    for key in REFUSED:
        if key in body:
            body[key] = None
    if body.get("prompt") == "":
        body["prompt"] = "hello"
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            message["role"] = message.get("role") if message.get("role") in ROLES else ROLES[i % 4]
            for key in REFUSED_IN_MESSAGES:
                if key in message:
                    message[key] = None


def _run(case: Any) -> None:
    _steer(case)
    case.call_and_validate(checks=CHECKS, timeout=60)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_every_route(case: Any) -> None:
    _run(case)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=LONG_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_every_route_long(case: Any) -> None:
    _run(case)
