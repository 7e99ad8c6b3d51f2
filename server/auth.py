"""Bearer-key authentication for every ``/v1`` route.

Keys come from ``TINYLLM_API_KEYS`` (comma-separated) and/or the JSON keys file ``TINYLLM_API_KEYS_FILE``
(``{"keys": [{"key": "...", "name": "alice", "rpm": 60, "tpm": 20000}]}``; name and limits optional), and
with ``TINYLLM_REDIS_URL`` from Redis too (SHA-256 hashes only; :mod:`server.keys_reload`). The keys file and
Redis are re-read while the server runs, so keys are added and revoked without a restart.

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
from typing import Protocol

from fastapi import Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field, SecretStr, ValidationError
from starlette.responses import Response
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


def identities_from_file(path: str) -> list[Identity]:
    """The keys of a JSON keys file; raises ConfigError when it cannot be read or parsed."""
    identities = []
    for entry in _load_keys_file(path):
        key = entry.key.get_secret_value()
        identities.append(
            Identity(name=entry.name or key_id(key), rpm=entry.rpm, tpm=entry.tpm, digest=_digest(key))
        )
    return identities


class KeyStore:
    """The keys this server accepts. ``fixed`` (TINYLLM_API_KEYS) never change; the reloadable ones (keys
    file, Redis) are swapped whole by :meth:`replace`, which the reloader (:mod:`server.keys_reload`) calls."""

    def __init__(
        self, identities: list[Identity], disabled: bool, fixed: list[Identity] | None = None
    ) -> None:
        self.identities = identities
        self.disabled = disabled
        self.fixed = list(identities if fixed is None else fixed)

    def replace(self, reloadable: list[Identity]) -> None:
        """Accept exactly the fixed keys plus ``reloadable`` from now on (one assignment: no torn read)."""
        self.identities = self.fixed + reloadable

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        fixed = [Identity(name=key_id(k), digest=_digest(k)) for k in settings.api_key_list()]
        identities = list(fixed)
        if settings.api_keys_file:
            identities += identities_from_file(settings.api_keys_file)
        if settings.auth_disabled:
            logger.warning(
                "AUTHENTICATION IS DISABLED (TINYLLM_AUTH_DISABLED=true): anyone who can reach this "
                "server can use it. Use this for local development only."
            )
            return cls([], disabled=True)
        if not identities and settings.redis_url.get_secret_value():
            logger.warning("no API key in the environment or keys file: only keys added in Redis will work")
        elif not identities:
            raise ConfigError(
                "no API key configured: set TINYLLM_API_KEYS (comma-separated keys) or "
                "TINYLLM_API_KEYS_FILE (a JSON keys file), or TINYLLM_REDIS_URL (keys added with "
                "python -m server.key_admin), or TINYLLM_AUTH_DISABLED=true for local use without "
                "authentication"
            )
        return cls(identities, disabled=False, fixed=fixed)

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


class FailureLimit(Protocol):
    """Per-client limit on failed authentications (:class:`server.client_limits.AuthFailureLimit`)."""

    async def retry_after(self, scope: Scope) -> float | None: ...

    async def record(self, scope: Scope) -> None: ...

    def refusal(self, retry_after: float) -> Response: ...


class AuthMiddleware:
    """401 for ``/v1`` requests without a valid key; otherwise records the caller's identity in the scope.

    With a ``failure_limit``, a client past its failed-authentication budget gets 429 before its key is
    checked (so a correct guess in the middle of a brute-force run is refused too)."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        on_failure: Callable[[], None],
        failure_limit: FailureLimit | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.on_failure = on_failure
        self.failure_limit = failure_limit

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
        if self.failure_limit is not None:
            retry_after = await self.failure_limit.retry_after(scope)
            if retry_after is not None:
                await self.failure_limit.refusal(retry_after)(scope, receive, send)
                return
        identity = self.keys.authenticate(authorization)
        if identity is None:
            self.on_failure()
            if self.failure_limit is not None:
                await self.failure_limit.record(scope)
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
