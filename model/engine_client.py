"""The API process's side of an engine running in its own process (:mod:`model.engine_core`).

:class:`EngineClient` offers what the server uses of :class:`model.engine.Engine` — ``submit`` returning a
:class:`~model.request_handle.RequestHandle`, ``stats``, ``shutdown``, the limits — so the serving code does
not know where the engine runs. It checks a request before sending it (the same checks as the engine, so bad
input still fails at once with the parameter named), keeps the queue bound itself (it knows which of its
requests the engine has started), and one receiver thread hands each step's events to their handles with the
engine's own :func:`~model.request_handle.deliver`.

If the engine process dies, every request in flight ends with ``"error"``, ``is_running`` turns false and
``is_dead`` true (the readiness and liveness probes then fail) and new requests are refused.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import msgspec

from model.engine import EngineError, EngineStats, QueueFullError, check_prompt, check_request
from model.engine_core import OutputMessage, Outputs, Ready, Stopped
from model.request_handle import GenerationResult, RequestHandle, TokenEvent, deliver, wait_for_results
from model.sampling import SamplingParams

log = logging.getLogger("tinyllm.engine")


@dataclass
class ClientConfig:
    """The engine's limits as the engine process reported them (the subset of EngineConfig callers read)."""

    max_batch: int
    max_queue: int


@dataclass
class _Tracked:
    handle: RequestHandle
    n: int
    finished: set[int] = field(default_factory=set)  # indices of the sequences that ended
    started: bool = False

    @property
    def running(self) -> int:
        """Sequences started and not finished."""
        return self.n - len(self.finished) if self.started else 0


