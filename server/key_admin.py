"""Add, revoke and list the API keys kept in Redis for a fleet of replicas.

    python -m server.key_admin add alice --rpm 60 --tpm 20000   # prints the new key, once
    python -m server.key_admin revoke alice
    python -m server.key_admin list

Redis holds only each key's SHA-256 with its name and limits (:mod:`server.keys_reload`); the key itself is
printed once and stored nowhere. Replicas pick changes up within ``TINYLLM_KEYS_RELOAD_SECONDS``.
The Redis URL comes from ``--redis-url`` or ``TINYLLM_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Sequence

import redis

from server.keys_reload import REDIS_KEYS_HASH, RedisKeyEntry


def _entries(client: redis.Redis) -> dict[str, RedisKeyEntry]:
    raw = client.hgetall(REDIS_KEYS_HASH)
    return {digest: RedisKeyEntry.model_validate_json(value) for digest, value in raw.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.key_admin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("TINYLLM_REDIS_URL", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a key for NAME and print it")
    add.add_argument("name")
    add.add_argument("--rpm", type=int, default=None, help="requests per minute (default: the server's)")
    add.add_argument("--tpm", type=int, default=None, help="tokens per minute (default: the server's)")
    revoke = commands.add_parser("revoke", help="remove NAME's key")
    revoke.add_argument("name")
    commands.add_parser("list", help="names and limits (never keys)")
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("set --redis-url or TINYLLM_REDIS_URL")
    client = redis.Redis.from_url(args.redis_url, decode_responses=True, socket_timeout=5)
    entries = _entries(client)
    if args.command == "add":
        entry = RedisKeyEntry(name=args.name, rpm=args.rpm, tpm=args.tpm)
        if any(e.name == args.name for e in entries.values()):
            print(f"a key named {args.name!r} exists; revoke it first", file=sys.stderr)
            return 1
        key = "sk-" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(key.encode()).hexdigest()
        client.hset(REDIS_KEYS_HASH, digest, entry.model_dump_json(exclude_none=True))
        print(key)
    elif args.command == "revoke":
        digests = [d for d, e in entries.items() if e.name == args.name]
        if not digests:
            print(f"no key named {args.name!r}", file=sys.stderr)
            return 1
        client.hdel(REDIS_KEYS_HASH, *digests)
    else:
        for entry in sorted(entries.values(), key=lambda e: e.name):
            print(json.dumps(entry.model_dump(exclude_none=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
