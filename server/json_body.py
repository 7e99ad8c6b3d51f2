"""Strict JSON request bodies for the ``/v1`` routes: one parser, clear 400s, nothing reaches the handlers
that the tokenizer, the error renderer or a second JSON parser would choke on or read differently.

Python's ``json.loads`` (what FastAPI uses) is lenient in ways that hurt a server:

* it guesses UTF-16/32 from the first bytes; RFC 8259 says a JSON body is UTF-8, so anything else is a 400
  (a leading UTF-8 byte-order mark is tolerated);
* ``"\\ud800"`` decodes to a lone surrogate, a ``str`` that cannot be encoded back to UTF-8: the tokenizer
  and the JSON error renderer then fail with a 500. Refused, naming the parameter;
* a NUL character (``\\u0000``) is never text a model was trained on and truncates C strings downstream:
  refused, naming the parameter;
* duplicate keys silently keep the last value, while a proxy or audit log in front of us may read the first:
  ``{"model": "a", "model": "b"}`` is refused (400 ``duplicate_key``) rather than guessed;
* nesting deeper than :data:`MAX_DEPTH` (no OpenAI request needs more than ~6 levels) is refused before it
  costs recursion anywhere; 100k nested arrays fail in the C parser at once and get the same answer.

The parsed body is cached on the request, so FastAPI's own body reading uses it unchanged. A body over
256 KB is parsed in a worker thread (about 0.1 s for the worst megabyte), so that the streams on the event
loop keep their turns meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from itertools import chain
from json import JSONDecodeError, JSONDecoder
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from server.errors import APIError

MAX_DEPTH = 32
OFF_LOOP_BYTES = 256 * 1024
_BOM = b"\xef\xbb\xbf"


def _invalid(message: str, param: str | None = None, code: str = "invalid_json") -> APIError:
    return APIError(400, message, code=code, param=param)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _text_problem(text: str) -> str | None:
    """What is wrong with a string of the body, if anything (two C-speed scans, no per-character Python)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"contains a lone UTF-16 surrogate (\\u{ord(text[e.start]):04x}), which is not a Unicode "
            f"character. Send valid UTF-8 text."
        )
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which is not allowed."
    return None


def _text_error(problem: str, where: str | None, is_key: bool = False) -> APIError:
    what = (
        f"The key '{where}'"
        if is_key
        else f"Invalid value for '{where}': it"
        if where
        else "The request body"
    )
    return _invalid(f"{what} {problem}", where, "invalid_value")


def _shown(key: str) -> str:
    """A key as it may appear in a message or ``param``: the client's text, so bounded and encodable."""
    return key[:100].encode("utf-8", "replace").decode("utf-8")


_SCALARS = {int, float, bool, type(None)}
Link = tuple[Any, str | int] | None  # (parent link, key): a path, turned into text only for an error


def _path(link: Link) -> str:
    keys: list[str | int] = []
    while link is not None:
        link, key = link
        keys.append(key)
    path = ""
    for key in reversed(keys):
        path = _join(path, key)
    return path


def _first_bad(texts: list[str]) -> tuple[int, str] | None:
    """The index and problem of the first bad string; one C-speed scan of them all in the common case."""
    if _text_problem("".join(texts)) is None:
        return None
    return next((i, problem) for i, text in enumerate(texts) if (problem := _text_problem(text)))


def _walk(value: Any, duplicates: dict[int, str]) -> None:
    """Check every key and string of a parsed body, iteratively (no recursion to exhaust). Fast paths keep a
    megabyte of ``[1, 1, ...]`` or of strings to milliseconds: per container, one pass over its types and
    one scan of its strings joined; a path is spelled out only for the error."""
    if isinstance(value, str) and (problem := _text_problem(value)):
        raise _text_error(problem, None)
    stack: list[tuple[Any, Link, int]] = [(value, None, 0)] if isinstance(value, dict | list) else []
    while stack:
        node, link, depth = stack.pop()
        if depth > MAX_DEPTH:
            where = _path(link)
            raise _invalid(
                f"The JSON body is nested too deeply at '{where}' (the limit is {MAX_DEPTH} levels).",
                where or None,
            )
        if isinstance(node, dict):
            if id(node) in duplicates:
                key = _shown(duplicates[id(node)])
                raise _invalid(
                    f"The JSON body has the key '{key}' more than once; send each parameter once.",
                    _join(_path(link), key),
                    "duplicate_key",
                )
            keys, values = list(node), list(node.values())
            if bad := _first_bad(keys):
                raise _text_error(bad[1], _join(_path(link), _shown(keys[bad[0]])), is_key=True)
        else:
            keys, values = range(len(node)), node
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            continue
        if kinds == {list} and depth < MAX_DEPTH and set(map(type, chain.from_iterable(values))) <= _SCALARS:
            continue  # e.g. a batch of token-id prompts
        if kinds == {str}:
            if bad := _first_bad(values):
                raise _text_error(bad[1], _join(_path(link), keys[bad[0]]))
            continue
        for key, child in zip(keys, values, strict=True):
            if isinstance(child, str):
                if problem := _text_problem(child):
                    raise _text_error(problem, _join(_path(link), key))
            elif isinstance(child, dict | list):
                stack.append((child, (link, key), depth + 1))


def parse_json_body(body: bytes) -> Any:
    """The JSON value of ``body``, or an :class:`APIError` (400) that says what is wrong and where."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _invalid(
            f"The request body is not valid UTF-8 (byte 0x{body[e.start]:02x} at offset {e.start}). "
            f"Send JSON encoded as UTF-8."
        ) from None

    duplicates: dict[int, str] = {}  # id(object) -> its first repeated key

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates[id(obj)] = key
                    break
                seen.add(key)
        return obj

    try:
        value = JSONDecoder(object_pairs_hook=pairs_hook).decode(text)
    except JSONDecodeError as e:
        raise _invalid(
            f"We could not parse the JSON body of your request: {e.msg} (line {e.lineno}, column "
            f"{e.colno}). Send a JSON object with Content-Type: application/json."
        ) from None
    except RecursionError:
        raise _invalid(f"The JSON body is nested too deeply (the limit is {MAX_DEPTH} levels).") from None
    except ValueError as e:  # e.g. an integer with more than 4300 digits
        raise _invalid(f"We could not parse the JSON body of your request: {str(e)[:200]}.") from None

    _walk(value, duplicates)
    return value


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            body = await self.body()
            # A large body takes tens of milliseconds to parse and check: in a worker thread, the event loop
            # (every stream) still gets its turns while it runs.
            self._strict_json = (
                await asyncio.to_thread(parse_json_body, body)
                if len(body) > OFF_LOOP_BYTES
                else parse_json_body(body)
            )
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`parse_json_body` (FastAPI calls ``request.json()``; an
    :class:`APIError` raised there passes through its body reader to our error handler)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