class EngineClient:
    def __init__(self, process: BaseProcess, requests: Connection, outputs: Connection) -> None:
        """Use :func:`connect`: it waits for the engine process to be ready."""
        self._process = process
        self._requests = requests  # written under self._lock, from any thread
        self._outputs = outputs  # read by the receiver thread only (after connect)
        self._decoder = msgspec.msgpack.Decoder(OutputMessage)
        self._lock = threading.Lock()
        self._tracked: dict[int, _Tracked] = {}
        self._accepting = True
        self._alive = True
        self._stopping = False  # shutdown() was called
        self._stopped = threading.Event()
        self._step_listeners: list[Callable[[int, float], None]] = []
        self._last_batch_size = 0
        self._receiver: threading.Thread | None = None
        self.max_seq_len = 0
        self.vocab_size = 0
        self.kv_cache_bytes = 0
        self.config = ClientConfig(0, 0)
        self.pid = 0  # the engine process's

    def _wait_ready(self, timeout: float) -> None:
        """The engine process's first message; raises EngineError if it dies or stays silent."""
        waited = 0.0
        while not self._outputs.poll(0.2):
            waited += 0.2
            if not self._process.is_alive():
                raise EngineError(
                    f"the engine process exited while starting (exit code {self._process.exitcode})"
                )
            if waited > timeout:
                raise EngineError(f"the engine process was not ready after {timeout:.0f} s")
        ready = self._decoder.decode(self._outputs.recv_bytes())
        if not isinstance(ready, Ready):
            raise EngineError(f"the engine process sent {type(ready).__name__} before Ready")
        self.max_seq_len, self.vocab_size, self.kv_cache_bytes = (
            ready.max_seq_len,
            ready.vocab_size,
            ready.kv_cache_bytes,
        )
        self.config = ClientConfig(ready.max_batch, ready.max_queue)
        self.pid = ready.pid
        self._receiver = threading.Thread(target=self._receive, name="tinyllm-engine-client", daemon=True)
        self._receiver.start()

    # ---- what the server calls (the Engine's interface) --------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._alive and self._accepting

    @property
    def is_dead(self) -> bool:
        """The engine process ended without being asked to: nothing will ever run again."""
        return not self._alive and not self._stopping

    def add_step_listener(self, listener: Callable[[int, float], None]) -> None:
        """``listener(batch_size, seconds)`` for every decode step, called on the receiver thread."""
        self._step_listeners.append(listener)

    def check_prompt(self, prompt_tokens: int, max_tokens: int) -> None:
        check_prompt(prompt_tokens, max_tokens, self.max_seq_len)

    def check_request(self, prompt_ids: list[int], params: SamplingParams, n: int) -> None:
        check_request(prompt_ids, params, n, self.config.max_batch, self.vocab_size, self.max_seq_len)

    def submit(self, prompt_ids: list[int], params: SamplingParams, n: int = 1) -> RequestHandle:
        self.check_request(prompt_ids, params, n)
        recipe = params.constraint.recipe() if params.constraint is not None else None
        handle = RequestHandle(n, lambda: self._send(("cancel", handle.request_id)))
        with self._lock:
            if not (self._accepting and self._alive):
                raise EngineError("the engine is not accepting requests (not started or shutting down)")
            waiting = sum(not t.started for t in self._tracked.values())
            if waiting >= self.config.max_queue:
                raise QueueFullError(f"the waiting queue is full ({self.config.max_queue} requests)")
            self._tracked[handle.request_id] = _Tracked(handle, n)
            self._write(
                ("add", handle.request_id, list(prompt_ids), replace(params, constraint=None), n, recipe)
            )
        return handle

    def generate(self, prompt_ids: list[int], params: SamplingParams, n: int = 1) -> list[GenerationResult]:
        """Blocking convenience for scripts and evaluation: returns the n finished sequences."""
        return wait_for_results(self.submit(prompt_ids, params, n))

    def stats(self) -> EngineStats:
        with self._lock:
            started = [t for t in self._tracked.values() if t.started]
            running = sum(t.running for t in started)
            return EngineStats(
                running=running,
                waiting=len(self._tracked) - len(started),
                slots_total=self.config.max_batch,
                slots_used=running,
                last_batch_size=self._last_batch_size,
                running_requests=sum(t.running > 0 for t in started),
            )

    def stop_accepting(self) -> None:
        self._accepting = False

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop admitting; the engine process lets running and queued requests finish for up to ``timeout``
        seconds, cancels what is left (its events still arrive) and exits."""
        self._stopping = True
        self.stop_accepting()
        if self._alive:
            self._send(("shutdown", timeout))
            self._stopped.wait(timeout + 5.0)
        self._process.join(timeout=5.0)
        if self._process.is_alive():
            log.warning("the engine process did not exit; terminating it")
            self._process.terminate()
            self._process.join(timeout=5.0)
        self._alive = False
        if self._receiver is not None:
            self._receiver.join(timeout=2.0)
        self._requests.close()

    # ---- the receiver thread -----------------------------------------------------------------------------

    def _send(self, message: tuple) -> None:
        with self._lock:
            if self._alive:
                try:
                    self._write(message)
                except OSError:  # the engine process is gone; the receiver reports it
                    pass

    def _write(self, message: tuple) -> None:
        """One request to the engine process (the caller holds self._lock)."""
        self._requests.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _receive(self) -> None:
        while True:
            try:
                message = self._decoder.decode(self._outputs.recv_bytes())
            except (EOFError, OSError):  # its end closed: the engine process died
                self._process.join(timeout=1.0)
                log.error("the engine process died (exit code %s)", self._process.exitcode)
                break
            if isinstance(message, Stopped):
                break
            if isinstance(message, Outputs):
                self._dispatch(message)
        self._alive = False
        self._outputs.close()
        self._fail_all()
        self._stopped.set()

    def _dispatch(self, message: Outputs) -> None:
        items: list[tuple[RequestHandle, TokenEvent]] = []
        with self._lock:
            for request_id, scheduled_at, cached_tokens in message.started:
                tracked = self._tracked.get(request_id)
                if tracked is not None:
                    tracked.handle.scheduled_at, tracked.handle.cached_tokens = scheduled_at, cached_tokens
                    tracked.started = True
            for request_id, index, token_id, logprob, top, finish_reason in message.events:
                tracked = self._tracked.get(request_id)
                if tracked is None:
                    continue
                top_logprobs = [tuple(pair) for pair in top] if top is not None else None
                items.append(
                    (tracked.handle, TokenEvent(index, token_id, logprob, top_logprobs, finish_reason))
                )
                if finish_reason is not None:
                    tracked.finished.add(index)
                    if len(tracked.finished) == tracked.n:
                        del self._tracked[request_id]
            if message.steps:
                self._last_batch_size = message.steps[-1][0]
        for batch_size, seconds in message.steps:
            for listener in self._step_listeners:
                listener(batch_size, seconds)
        deliver(items)

    def _fail_all(self) -> None:
        """End every request still in flight with "error": the engine process is gone."""
        with self._lock:
            tracked, self._tracked = list(self._tracked.values()), {}
        items: list[tuple[RequestHandle, TokenEvent]] = []
        for t in tracked:
            items.extend(
                (t.handle, TokenEvent(i, None, finish_reason="error"))
                for i in range(t.n)
                if i not in t.finished
            )
        deliver(items)


def connect(
    process: BaseProcess,
    requests: Connection,
    outputs: Connection,
    child_ends: tuple[Connection, ...],
    timeout: float = 600.0,
) -> EngineClient:
    """Start ``process`` (not yet started; it runs :func:`model.engine_core.serve` on the other ends of the
    ``requests`` and ``outputs`` pipes, ``child_ends``) and wait until it reports ready. Raises EngineError if
    it exits or stays silent."""
    client = EngineClient(process, requests, outputs)
    process.start()
    for end in child_ends:  # the child has its copies: with ours closed, its death reads as end-of-file here
        end.close()
    try:
        client._wait_ready(timeout)
    except EngineError:
        if process.is_alive():
            process.terminate()
        process.join(timeout=5.0)
        requests.close()
        outputs.close()
        raise
    return client
