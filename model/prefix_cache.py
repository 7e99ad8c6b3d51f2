"""Prefix caching: the keys and values of recent prompts, and of what was generated after them, kept in spare
slots of the KV cache, so that a request starting with the same tokens skips computing them.

Where it pays: a chat's next turn sends the whole conversation again; many requests share a system prompt or
the same instructions; the benchmark asks the same prompt greedy and then sampled. llama.cpp's server keeps
each slot's last prompt for the same reason (``cache_prompt``); vLLM hashes fixed blocks of a paged cache.
Here the engine's slots are dense rows (the int8 decoder reads the running rows as one tensor), so an entry
is a whole spare row, entries are few, and the least recently used goes first. A hit copies the matching
positions into the request's row: a memory copy, against a forward pass over every one of those tokens.

Positions are absolute, so only a common *prefix* can be reused; the last prompt token is always computed,
since its logits start the completion.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from model.kv_cache import KVCache

MIN_TOKENS = 16  # shorter sequences are not worth an entry (and would push longer ones out)


@dataclass
class _Entry:
    slot: int
    tokens: list[int]  # the tokens whose keys and values the slot holds, from position 0
    used: int = 0  # when last stored or hit (a counter, for least-recently-used eviction)


class PrefixCache:
    """``entries`` spare slots of ``cache``, from ``first_slot`` on. Used from the engine thread only."""

    def __init__(self, cache: KVCache, first_slot: int, entries: int) -> None:
        if first_slot + entries > cache.num_slots:
            raise ValueError(f"the cache has {cache.num_slots} slots, not {first_slot + entries}")
        self.cache = cache
        self._entries = [_Entry(first_slot + i, []) for i in range(entries)]
        self._clock = itertools.count(1)

    def restore(self, prompt: Sequence[int], slot: int) -> int:
        """Copy the longest cached prefix of ``prompt`` (at most all but its last token) into ``slot``;
        returns its length (0: nothing cached)."""
        limit = len(prompt) - 1
        best, length = None, 0
        for entry in self._entries:
            common = _common_prefix(entry.tokens, prompt, limit)
            if common > length:
                best, length = entry, common
        if best is None:
            return 0
        best.used = next(self._clock)
        self.cache.copy_slot(best.slot, slot, length)
        return length

    def store(self, tokens: Sequence[int], slot: int) -> None:
        """Remember the keys and values of ``tokens`` that ``slot`` holds (positions 0..len - 1)."""
        if len(tokens) < MIN_TOKENS or not self._entries:
            return
        tokens = list(tokens)
        for entry in self._entries:
            if _common_prefix(entry.tokens, tokens, len(tokens)) == len(tokens):  # already cached
                entry.used = next(self._clock)
                return
        # An entry this extends (a chat's previous turn) is replaced and only the new positions copied;
        # otherwise the least recently used entry goes.
        extended = [e for e in self._entries if e.tokens and tokens[: len(e.tokens)] == e.tokens]
        entry = extended[0] if extended else min(self._entries, key=lambda e: e.used)
        start = len(entry.tokens) if extended else 0
        self.cache.copy_slot(slot, entry.slot, len(tokens), start)
        entry.tokens, entry.used = tokens, next(self._clock)

    def cached_tokens(self) -> int:
        """Tokens held, over all entries."""
        return sum(len(e.tokens) for e in self._entries)


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    if a[:n] == b[:n]:  # the usual hit: one comparison in C
        return n
    lo, hi = 0, n  # the common prefix is shorter than n: bisect on equal slices
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
