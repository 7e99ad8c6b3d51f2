"""response_format (JSON mode, JSON schemas), the SDK round trip of assistant messages and max_tokens past
the context, against a real server on the shipped checkpoint with the official ``openai`` package (and
langchain-openai). The shipped model is tiny: every complete answer must still parse and validate, because
the grammar, not the model, guarantees it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.server.support import API_KEY, MODEL, LiveServer, run_server, sse_events

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "tinyllm-default"
CONTEXT = 512  # the shipped checkpoint's
ASK = [{"role": "user", "content": "Describe a person as JSON."}]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with run_server(SHIPPED, max_batch=16) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0, timeout=120)


def schema_format(schema: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": strict}}


class Person(BaseModel):
    name: str = Field(max_length=24)
    age: int = Field(ge=0, le=120)
    role: Literal["admin", "user", "guest"]
    tags: list[Literal["a", "b", "c"]] = Field(max_length=3)


def test_parse_returns_a_pydantic_object(client: openai.OpenAI):
    r = client.chat.completions.parse(
        model=MODEL, messages=ASK, response_format=Person, max_tokens=200, seed=1
    )
    person = r.choices[0].message.parsed
    assert isinstance(person, Person) and r.choices[0].finish_reason == "stop"
    assert Person.model_validate_json(r.choices[0].message.content) == person


@pytest.mark.parametrize("stream", [False, True])
def test_json_object_is_an_object(client: openai.OpenAI, stream: bool):
    kwargs = dict(model=MODEL, messages=ASK, response_format={"type": "json_object"}, max_tokens=120)
    for seed in range(3):
        if stream:
            chunks = list(client.chat.completions.create(stream=True, seed=seed, **kwargs))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        else:
            r = client.chat.completions.create(seed=seed, **kwargs)
            text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        if finish == "stop":
            assert isinstance(json.loads(text), dict)
        else:  # max_tokens mid-document: "length", as OpenAI, and the text is a prefix of an object
            assert finish == "length" and text.startswith("{")


# ------------------------------------------------------------------------------- fifty varied schemas


def _leaf(rng: random.Random, depth: int) -> dict[str, Any]:
    """A bounded schema (so a complete answer fits in max_tokens whatever the model writes)."""
    kinds = ["string", "enum", "integer", "number", "boolean", "const", "format", "nullable", "array"]
    if depth < 2:
        kinds += ["object", "object", "anyOf"]
    kind = rng.choice(kinds)
    if kind == "string":
        low = rng.randint(0, 3)
        return {"type": "string", "minLength": low, "maxLength": low + rng.randint(1, 12)}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", "blue", "x y", "é", "1", "ok"], rng.randint(1, 4))}
    if kind == "integer":
        low = rng.randint(-1000, 100)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(0, 5000)}
    if kind == "number":
        return {"type": "number", "minimum": -10, "maximum": 10, "exclusiveMinimum": -11}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "const":
        return {"const": rng.choice(["v1", 3, True, None])}
    if kind == "format":
        return {"type": "string", "format": rng.choice(["date", "uuid", "date-time", "time"])}
    if kind == "nullable":
        return {"anyOf": [{"type": "string", "maxLength": 8}, {"type": "null"}]}
    if kind == "array":
        return {"type": "array", "items": _leaf(rng, depth + 1), "minItems": 0, "maxItems": rng.randint(1, 3)}
    if kind == "anyOf":
        return {"anyOf": [_leaf(rng, depth + 1), _leaf(rng, depth + 1)]}
    return _object(rng, depth + 1)


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    names = rng.sample(["id", "name", "kind", "when", "score", "items", "meta", "ok", "note", "城市"], 3)
    properties = {n: _leaf(rng, depth) for n in names[: rng.randint(1, 3)]}
    required = [n for n in properties if rng.random() < 0.7]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def varied_schemas(count: int) -> list[dict[str, Any]]:
    rng = random.Random(27)
    schemas = [_object(rng, 0) for _ in range(count - 6)]
    # Top-level shapes other than a plain object, and $defs/$ref (what pydantic writes).
    ref = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}}}
    schemas += [
        {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "maxItems": 4},
        {"enum": ["yes", "no"]},
        {"type": "string", "pattern": "^[a-f0-9]{4,8}$"},
        {
            "$defs": {"P": ref},
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/P"}},
            "required": ["p"],
        },
        {
            "type": "object",
            "properties": {"v": {"allOf": [{"type": "integer", "minimum": 0, "maximum": 50}]}},
        },
        {"type": "array", "prefixItems": [{"type": "boolean"}, {"enum": ["a", "b"]}], "items": False},
    ]
    return schemas


def test_fifty_varied_schemas_validate_every_time(client: openai.OpenAI):
    schemas = varied_schemas(50)

    def ask(i: int) -> tuple[str, str]:
        r = client.chat.completions.create(
            model=MODEL, messages=ASK, response_format=schema_format(schemas[i]), max_tokens=300, seed=i
        )
        return r.choices[0].message.content, r.choices[0].finish_reason

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(len(schemas))))
    checker = jsonschema.FormatChecker(["date", "uuid"])  # the formats jsonschema checks without extras
    for schema, (text, finish) in zip(schemas, answers, strict=True):
        assert finish == "stop", (schema, text)
        jsonschema.validate(json.loads(text), schema, format_checker=checker)


def test_streamed_schema_output_validates(client: openai.OpenAI):
    schema = Person.model_json_schema()
    chunks = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=schema_format(schema), max_tokens=200, stream=True, seed=4
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    jsonschema.validate(json.loads(text), schema)


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("schema", "param"),
    [
        (
            {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}},
            "response_format.json_schema.schema.properties.tags.uniqueItems",
        ),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "response_format.json_schema.schema.oneOf"),
        (
            {"$defs": {"A": {"type": "object", "minProperties": 1}}, "$ref": "#/$defs/A"},
            "response_format.json_schema.schema.$defs.A.minProperties",
        ),
        ({"type": "string", "format": "credit-card"}, "response_format.json_schema.schema.format"),
        (
            {"type": "string", "pattern": "[a-z]+", "maxLength": 4},
            "response_format.json_schema.schema.maxLength",
        ),
        ({"type": "integer", "multipleOf": 3, "maximum": 9}, "response_format.json_schema.schema.multipleOf"),
        ({"type": "string", "pattern": "a{2,"}, "response_format.json_schema.schema"),
    ],
)
def test_unsupported_schema_features_are_400_naming_the_path(
    client: openai.OpenAI, schema: dict[str, Any], param: str
):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=ASK, response_format=schema_format(schema))
    assert err.value.body["param"] == param and err.value.code == "invalid_value"


def test_bad_response_formats_are_400(server: LiveServer):
    with server.client() as c:
        for fmt in ({"type": "xml"}, {"type": "json_schema"}, {"type": "json_schema", "json_schema": {}}):
            r = c.post("/v1/chat/completions", json={"model": MODEL, "messages": ASK, "response_format": fmt})
            assert r.status_code == 400 and r.json()["error"]["param"].startswith("response_format"), r.text


def test_max_tokens_mid_json_finishes_with_length(client: openai.OpenAI):
    r = client.chat.completions.create(
        model=MODEL, messages=ASK, response_format=schema_format(Person.model_json_schema()), max_tokens=4
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 4
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content)
    with pytest.raises(openai.LengthFinishReasonError):  # what the SDK's parse() says about it
        client.chat.completions.parse(model=MODEL, messages=ASK, response_format=Person, max_tokens=4)


# ------------------------------------------------------------------------- round trip and token budget


def test_multi_turn_reasoning_conversation_round_trips(client: openai.OpenAI):
    messages: list[Any] = [{"role": "user", "content": "What is 12 + 30?"}]
    first = client.chat.completions.create(
        model=MODEL, messages=messages, reasoning_effort="low", max_tokens=60
    )
    assert isinstance(first.choices[0].message.model_extra["reasoning_content"], str)
    messages.append(first.choices[0].message)  # the SDK idiom: reasoning_content and all go back
    messages.append({"role": "user", "content": "And 5 + 5?"})
    second = client.chat.completions.create(
        model=MODEL, messages=messages, reasoning_effort="low", max_tokens=60
    )
    assert second.choices[0].message.content is not None
    messages.append(second.choices[0].message)
    messages.append({"role": "user", "content": "Thanks."})
    plain = client.chat.completions.create(
        model=MODEL, messages=messages, reasoning_effort="none", max_tokens=8
    )
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})
    assert "self_consistency" not in (plain.model_extra or {})


def test_assistant_fields_sdks_send_back_are_accepted(server: LiveServer):
    assistant = {
        "role": "assistant",
        "content": "Hi.",
        "reasoning_content": "The user greets me.",
        "reasoning": "The user greets me.",
        "annotations": [],
        "refusal": None,
        "audio": None,
        "function_call": None,
        "tool_calls": None,
        "provider_specific_fields": {"refusal": None},
    }
    body = {"model": MODEL, "messages": [ASK[0], assistant, ASK[0]], "max_tokens": 4}
    with server.client() as c:
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        r = c.post("/v1/chat/completions", json={**body, "reasoning_content": "x"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "reasoning_content"
        unknown = {**assistant, "colour": "blue"}
        r = c.post("/v1/chat/completions", json={**body, "messages": [ASK[0], unknown]})
        assert r.status_code == 400 and "colour" in r.json()["error"]["param"]


def test_max_tokens_past_the_context_generates_until_it_is_full(server: LiveServer):
    with server.client() as c:
        body = {"model": MODEL, "messages": ASK, "max_tokens": 100_000, "ignore_eos": True}
        r = c.post("/v1/chat/completions", json=body).json()
        usage = r["usage"]
        assert r["choices"][0]["finish_reason"] == "length"
        assert usage["prompt_tokens"] + usage["completion_tokens"] == CONTEXT
        stream = c.post("/v1/chat/completions", json={**body, "max_tokens": 4096, "stream": True})
        events = list(sse_events(stream.iter_lines()))
        assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
        long = [{"role": "user", "content": "apple " * 2000}]
        r = c.post("/v1/chat/completions", json={"model": MODEL, "messages": long, "max_tokens": 10})
        error = r.json()["error"]
        assert r.status_code == 400 and error["code"] == "context_length_exceeded"
        assert "allows at most" not in error["message"]


def test_langchain_structured_output(server: LiveServer):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL, base_url=server.v1, api_key=API_KEY, max_retries=0, max_tokens=200, temperature=0.7
    )
    for method in ("json_schema", "function_calling"):
        person = llm.with_structured_output(Person, method=method).invoke("Describe a person.")
        assert isinstance(person, Person), method


def test_http_client_sees_json_schema_errors_as_openai_errors(server: LiveServer):
    body = {"model": MODEL, "messages": ASK, "response_format": schema_format({"type": "object", "not": {}})}
    r = httpx.post(
        server.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format.json_schema.schema.not"
