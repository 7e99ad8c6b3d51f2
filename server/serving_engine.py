"""What chat and text completions share (as vLLM's ``serving_engine.py``).

* :func:`admit`: the checks before any work (draining, n and max_tokens caps, context length, rate limit)
  and the engine submission, with every refusal turned into an OpenAI error;
* :func:`merged_events` and :func:`run_until_disconnect`: consuming the engine's events, cancelling the
  generation the moment the client is gone;
* :meth:`Admission.finish`: metrics, token refund and access-log fields once the request is over.

:class:`server.lifecycle.Lifecycle` (readiness, drain) is re-exported here for the modules that use it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from sse_starlette import EventSourceResponse

from model.engine import Engine, EngineError, PromptTooLongError, QueueFullError
from model.request_handle import RequestHandle, TokenEvent
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from server.auth import Identity
from server.errors import APIError, retry_after_headers
from server.lifecycle import Lifecycle
from server.logging import log_fields
from server.metrics import Metrics, RequestMetrics
from server.outputs import ChoiceState, TokenTexts
from server.protocol import ChatCompletionRequest, UsageInfo
from server.ratelimit import RateLimiter, RateLimitExceeded, Reservation
from server.settings import Settings

logger = logging.getLogger("tinyllm.server")
prompt_logger = logging.getLogger("tinyllm.prompts")

T = TypeVar("T")

# Below these, sampling is greedy (see sampling_params). top_p: the best token alone has p >= 1/vocab > 1e-6.
MIN_TEMPERATURE, MIN_TOP_P = 1e-4, 1e-6
# Prompt text longer than this is tokenized in a worker thread (see tokenize).
OFF_LOOP_CHARS = 16_384


@dataclass
class ServingContext:
    settings: Settings
    engine: Engine
    tokenizer: Tokenizer
    limiter: RateLimiter
    metrics: Metrics
    lifecycle: Lifecycle
    generation_defaults: dict[str, Any]
    fingerprint: str
    texts: TokenTexts = field(init=False)

    def __post_init__(self) -> None:
        self.texts = TokenTexts(self.tokenizer)

    @property
    def model_name(self) -> str:
        return self.settings.served_model_name

    @property
    def context_len(self) -> int:
        return self.engine.max_seq_len


def system_fingerprint(config: dict[str, Any], quantize: str) -> str:
    """Changes when the served network or its numerics change (OpenAI's meaning of the field)."""
    blob = json.dumps(config, sort_keys=True) + "|" + quantize
    return "tinyllm-" + hashlib.sha256(blob.encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------------------- admission


def context_error(ctx: ServingContext, prompt_tokens: int, max_tokens: int, param: str) -> APIError:
    what = "messages" if param == "messages" else "prompt"
    return APIError(
        400,
        f"This model's maximum context length is {ctx.context_len} tokens. However, you "
        f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {what}, "
        f"{max_tokens} in the completion). Please reduce the length of the {what} or completion.",
        code="context_length_exceeded",
        param=param,
    )


def resolve_max_tokens(
    ctx: ServingContext, requested: int | None, prompt_tokens: int, prompt_param: str, max_tokens_param: str
) -> int:
    """The completion budget: the request's (capped by config), else what fits in the context."""
    cap = ctx.settings.max_tokens
    if requested is not None and requested > cap:
        raise APIError(
            400,
            f"{max_tokens_param} is too large: {requested}. This server allows at most {cap}.",
            code="invalid_value",
            param=max_tokens_param,
        )
    room = ctx.context_len - prompt_tokens
    if requested is None:
        if room < 1:
            raise context_error(ctx, prompt_tokens, 1, prompt_param)
        return min(cap, room)
    if requested > room:
        raise context_error(ctx, prompt_tokens, requested, prompt_param)
    return requested


def check_n(ctx: ServingContext, n: int) -> None:
    limit = min(ctx.settings.max_n, ctx.engine.config.max_batch)
    if n > limit:
        raise APIError(
            400, f"n is too large: {n}. This server allows at most {limit}.", code="invalid_value", param="n"
        )


@dataclass(eq=False)  # hashed by identity: the lifecycle keeps a set of them
class Admission:
    """An admitted request: its engine handles (one per prompt), token reservation and timings."""

    ctx: ServingContext
    handles: list[RequestHandle]
    reservation: Reservation
    prompt_tokens: int
    timing: RequestMetrics
    finished: bool = False

    def cancel(self) -> None:
        for handle in self.handles:
            handle.cancel()

    async def events(self) -> AsyncIterator[tuple[int, TokenEvent]]:
        """:func:`merged_events` of the request's handles; the first token is timed as it arrives."""
        async for p, event in merged_events(self.handles):
            if event.token_id is not None:
                self.timing.on_token()
            yield p, event

    def finish(self, choices: list[ChoiceState], scope: dict[str, Any], extra_log: dict[str, Any]) -> None:
        """Once per request, whatever its end: refund unused tokens, count, time and log it."""
        if self.finished:
            return
        self.finished = True
        if not all(c.engine_finished for c in choices):
            # A stop string matched, the client left or something failed: free the slots now.
            self.cancel()
        completion_tokens = sum(c.num_tokens for c in choices)
        self.reservation.settle(self.prompt_tokens + completion_tokens)
        self.timing.finish(choices)
        self.ctx.lifecycle.untrack(self)
        log_fields(scope).update(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reasons=[c.finish_reason or "disconnected" for c in choices],
            **extra_log,
        )
        if self.ctx.settings.log_prompts:
            prompt_logger.info(
                "completion",
                extra={
                    "request_id": scope.get("tinyllm.request_id"),
                    "completions": [c.text for c in choices],
                },
            )


async def tokenize(encode: Callable[..., T], *args: Any, chars: int, **kwargs: Any) -> T:
    """``encode(*args, **kwargs)``; for long text in a worker thread. SentencePiece releases the GIL while it
    encodes, and a megabyte of prompt takes it ~0.3 s: on the event loop, that would stall every stream."""
    if chars > OFF_LOOP_CHARS:
        return await asyncio.to_thread(encode, *args, **kwargs)
    return encode(*args, **kwargs)


@dataclass
class ChatPrompt:
    """A chat request's conversation, its prompt ids and its completion budget."""

    messages: list[dict[str, str]]
    ids: list[int]
    max_tokens: int
    max_param: str  # "max_tokens" or "max_completion_tokens": the parameter errors about the budget name


async def chat_prompt(ctx: ServingContext, req: ChatCompletionRequest, reasoning: bool = False) -> ChatPrompt:
    """Render and tokenize the whole conversation (reasoning: ending with ``<|assistant|><think>``) and
    resolve its completion budget against the context."""
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    chars = sum(len(m["content"]) for m in messages)
    ids = await tokenize(ctx.tokenizer.encode_chat, messages, chars=chars, reasoning=reasoning)
    max_param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    max_tokens = resolve_max_tokens(ctx, req.requested_max_tokens(), len(ids), "messages", max_param)
    return ChatPrompt(messages, ids, max_tokens, max_param)


def _engine_value_error(e: ValueError) -> APIError:
    """The engine's own argument checks (``"invalid value for top_p"``) as a 400 naming the parameter."""
    m = re.match(r"invalid value for (\w+)", str(e))
    param = m.group(1) if m else None
    return APIError(
        400,
        f"Invalid value for '{param}'." if param else f"Invalid request: {e}.",
        code="invalid_value",
        param=param,
    )


def check_params(ctx: ServingContext, params: SamplingParams, max_tokens_param: str) -> None:
    """Checks that need the vocabulary or relate two parameters, with messages that say what to change."""
    vocab = ctx.tokenizer.vocab_size
    if params.min_tokens > params.max_tokens:
        raise APIError(
            400,
            f"min_tokens ({params.min_tokens}) must not exceed {max_tokens_param} ({params.max_tokens}).",
            code="invalid_value",
            param="min_tokens",
        )
    for token_id in params.logit_bias or {}:
        if not 0 <= token_id < vocab:
            raise APIError(
                400,
                f"logit_bias has token id {token_id}, outside the vocabulary (0..{vocab - 1}).",
                code="invalid_value",
                param="logit_bias",
            )


def admit(
    ctx: ServingContext,
    identity: Identity,
    prompts: list[list[int]],
    params: SamplingParams,
    n: int,
    prompt_param: str,
) -> Admission:
    """Reserve rate-limit budget and submit every prompt to the engine, or raise an APIError having kept
    nothing (no reservation, no queued work)."""
    if ctx.lifecycle.draining or not ctx.lifecycle.ready:
        raise APIError(
            503,
            "The server is shutting down or not ready; retry shortly.",
            code="server_unavailable",
            headers=retry_after_headers(5),
        )
    for prompt in prompts:
        if prompt_param == "prompt" and not prompt:
            raise APIError(400, "The prompt is empty.", code="invalid_value", param="prompt")
        if len(prompt) + params.max_tokens > ctx.context_len:
            raise context_error(ctx, len(prompt), params.max_tokens, prompt_param)
    prompt_tokens = sum(len(p) for p in prompts)
    try:
        reservation = ctx.limiter.admit(identity, prompt_tokens + len(prompts) * n * params.max_tokens)
    except RateLimitExceeded as e:
        ctx.metrics.rate_limited.labels(limit=e.limit).inc()
        if e.retry_after == float("inf"):
            headers = {"x-should-retry": "false"}  # the OpenAI SDKs honour this: retrying cannot help
        else:
            headers = retry_after_headers(e.retry_after)
        raise APIError(
            429,
            e.message,
            code="rate_limit_exceeded",
            type="requests" if e.limit == "requests" else "tokens",
            headers=headers,
        ) from None
    handles: list[RequestHandle] = []
    try:
        for prompt in prompts:
            handles.append(ctx.engine.submit(prompt, params, n))
    except BaseException as e:
        for handle in handles:
            handle.cancel()
        reservation.settle(0)
        ctx.limiter.refund_request(identity)
        if isinstance(e, QueueFullError):
            ctx.metrics.queue_rejections.inc()
            raise APIError(
                503,
                "The server is at capacity (request queue full); retry shortly.",
                code="server_overloaded",
                headers=retry_after_headers(1),
            ) from None
        if isinstance(e, PromptTooLongError):
            raise context_error(ctx, e.prompt_tokens, e.max_tokens, prompt_param) from None
        if isinstance(e, ValueError):
            raise _engine_value_error(e) from None
        if isinstance(e, EngineError):
            raise APIError(
                503,
                "The generation engine is not running; retry shortly.",
                code="server_unavailable",
                headers=retry_after_headers(5),
            ) from None
        raise
    timing = RequestMetrics(ctx.metrics, handles, prompt_tokens, n, params.max_tokens)
    admission = Admission(ctx, handles, reservation, prompt_tokens, timing)
    ctx.lifecycle.track(admission)
    return admission


# ----------------------------------------------------------------------------------------- consuming


async def merged_events(handles: list[RequestHandle]) -> AsyncIterator[tuple[int, TokenEvent]]:
    """``(prompt index, event)`` from every handle, in arrival order."""
    if len(handles) == 1:
        async for event in handles[0].stream():
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, TokenEvent] | None] = asyncio.Queue()

    async def forward(i: int, handle: RequestHandle) -> None:
        async for event in handle.stream():
            queue.put_nowait((i, event))
        queue.put_nowait(None)

    tasks = [asyncio.ensure_future(forward(i, h)) for i, h in enumerate(handles)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


async def run_until_disconnect(
    work: Awaitable[T], request: Request, on_disconnect: Callable[[], None]
) -> T | None:
    """Await ``work`` (a non-streaming generation) unless the client disconnects first: then
    ``on_disconnect`` frees the engine slots at once and the result is None (nobody is left to answer)."""
    work_task = asyncio.ensure_future(work)

    async def wait_disconnect() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(wait_disconnect())
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not work_task.done():
            on_disconnect()
            return None
        return work_task.result()
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()


class _SSEResponse(EventSourceResponse):
    """An SSE response that runs ``on_close`` however it ends. The stream's own ``finally`` normally does
    that work; this covers a client that leaves before the stream's first step, when the generator never
    starts and so never runs its ``finally``."""

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(events, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def sse_response(
    ctx: ServingContext, events: AsyncIterator[str], on_close: Callable[[], None]
) -> EventSourceResponse:
    """An SSE response with keep-alive comments. On shutdown the stream may run for the grace period, then the
    lifecycle cancels it and it ends with an error event; sse-starlette's own cut comes a second later, for a
    stream that cannot even send that (a client that stopped reading)."""
    return _SSEResponse(
        events,
        on_close,
        ping=ctx.settings.keepalive_seconds,
        sep="\n",
        shutdown_grace_period=ctx.settings.shutdown_grace_seconds + 1.0,
    )


def error_event(message: str, code: str) -> str:
    """An error inside a started stream (the OpenAI SDKs raise APIError on it)."""
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": code}})


def log_prompt(ctx: ServingContext, scope: dict[str, Any], prompt: Any) -> None:
    if ctx.settings.log_prompts:
        prompt_logger.info("prompt", extra={"request_id": scope.get("tinyllm.request_id"), "prompt": prompt})


def check_model(ctx: ServingContext, model: str) -> None:
    if model != ctx.model_name:
        raise APIError(
            404,
            f"The model '{model[:100]}' does not exist. This server serves '{ctx.model_name}'.",
            code="model_not_found",
            param="model",
        )


def sampling_params(ctx: ServingContext, req: Any, max_tokens: int, logprobs: int | None) -> SamplingParams:
    """SamplingParams from a chat or text completion request. A parameter the request leaves out takes the
    checkpoint's generation_config.json value (as vLLM does), else OpenAI's default."""
    gen = ctx.generation_defaults
    temperature = req.temperature if req.temperature is not None else float(gen.get("temperature", 1.0))
    if req.temperature is None and gen.get("do_sample") is False:
        temperature = 0.0
    top_p = req.top_p if req.top_p is not None else float(gen.get("top_p", 1.0))
    # Near-zero values mean greedy, and must become it: logits / 1e-300 overflow to inf and the softmax to
    # NaN; a top_p that rounds to 0 in float32 (5e-324) drops every token. A NaN in one sequence fails the
    # engine's whole decode step, every request in the batch with it.
    if top_p < MIN_TOP_P:  # OpenAI accepts 0: keep only the most likely token, i.e. greedy
        temperature, top_p = 0.0, 1.0
    if temperature < MIN_TEMPERATURE:
        temperature = 0.0
    top_k = req.top_k if req.top_k is not None else int(gen.get("top_k", 0) or 0)
    min_p = req.min_p if req.min_p is not None else float(gen.get("min_p", 0.0) or 0.0)
    repetition_penalty = (
        req.repetition_penalty
        if req.repetition_penalty is not None
        else float(gen.get("repetition_penalty", 1.0) or 1.0)
    )
    return SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=max(0, top_k),
        min_p=min_p,
        presence_penalty=req.presence_penalty or 0.0,
        frequency_penalty=req.frequency_penalty or 0.0,
        repetition_penalty=repetition_penalty,
        logit_bias={int(k): float(v) for k, v in req.logit_bias.items()} if req.logit_bias else None,
        seed=req.seed,
        max_tokens=max_tokens,
        min_tokens=req.min_tokens or 0,
        ignore_eos=bool(req.ignore_eos),
        logprobs=logprobs,
    )


def check_finish(choices: list[ChoiceState]) -> None:
    """A non-streaming request whose generation did not end normally becomes an error response."""
    reasons = {c.finish_reason for c in choices}
    if "error" in reasons:
        raise APIError(500, "The generation failed on the server; please retry.", code="generation_error")
    if "cancelled" in reasons:
        raise APIError(
            503,
            "The generation was cancelled because the server is shutting down; retry shortly.",
            code="server_unavailable",
            headers=retry_after_headers(5),
        )


async def collect(admission: Admission, choices: list[ChoiceState], n: int) -> list[ChoiceState]:
    """Consume every event of a non-streaming request; choice ``p * n + i`` is sequence i of prompt p."""
    async for p, event in admission.events():
        choices[p * n + event.index].on_event(event)
        if all(c.done for c in choices):
            break
    return choices


def usage_of(admission: Admission, choices: list[ChoiceState]) -> UsageInfo:
    completion = sum(c.num_tokens for c in choices)
    return UsageInfo(
        prompt_tokens=admission.prompt_tokens,
        completion_tokens=completion,
        total_tokens=admission.prompt_tokens + completion,
    )
