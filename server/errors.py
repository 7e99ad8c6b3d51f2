"""Every error leaves the server in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Handlers are installed for our own :class:`APIError`, FastAPI's validation errors, Starlette's HTTP errors
(404 unknown route, 405 wrong method, 413 from the body limit) and any unexpected exception (500, with the
details logged under the request id but never sent to the client).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("tinyllm.server")

# OpenAI's error "type" for each status we send.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "service_unavailable",
}

# pydantic error types -> OpenAI-style error codes.
_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "json_invalid": "invalid_json",
    "unsupported_parameter": "unsupported_parameter",
    "unsupported_value": "unsupported_value",
}


class APIError(StarletteHTTPException):
    """An error meant for the client: raised anywhere in request handling, rendered by the handler below.

    An HTTPException so that FastAPI's body reader lets it through unchanged when the strict JSON parser
    (:mod:`server.json_body`) raises it; its own handler, more specific, still renders it.
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status_code, "invalid_request_error")
        self.headers = dict(headers or {})


def _encodable(text: str | None) -> str | None:
    """Client text echoed in an error (a model id from the URL, a field name) may hold lone surrogates that
    UTF-8 cannot encode: rendering them must not turn a 4xx into a 500."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": _encodable(message), "type": type, "param": _encodable(param), "code": code}}


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(message, type or _TYPES.get(status_code, "invalid_request_error"), param, code)
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def retry_after_headers(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


# Error types whose message our validators wrote to be read as is.
_OWN_MESSAGES = {"invalid_role", "missing_content", "invalid_value"}

# Union branches in pydantic error locations ("str", "list[ContentPart]", "function-after[...]") are not fields.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[\w-]+\[.*\])$")


def param_from_loc(loc: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "content")`` -> ``"messages[0].content"``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _UNION_TAG.match(part):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or None


def _validation_message(err: Mapping[str, Any], param: str | None) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}"
    if kind == "missing":
        if param is None:
            return "The request body is empty: send a JSON object with Content-Type: application/json."
        return f"Missing required parameter: '{param}'."
    if kind == "json_invalid":
        return (
            "We could not parse the JSON body of your request: "
            + str(err.get("ctx", {}).get("error", ""))
            + ". Send a JSON object with Content-Type: application/json."
        )
    if kind in ("model_attributes_type", "dict_type") and param is None:
        if isinstance(err.get("input"), bytes | bytearray):  # FastAPI did not read it as JSON
            return (
                "The request body must be JSON sent with Content-Type: application/json (a missing or "
                "other Content-Type is not read as JSON)."
            )
        return "The request body must be a JSON object sent with Content-Type: application/json."
    msg = str(err.get("msg", "Invalid value"))
    if kind.startswith("unsupported_") or kind in _OWN_MESSAGES:
        return msg
    msg = msg.removeprefix("Value error, ")
    return f"Invalid value for '{param}': {msg}" if param else msg


def _error_rank(err: Mapping[str, Any]) -> int:
    kind, loc = str(err.get("type", "")), err.get("loc", ())
    if kind.startswith("unsupported_"):
        return 0
    if kind.endswith("_type") and loc and isinstance(loc[-1], str) and _UNION_TAG.match(loc[-1]):
        return 2
    return 1


def _note(request: Request, code: str | None, param: str | None) -> None:
    """What the access log line says about an error."""
    request.scope.setdefault("tinyllm.log", {}).update(error_code=code, error_param=param)


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    _note(request, exc.code, exc.param)
    return error_response(
        exc.status_code, exc.message, code=exc.code, param=exc.param, type=exc.type, headers=exc.headers
    )


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # One error names the parameter (OpenAI reports one problem at a time too): a refused feature first,
    # and a union branch that did not apply ("content" is not a str, it is a list) last.
    err = min(exc.errors(), key=_error_rank, default={})
    loc = err.get("loc", ())
    if err.get("type") == "json_invalid":
        loc = ()
    param = param_from_loc(loc)
    if param is not None and len(param) > 200:  # an unknown field name is the client's text: bound the echo
        param = param[:200] + "..."
    code = _VALIDATION_CODES.get(err.get("type", ""), "invalid_value")
    _note(request, code, param)
    return error_response(400, _validation_message(err, param), code=code, param=param)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message, code = f"Unknown request URL: {request.method} {request.url.path}.", "unknown_url"
    elif status == 405:
        message, code = (
            f"Method {request.method} is not allowed for {request.url.path}.",
            "method_not_allowed",
        )
    elif status == 413:
        message, code = "Request body too large.", "request_too_large"
    elif status == 408:
        message, code = str(exc.detail), "request_timeout"
    else:
        message, code = str(exc.detail), None
    return error_response(status, message, code=code, headers=exc.headers)


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = request.scope.get("tinyllm.request_id", "")
    logger.error("unhandled exception", exc_info=exc, extra={"request_id": request_id})
    return error_response(
        500,
        f"The server had an error while processing your request (request id {request_id}).",
        code="internal_error",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
