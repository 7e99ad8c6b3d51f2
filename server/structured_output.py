"""``response_format``: JSON mode and JSON schemas, enforced by the grammar engine (model.constraint).

A schema is checked against what the grammar engine enforces exactly before anything is compiled: a keyword
it would ignore or only approximate (``oneOf``, ``uniqueItems``, ``if``/``then``, ``minProperties``...) is a
400 naming its path (``response_format.json_schema.schema.properties.tags.uniqueItems``), because a schema
we accept is a promise that every complete answer validates. Output that reaches ``max_tokens`` before the
document closes ends with ``finish_reason: "length"`` and is not valid JSON, as with OpenAI.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from model.constraint import GrammarCompiler, GrammarConstraint, GrammarError
from server.errors import APIError

SCHEMA_PARAM = "response_format.json_schema.schema"

# Keywords that describe without constraining.
_ANNOTATIONS = {
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "discriminator",  # pydantic's hint beside anyOf; the anyOf alone is what is enforced
}
_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
_FORMATS = {"date", "time", "date-time", "duration", "email", "uuid", "ipv4", "ipv6", "hostname", "uri"}
# keyword -> how its value is checked: "schema", "schemas" (a list), "schema_map", or a type check.
_KEYWORDS: dict[str, str] = {
    "type": "type",
    "properties": "schema_map",
    "patternProperties": "schema_map",
    "additionalProperties": "schema",
    "propertyNames": "schema",
    "required": "strings",
    "items": "schema",
    "prefixItems": "schemas",
    "minItems": "count",
    "maxItems": "count",
    "enum": "list",
    "const": "any",
    "anyOf": "schemas",
    "allOf": "one_schema",
    "$ref": "ref",
    "$defs": "schema_map",
    "definitions": "schema_map",
    "minLength": "count",
    "maxLength": "count",
    "pattern": "string",
    "format": "format",
    "minimum": "number",
    "maximum": "number",
    "exclusiveMinimum": "number",
    "exclusiveMaximum": "number",
    "multipleOf": "positive",
}
_WHY = {
    "oneOf": "use anyOf: exactly-one-of cannot be enforced while generating",
    "uniqueItems": "uniqueness cannot be enforced while generating",
    "minProperties": "property counts are not supported",
    "maxProperties": "property counts are not supported",
    "if": "conditional schemas are not supported",
    "not": "negated schemas are not supported",
    "contains": "contains is not supported",
}


def _fail(path: str, message: str) -> APIError:
    return APIError(400, f"Invalid schema at {path}: {message}.", code="invalid_value", param=path)


def check_schema(schema: Any, path: str = SCHEMA_PARAM) -> None:
    """Raise a 400 naming the first keyword the grammar engine does not enforce exactly."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _fail(path, "a schema must be an object or a boolean")
    for key, value in schema.items():
        where = f"{path}.{key}"
        if key in _ANNOTATIONS:
            continue
        kind = _KEYWORDS.get(key)
        if kind is None:
            why = _WHY.get(key, "this keyword is not supported for structured output")
            raise _fail(where, f"'{key[:60]}' is not supported ({why})")
        _check_value(kind, key, value, where)
    _check_combinations(schema, path)


_RANGE = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_PYTHON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": int | float,
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def _of_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PYTHON_TYPES[kind])


def _check_combinations(schema: dict[str, Any], path: str) -> None:
    """Keyword pairs the grammar engine would silently enforce only in part (it logs a warning and drops
    one of them): refused, so that an accepted schema is always enforced whole."""
    if "multipleOf" in schema:
        if schema.get("type") != "integer" or any(k in schema for k in _RANGE):
            raise _fail(
                f"{path}.multipleOf", "multipleOf is supported on integers without minimum/maximum only"
            )
    if ("pattern" in schema or "format" in schema) and ("minLength" in schema or "maxLength" in schema):
        raise _fail(
            f"{path}.minLength" if "minLength" in schema else f"{path}.maxLength",
            "minLength/maxLength cannot be combined with pattern or format",
        )
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        inner = pattern.removeprefix("^").removesuffix("$")
        if "(?" in pattern or re.search(r"(?<!\\)\$", inner):
            raise _fail(
                f"{path}.pattern", "lookarounds, group flags and anchors inside a pattern are not supported"
            )
    types = schema.get("type")
    types = types if isinstance(types, list) else [types] if types else []
    for key in ("enum", "const"):
        if key in schema and types:
            values = schema[key] if key == "enum" else [schema[key]]
            if not all(any(_of_type(v, t) for t in types) for v in values):
                raise _fail(f"{path}.{key}", f"every {key} value must be of the schema's type {types}")


def _check_value(kind: str, key: str, value: Any, where: str) -> None:
    if kind == "schema":
        check_schema(value, where)
    elif kind == "schemas":
        if not isinstance(value, list) or not value:
            raise _fail(where, "expected a non-empty list of schemas")
        for i, sub in enumerate(value):
            check_schema(sub, f"{where}.{i}")
    elif kind == "one_schema":
        if not isinstance(value, list) or len(value) != 1:
            raise _fail(where, "allOf is supported with a single schema only")
        check_schema(value[0], f"{where}.0")
    elif kind == "schema_map":
        if not isinstance(value, dict):
            raise _fail(where, "expected an object of schemas")
        for name, sub in value.items():
            check_schema(sub, f"{where}.{name}")
    elif kind == "type":
        types = value if isinstance(value, list) else [value]
        if not types or any(t not in _TYPES for t in types):
            raise _fail(where, f"type must be one of {sorted(_TYPES)} or a list of them")
    elif kind == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, "expected a list of property names")
    elif kind == "count":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _fail(where, "expected a non-negative integer")
    elif kind in ("number", "positive"):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or (kind == "positive" and value <= 0)
        ):
            raise _fail(where, "expected a number" + (" above 0" if kind == "positive" else ""))
    elif kind == "list":
        if not isinstance(value, list) or not value:
            raise _fail(where, "expected a non-empty list")
    elif kind == "string":
        if not isinstance(value, str):
            raise _fail(where, "expected a string")
    elif kind == "format":
        if value not in _FORMATS:
            raise _fail(where, f"format '{str(value)[:40]}' is not supported (supported: {sorted(_FORMATS)})")
    elif kind == "ref":
        if not isinstance(value, str) or not re.fullmatch(r"#(/(\$defs|definitions)/[^/]+)?", value):
            raise _fail(where, "only local references (#, #/$defs/Name, #/definitions/Name) are supported")


def grammar_error(e: GrammarError, param: str) -> APIError:
    # xgrammar prefixes its messages with a time and a source location: the client needs the reason only.
    reason = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", str(e))
    return APIError(400, f"The schema cannot be enforced: {reason[:300]}", code="invalid_value", param=param)


def response_format_schema(response_format: Any) -> tuple[bool, dict[str, Any] | None]:
    """(whether output is constrained, the JSON schema or None for any JSON object), checked."""
    if response_format is None or response_format.type == "text":
        return False, None
    if response_format.type == "json_object":
        return True, None
    spec = response_format.json_schema
    schema = spec.schema_ if spec.schema_ is not None else {"type": "object"}
    check_schema(schema)
    return True, schema


async def json_constraint(compiler: GrammarCompiler, schema: dict[str, Any] | None) -> GrammarConstraint:
    """Compile (tens of ms the first time, then cached) off the event loop."""
    try:
        compiled = await asyncio.to_thread(compiler.json_schema, schema)
    except GrammarError as e:
        raise grammar_error(e, SCHEMA_PARAM if schema is not None else "response_format") from None
    return compiler.constraint(compiled)
