"""One choice's output as token events arrive: text deltas, stop strings, token counts and logprobs.

The incremental detokenizer only releases whole characters; the stop-string matcher holds back text that
could be the start of a stop string, so a client never sees part of one, even across token boundaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from model.detokenizer import IncrementalDetokenizer, StopStringMatcher
from model.request_handle import TokenEvent
from model.tokenizer_base import BaseTokenizer


class TokenTexts:
    """Text and UTF-8 bytes of single tokens, for logprobs. A token that is part of a multi-byte character
    is shown as ``bytes:\\xe4\\xbd`` (as OpenAI does), never as U+FFFD; ``bytes`` carries the exact value."""

    def __init__(self, tokenizer: BaseTokenizer) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[int, tuple[str, list[int]]] = {}

    def get(self, token_id: int) -> tuple[str, list[int]]:
        cached = self._cache.get(token_id)
        if cached is None:
            raw = self.tokenizer.token_bytes(token_id)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
            cached = self._cache[token_id] = (text, list(raw))
        return cached


@dataclass
class SampledLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]
    text_offset: int


class SequenceAccounting:
    """What the request's accounting (usage, token refund, latency metrics, access log) reads from one
    generated sequence, whatever its text is made into: counts, finish state and token timings."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.num_tokens = 0
        self.finish_reason: str | None = None  # stop, length (for the client); cancelled, error (internal)
        self.engine_finished = False  # the engine has ended this sequence (else it must be cancelled)
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def on_event(self, event: TokenEvent) -> str:
        """Feed one engine event; returns the text it makes safe to stream (maybe ""). Each kind of
        sequence (a plain choice, a reasoning sample) makes its own text."""
        raise NotImplementedError

    def count(self, event: TokenEvent) -> bool:
        """Record an event's bookkeeping; False when the sequence is already done (tokens still in flight
        after a stop string matched, say) and the event must be ignored."""
        self.engine_finished = self.engine_finished or event.finish_reason is not None
        if self.done:
            return False
        if event.token_id is not None:
            now = time.perf_counter()
            self.first_token_at = self.first_token_at or now
            self.last_token_at = now
            self.num_tokens += 1
        return True


class ChoiceState(SequenceAccounting):
    """One choice's output as its token events arrive."""

    def __init__(self, index: int, tokenizer: BaseTokenizer, stops: list[str]) -> None:
        super().__init__(index)
        self.detok = IncrementalDetokenizer(tokenizer)
        self.matcher = StopStringMatcher(stops)
        self.text = ""  # emitted so far
        self.logprobs: list[SampledLogprob] = []
        self._logprobs_sent = 0

    def on_event(self, event: TokenEvent) -> str:
        """Feed one engine event; returns the text it makes safe to emit (possibly empty)."""
        if not self.count(event):
            return ""
        out = ""
        if event.token_id is not None:
            if event.logprob is not None:
                self.logprobs.append(
                    SampledLogprob(event.token_id, event.logprob, event.top_logprobs or [], len(self.text))
                )
            emit, matched = self.matcher.push(self.detok.push(event.token_id))
            out += emit
            if matched:
                self.finish_reason = "stop"
        if event.finish_reason is not None and not self.done:
            emit, matched = self.matcher.push(self.detok.flush())
            out += emit
            if matched:
                self.finish_reason = "stop"
            else:
                out += self.matcher.flush()
                self.finish_reason = event.finish_reason
        self.text += out
        return out

    def take_new_logprobs(self) -> list[SampledLogprob]:
        new = self.logprobs[self._logprobs_sent :]
        self._logprobs_sent = len(self.logprobs)
        return new
