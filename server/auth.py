"""Bearer-key authentication for every ``/v1`` route.

Keys come from ``TINYLLM_API_KEYS`` (comma-separated) and/or the JSON keys file ``TINYLLM_API_KEYS_FILE``
(``{"keys": [{"key": "...", "name": "alice", "rpm": 60, "tpm": 20000}]}``; name and limits optional).

Authentication is a pure ASGI middleware rather than a FastAPI dependency so that it runs before anything
else looks at the request: an unauthenticated client gets 401 before its body is read or parsed, on known
and unknown ``/v1`` paths alike. The presented key is compared with every configured key in constant time
(SHA-256 digests of equal length, ``hmac.compare_digest``, no early exit). A key never reaches a log, a
metric label or an error body: it is identified by its configured name or a short salted hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import error_response
from server.settings import Settings

logger = logging.getLogger("tinyllm.server")

IDENTITY_SCOPE_KEY = "tinyllm.identity"

# Per process: a key's short id cannot be turned back into the key, even for a short key.
_SALT = secrets.token_bytes(16)


class ConfigError(Exception):
    """The server cannot start with this configuration; the message says what to set."""


@dataclass(frozen=True, eq=False)
class Identity:
    """Who is calling: the name used in logs, and the key's own rate limits (None = the server default)."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    digest: bytes = b""


ANONYMOUS = Identity(name="anonymous")


class _KeyEntry(BaseModel):
    key: SecretStr = Field(min_length=1)
    name: str | None = Field(None, min_length=1, max_length=64)
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)


class _KeysFile(BaseModel):
    keys: list[_KeyEntry]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def key_id(key: str) -> str:
    """A short, salted, non-reversible id for a key without a configured name."""
    return "key-" + hashlib.sha256(_SALT + key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _load_keys_file(path: str) -> list[_KeyEntry]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return _KeysFile.model_validate(raw).keys
    except OSError as e:
        raise ConfigError(f"cannot read the API keys file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"the API keys file {path} is not valid JSON (line {e.lineno})") from None
    except ValidationError as e:
        # Only the location of the problem: the input would show the key.
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
        raise ConfigError(
            f'the API keys file {path} must look like {{"keys": [{{"key": "...", "name": "...", '
            f'"rpm": 0, "tpm": 0}}]}}; invalid: {where}'
        ) from None


class KeyStore:
    def __init__(self, identities: list[Identity], disabled: bool) -> None:
        self.identities = identities
        self.disabled = disabled

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        identities = [Identity(name=key_id(k), digest=_digest(k)) for k in settings.api_key_list()]
        if settings.api_keys_file:
            for entry in _load_keys_file(settings.api_keys_file):
                key = entry.key.get_secret_value()
                identities.append(
                    Identity(
                        name=entry.name or key_id(key), rpm=entry.rpm, tpm=entry.tpm, digest=_digest(key)
                    )
                )
        if settings.auth_disabled:
            logger.warning(
                "AUTHENTICATION IS DISABLED (TINYLLM_AUTH_DISABLED=true): anyone who can reach this "
                "server can use it. Use this for local development only."
            )
            return cls([], disabled=True)
        if not identities:
            raise ConfigError(
                "no API key configured: set TINYLLM_API_KEYS (comma-separated keys) or "
                "TINYLLM_API_KEYS_FILE (a JSON keys file), or TINYLLM_AUTH_DISABLED=true for "
                "local use without authentication"
            )
        return cls(identities, disabled=False)

    def authenticate(self, authorization: str | None) -> Identity | None:
        """The identity of a valid ``Authorization: Bearer <key>`` header, else None."""
        if self.disabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = _digest(token.strip())
        match = None
        for identity in self.identities:  # no early exit: the time does not depend on which key matched
            if hmac.compare_digest(presented, identity.digest) and match is None:
                match = identity
        return match


class AuthMiddleware:
    """401 for ``/v1`` requests without a valid key; otherwise records the caller's identity in the scope."""

    def __init__(self, app: ASGIApp, keys: KeyStore, on_failure: Callable[[], None]) -> None:
        self.app = app
        self.keys = keys
        self.on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        identity = self.keys.authenticate(authorization)
        if identity is None:
            self.on_failure()
            message = (
                "Missing API key: send it in an Authorization header (Authorization: Bearer YOUR_KEY)."
                if authorization is None
                else "Incorrect API key provided."
            )
            response = error_response(
                401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        scope[IDENTITY_SCOPE_KEY] = identity
        await self.app(scope, receive, send)


# Declares the bearer scheme in the OpenAPI document; the check itself is done by AuthMiddleware.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key of this server (TINYLLM_API_KEYS).")


def current_identity(request: Request) -> Identity:
    """The authenticated caller (set by AuthMiddleware) as a route dependency."""
    return request.scope.get(IDENTITY_SCOPE_KEY, ANONYMOUS)
