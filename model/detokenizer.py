"""Streaming text out of token ids: whole characters only, and stop strings across token boundaries."""

from __future__ import annotations

from collections.abc import Sequence

from model.tokenizer import Tokenizer

# Byte-fallback pieces of a multi-byte character decode to U+FFFD until the character is complete.
_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas.

    Each push decodes a short window of recent tokens and emits only what is new, holding text back
    while it ends in an incomplete UTF-8 sequence. Decoding a window (not single tokens) keeps
    SentencePiece's whitespace handling right at token boundaries.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self.ids: list[int] = []
        self._prefix_offset = 0  # window start
        self._read_offset = 0  # tokens before this are already emitted

    def push(self, token_id: int) -> str:
        if self.skip_special and token_id in self.tokenizer.special_ids:
            return ""
        self.ids.append(token_id)
        return self._emit(final=False)

    def flush(self) -> str:
        """Text still held back at the end of the stream (an incomplete character is dropped, not sent
        as U+FFFD)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        decode = self.tokenizer.sp.decode
        prefix_text = decode(self.ids[self._prefix_offset:self._read_offset])
        new_text = decode(self.ids[self._prefix_offset:])
        if len(new_text) <= len(prefix_text) or (new_text.endswith(_REPLACEMENT) and not final):
            return ""
        delta = new_text[len(prefix_text):]
        if final:
            delta = delta.replace(_REPLACEMENT, "")
        self._prefix_offset = self._read_offset
        self._read_offset = len(self.ids)
        return delta

    def text(self) -> str:
        return self.tokenizer.sp.decode(self.ids)


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
            return buf[:first[0]], True
        keep = self._longest_partial(buf)
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[:len(buf) - keep], False

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
