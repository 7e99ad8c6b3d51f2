"""Keys without restarts: the keys file and the keys in Redis, re-read while the server runs.

Every ``TINYLLM_KEYS_RELOAD_SECONDS`` (and at once on SIGHUP) the reloader re-reads the keys file if its
modification time or size changed, and the Redis hash ``tinyllm:keys`` (``sha256(key) hex -> {"name", "rpm",
"tpm"}``: hashes, never keys; written by :mod:`server.key_admin`). So a key added or revoked is honoured by
every replica within one reload interval. Authentication itself stays local (the key set is swapped whole in
:class:`server.auth.KeyStore`), so a request never waits on Redis to be authenticated.

A keys file that fails to parse, or a Redis that does not answer, leaves the last good keys in place (logged):
a half-written file never locks everyone out, and a key revoked during a Redis outage stops working once
Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from server.auth import ConfigError, Identity, KeyStore, identities_from_file
from server.redis_link import RedisLink, RedisUnavailable
from server.settings import Settings

logger = logging.getLogger("tinyllm.server")

REDIS_KEYS_HASH = "tinyllm:keys"


class RedisKeyEntry(BaseModel):
    """What Redis holds for a key (the field is the key's SHA-256, hex)."""

    name: str = Field(min_length=1, max_length=64)
    rpm: int | None = Field(None, ge=0)
    tpm: int | None = Field(None, ge=0)


def identities_from_redis_hash(entries: dict[str, str]) -> list[Identity]:
    identities = []
    for digest_hex, raw in sorted(entries.items()):
        try:
            digest = bytes.fromhex(digest_hex)
            entry = RedisKeyEntry.model_validate(json.loads(raw))
        except (ValueError, ValidationError):
            logger.warning(
                "skipping a malformed entry of the Redis keys hash", extra={"hash": digest_hex[:8]}
            )
            continue
        if len(digest) != 32:
            continue
        identities.append(Identity(name=entry.name, rpm=entry.rpm, tpm=entry.tpm, digest=digest))
    return identities


class KeyReloader:
    def __init__(self, keys: KeyStore, settings: Settings, link: RedisLink | None) -> None:
        self.keys = keys
        self.path = settings.api_keys_file
        self.interval = settings.keys_reload_seconds
        self.link = link
        self._file_version: tuple[int, int] | None = None
        self._from_file: list[Identity] = []
        self._from_redis: list[Identity] = []
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        if self.path:  # from_settings has just read it
            self._file_version = self._stat()
            self._from_file = [i for i in keys.identities if i not in keys.fixed]

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path or "")
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _reload_file(self, force: bool) -> None:
        version = self._stat()
        if not self.path or (version == self._file_version and not force):
            return
        self._file_version = version  # a broken file is reported once, not at every poll
        try:
            self._from_file = identities_from_file(self.path)
        except ConfigError as e:
            logger.warning(f"keys file not reloaded, keeping the previous keys: {e}")
            return
        logger.info("keys file reloaded", extra={"keys": len(self._from_file)})

    async def _reload_redis(self) -> None:
        if self.link is None:
            return
        client = self.link.client
        try:
            entries: dict[str, Any] = await self.link.call("keys", lambda: client.hgetall(REDIS_KEYS_HASH))
        except RedisUnavailable:
            return  # keep the last keys Redis gave
        before = {i.name for i in self._from_redis}
        self._from_redis = identities_from_redis_hash(entries)
        after = {i.name for i in self._from_redis}
        if before != after:
            logger.info(
                "keys from redis changed",
                extra={"added": sorted(after - before), "removed": sorted(before - after)},
            )

    async def reload(self, force_file: bool = False) -> None:
        self._reload_file(force_file)
        await self._reload_redis()
        self.keys.replace(self._from_file + self._from_redis)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reload()
            except Exception:  # a reload that fails keeps the last keys; the next one may succeed
                logger.exception("keys reload failed, keeping the previous keys")

    def _on_sighup(self) -> None:
        logger.info("SIGHUP: reloading keys")
        task = asyncio.get_running_loop().create_task(self.reload(force_file=True))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        """Load Redis keys once now, then keep reloading in the background."""
        await self.reload()
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
