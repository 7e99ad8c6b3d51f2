"""Streaming text out of token ids: whole characters only, and stop strings across token boundaries."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from model.tokenizer_base import BaseTokenizer


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas that never split a character.

    Tokens are turned into their bytes and fed to Python's incremental UTF-8 decoder: an incomplete
    character waits for its next bytes, and an invalid byte sequence (a model can sample byte tokens that
    never complete a character) is dropped rather than sent as U+FFFD. O(1) per token.
    """

    def __init__(self, tokenizer: BaseTokenizer, skip_special: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self.ids: list[int] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self._at_start = tokenizer.adds_dummy_prefix

    def push(self, token_id: int) -> str:
        if self.skip_special and token_id in self.tokenizer.special_ids:
            return ""
        self.ids.append(token_id)
        text = self._decoder.decode(self.tokenizer.token_bytes(token_id))
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix(" ")
        return text

    def flush(self) -> str:
        """Text still held at the end of the stream; an incomplete trailing character is dropped."""
        return self._decoder.decode(b"", final=True)

    def text(self) -> str:
        return self.tokenizer.decode(self.ids)


class StopStringMatcher:
    """Finds stop strings in streamed text without ever emitting part of one.

    Text that could be the beginning of a stop string is held back until the next push settles it.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.matched: str | None = None

    def push(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop string was matched). After a match, nothing more."""
        if self.matched is not None:
            return "", True
        buf = self._held + text
        first: tuple[int, str] | None = None
        for stop in self.stops:
            i = buf.find(stop)
            if i >= 0 and (first is None or i < first[0]):
                first = (i, stop)
        if first is not None:
            self.matched = first[1]
            self._held = ""
            return buf[: first[0]], True
        keep = self._longest_partial(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.matched is not None else held

    def _longest_partial(self, buf: str) -> int:
        """Length of the longest suffix of buf that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:k]):
                    best = k
                    break
        return best
