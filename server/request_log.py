"""Structured JSON logs: one access-log line per request, tied together by a request id.

The request id is the client's ``x-request-id`` when it is a short safe token, else a fresh one; it comes
back as the ``x-request-id`` response header and is in every log line about the request. Prompts and
completions are logged only with ``TINYLLM_LOG_PROMPTS=true``. Headers are never logged (they carry keys).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_response

REQUEST_ID_SCOPE_KEY = "tinyllm.request_id"
LOG_FIELDS_SCOPE_KEY = "tinyllm.log"  # a dict handlers fill with what the access log should say

access_logger = logging.getLogger("tinyllm.access")
error_logger = logging.getLogger("tinyllm.server")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra={...}`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> None:
    """Send our loggers and uvicorn's through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in ("tinyllm", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # our access log replaces it


def request_id_of(scope: Scope) -> str:
    return scope.get(REQUEST_ID_SCOPE_KEY, "")


def log_fields(scope: Scope) -> dict[str, Any]:
    return scope.setdefault(LOG_FIELDS_SCOPE_KEY, {})


class RequestContextMiddleware:
    """Assigns the request id, returns it as a header, and writes the access log line when the response ends.

    Pure ASGI (not BaseHTTPMiddleware) so a streamed response passes through chunk by chunk, unbuffered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        fields = log_fields(scope)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # A bug, not a client error: details go to the log under the request id, never to the client.
            error_logger.exception("unhandled exception", extra={"request_id": request_id})
            if started:
                raise  # the response is half sent: let the server close the connection
            response = error_response(
                500,
                f"The server had an error while processing your request (request id {request_id}).",
                code="internal_error",
            )
            await response(scope, receive, send_with_id)
        finally:
            identity = scope.get("tinyllm.identity")
            client = scope.get("client")
            access_logger.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 1),
                    "client": client[0] if client else None,
                    "key": identity.name if identity is not None else None,
                    **fields,
                },
            )
