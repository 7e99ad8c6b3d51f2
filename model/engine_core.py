"""The engine in its own process: the loop that runs it there, and the messages it exchanges with the API.

Why a process: in one process the HTTP side (parsing, auth, detokenizing, SSE) and the engine's Python
(scheduling, sampling) take turns on one GIL, so every request the server handles delays every decode step.
Here the engine process only schedules and steps; the API process (:class:`model.engine_client.EngineClient`)
tokenizes, detokenizes and streams. vLLM's engine core is the model.

Two one-way pipes (``multiprocessing.Pipe``, Unix-domain sockets) join them:

* requests, API -> engine: pickled tuples, one per call (``("add", id, prompt, params, n, recipe)``,
  ``("cancel", id)``, ``("shutdown", seconds)``). A request's constraint (a grammar, the calculator guide) is
  a live object with its own state; it crosses as its recipe (``TokenConstraint.recipe``) and the engine
  process builds it afresh with the ``build_constraint`` it was given.
* outputs, engine -> API: one msgpack message (msgspec) per engine step carrying every token event of the
  step, the prompts that started (their queue time and cached tokens) and the step's batch size and time.

Why pipes and not ZeroMQ (tried first): both cost the same here. Timed inside the engine process at one
stream on the 2-core VM (under py-spy), a send took ~300 us with either: the time is the API process being
scheduled onto the core the engine was using, not the transport. Pipes are the standard library, with no
I/O thread of their own to schedule, and a closed end reads as end-of-file, which is how each side learns
that the other died.

The loop is single-threaded: it reads what arrived (blocking only when it has nothing to run), runs one
engine step and sends what the step produced, so one thread owns both sockets.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import msgspec
import torch

from model.engine import Engine, EngineError, default_threads
from model.request_handle import RequestHandle, TokenEvent
from model.sampling import TokenConstraint

log = logging.getLogger("tinyllm.engine")

ConstraintBuilder = Callable[[tuple[str, tuple[Any, ...]]], TokenConstraint]

# An event on the wire: (request id, index, token id, logprob, top logprobs, finish reason).
WireEvent = tuple[int, int, int | None, float | None, list[tuple[int, float]] | None, str | None]


class Ready(msgspec.Struct, tag=True, array_like=True):
    """The engine process loaded its model and runs: what the API needs to know of it."""

    max_seq_len: int
    vocab_size: int
    max_batch: int
    max_queue: int
    kv_cache_bytes: int
    pid: int


class Outputs(msgspec.Struct, tag=True, array_like=True):
    events: list[WireEvent]
    # Prompts the step started: (request id, time.perf_counter() when it started, tokens from the prefix cache).
    started: list[tuple[int, float, int]]
    steps: list[tuple[int, float]]  # decode steps: (batch size, seconds)


class Stopped(msgspec.Struct, tag=True, array_like=True):
    """The engine drained (or cancelled what was left) and the process is about to exit."""


OutputMessage = Ready | Outputs | Stopped


@dataclass(slots=True)
class _Request:
    request_id: int  # the API process's id
    handle: RequestHandle  # the engine's
    remaining: int  # sequences not yet finished
    announced: bool = False  # its start was sent


class _Outbox:
    """The requests in flight, and what the current step produced for them, sent as one message."""

    def __init__(self) -> None:
        self.events: list[WireEvent] = []
        self.started: list[tuple[int, float, int]] = []
        self.steps: list[tuple[int, float]] = []
        self._by_handle: dict[RequestHandle, _Request] = {}
        self._by_id: dict[int, _Request] = {}

    def track(self, handle: RequestHandle, request_id: int, n: int) -> None:
        self._by_handle[handle] = self._by_id[request_id] = _Request(request_id, handle, n)

    def handle(self, request_id: int) -> RequestHandle | None:
        request = self._by_id.get(request_id)
        return None if request is None else request.handle

    def sink(self, batch: list[tuple[RequestHandle, TokenEvent]]) -> None:
        for handle, event in batch:
            request = self._by_handle[handle]
            if not request.announced and handle.scheduled_at is not None:
                request.announced = True
                self.started.append((request.request_id, handle.scheduled_at, handle.cached_tokens))
            self.events.append(
                (
                    request.request_id,
                    event.index,
                    event.token_id,
                    event.logprob,
                    event.top_logprobs,
                    event.finish_reason,
                )
            )
            if event.finish_reason is not None:
                request.remaining -= 1
                if request.remaining == 0:  # its last event: nothing more comes for it
                    del self._by_handle[handle], self._by_id[request.request_id]

    def step(self, batch_size: int, seconds: float) -> None:
        self.steps.append((batch_size, seconds))

    def take(self) -> Outputs | None:
        if not (self.events or self.started or self.steps):
            return None
        message = Outputs(self.events, self.started, self.steps)
        self.events, self.started, self.steps = [], [], []
        return message


def serve(
    engine: Engine, requests: Connection, outputs: Connection, build_constraint: ConstraintBuilder
) -> None:
    """Run ``engine`` (not started: this loop drives it) for the API process until it asks to shut down, or
    until the API process is gone (its end of ``requests`` closes)."""
    encoder = msgspec.msgpack.Encoder()
    outbox = _Outbox()
    engine.add_step_listener(outbox.step)
    engine.start_accepting()
    config = engine.config
    ready = Ready(
        engine.max_seq_len,
        engine.vocab_size,
        config.max_batch,
        config.max_queue,
        engine.kv_cache_bytes,
        os.getpid(),
    )
    outputs.send_bytes(encoder.encode(ready))
    drain_until: float | None = None
    torch.set_num_threads(config.num_threads or default_threads())
    with torch.inference_mode():
        while True:
            idle = not engine.has_work()
            if drain_until is not None and (idle or time.monotonic() > drain_until):
                engine.cancel_all()
                engine.step()  # ends what was cancelled, with its events
                _send(outputs, encoder, outbox)
                break
            try:
                # Wait for requests only when there is nothing to run; else look once between steps.
                while requests.poll(None if idle and drain_until is None else 0):
                    message = pickle.loads(requests.recv_bytes())
                    drain_until = _handle(message, engine, outbox, build_constraint, drain_until)
                    idle = False
            except EOFError:  # the API process is gone without a word: nobody reads our outputs
                log.error("the API process is gone; the engine process exits")
                return
            engine.step()
            _send(outputs, encoder, outbox)
    outputs.send_bytes(encoder.encode(Stopped()))


def _handle(
    message: tuple[Any, ...],
    engine: Engine,
    outbox: _Outbox,
    build_constraint: ConstraintBuilder,
    drain_until: float | None,
) -> float | None:
    kind = message[0]
    if kind == "add":
        _, request_id, prompt_ids, params, n, recipe = message
        try:
            if recipe is not None:
                params.constraint = build_constraint(recipe)
            handle = engine.submit(prompt_ids, params, n, sink=outbox.sink)
        except (EngineError, ValueError) as e:  # the API checked the request: only a race or a bad recipe
            log.warning("engine process refused request %d: %s", request_id, e)
            outbox.events.extend((request_id, i, None, None, None, "error") for i in range(n))
            return drain_until
        outbox.track(handle, request_id, n)
    elif kind == "cancel":
        handle = outbox.handle(message[1])
        if handle is not None:
            handle.cancelled = True
    elif kind == "shutdown":
        engine.stop_accepting()
        drain_until = time.monotonic() + message[1]
    else:
        raise ValueError(f"unknown request to the engine process: {kind!r}")
    return drain_until


def _send(outputs: Connection, encoder: msgspec.msgpack.Encoder, outbox: _Outbox) -> None:
    message = outbox.take()
    if message is not None:
        outputs.send_bytes(encoder.encode(message))
