"""What every endpoint shares, as vLLM's ``OpenAIServing``: a subclass per endpoint keeps only its own rules
and the shape of its chunks and response.

One request's path through an endpoint:

1. :meth:`OpenAIServing.check_request`: the model name, the endpoint's own rules, ``stream_options``, ``n``;
2. tokenize (:meth:`~OpenAIServing.render_chat`, or the endpoint's own), resolve the completion budget
   (:meth:`~OpenAIServing.completion_budget`, the one context-length check), convert the request to
   sampling (``req.to_sampling_params``), check what needs the vocabulary (:meth:`~OpenAIServing.check_params`);
3. :meth:`~OpenAIServing.admit`: refuse while draining, reserve rate-limit budget, submit to the engine, or
   raise an OpenAI error having kept nothing;
4. :meth:`~OpenAIServing.respond`: stream the events through the one stream skeleton (the endpoint writes
   its opening, per-event and closing chunks), or collect them; a client that left gets 499;
5. :meth:`server.admission.Admission.finish`: metrics, token refund and access-log fields, once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from fastapi import Request, Response

from model.engine import Engine, EngineError, PromptTooLongError, QueueFullError
from model.engine_client import EngineClient
from model.request_handle import RequestHandle
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from reasoning.arithmetic_guide import GuideVocabulary
from server.admission import Admission
from server.auth import Identity
from server.errors import APIError, retry_after_headers
from server.lifecycle import Lifecycle
from server.metrics import Metrics, RequestMetrics
from server.outputs import SequenceAccounting, TokenTexts
from server.protocol import ChatCompletionRequest, SamplingRequestFields
from server.ratelimit import RateLimiter, RateLimitExceeded
from server.responses import ChatCompletionChunk, CompletionResponse, ResponseModel, UsageInfo
from server.settings import Settings
from server.streams import TextChunkTemplate, collect, error_event, run_until_disconnect, sse_response
from server.tools import template_messages, template_tools

prompt_logger = logging.getLogger("tinyllm.prompts")

T = TypeVar("T")

# Prompt text longer than this is tokenized in a worker thread (see tokenize).
OFF_LOOP_CHARS = 16_384


@dataclass
class ServingContext:
    """What the endpoints serve with: built once the model is loaded and the engine runs."""

    settings: Settings
    engine: Engine | EngineClient
    tokenizer: Tokenizer
    limiter: RateLimiter
    metrics: Metrics
    lifecycle: Lifecycle
    generation_defaults: dict[str, Any]  # the checkpoint's generation_config.json
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

    @functools.cached_property
    def guide_vocabulary(self) -> GuideVocabulary:
        """What the calculator guide of reasoning chains needs from the tokenizer (built at start-up when the
        calculator is the server's default, else at first use)."""
        return GuideVocabulary.of(self.tokenizer)

    @property
    def default_reasoning_effort(self) -> str | None:
        """The effort of chat requests that name none: the setting, else the checkpoint's own default."""
        return self.settings.reasoning_effort or self.generation_defaults.get("reasoning_effort")


def system_fingerprint(config: dict[str, Any], quantize: str) -> str:
    """Changes when the served network or its numerics change (OpenAI's meaning of the field)."""
    blob = json.dumps(config, sort_keys=True) + "|" + quantize
    return "tinyllm-" + hashlib.sha256(blob.encode()).hexdigest()[:10]


async def tokenize(encode: Callable[..., T], *args: Any, chars: int, **kwargs: Any) -> T:
    """``encode(*args, **kwargs)``; for long text in a worker thread. SentencePiece releases the GIL while it
    encodes, and a megabyte of prompt takes it ~0.3 s: on the event loop, that would stall every stream."""
    if chars > OFF_LOOP_CHARS:
        return await asyncio.to_thread(encode, *args, **kwargs)
    return encode(*args, **kwargs)


@dataclass
class ChatPrompt:
    """A chat request's conversation, its prompt ids and its completion budget."""

    messages: list[dict[str, Any]]
    ids: list[int]
    max_tokens: int
    max_param: str  # "max_tokens" or "max_completion_tokens": the parameter errors about the budget name


@dataclass(kw_only=True)
class Generation:
    """One admitted request on its way to its response: what the stream skeleton and the endpoint's chunk
    writers share. Choice ``p * n + i`` is sequence i of prompt p."""

    request: SamplingRequestFields
    admission: Admission
    choices: Sequence[SequenceAccounting]
    n: int
    raw_request: Request
    log: dict[str, Any]  # access-log fields
    completion_id: str
    created: int = field(default_factory=lambda: int(time.time()))
    text_chunks: dict[int, TextChunkTemplate] = field(default_factory=dict)  # per choice index


class OpenAIServing:
    """Validation, admission, the stream skeleton, usage and errors; one subclass per endpoint."""

    id_prefix: ClassVar[str]  # of the completion id: "chatcmpl", "cmpl"
    chunk_type: ClassVar[type[ChatCompletionChunk] | type[CompletionResponse]]  # one streamed chunk

    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------------------------- validation

    def check_request(self, req: SamplingRequestFields) -> None:
        """The checks before any work, in the order their errors are reported."""
        if req.model != self.ctx.model_name:
            raise APIError(
                404,
                f"The model '{req.model[:100]}' does not exist. This server serves '{self.ctx.model_name}'.",
                code="model_not_found",
                param="model",
            )
        self.check_endpoint_rules(req)
        if req.stream_options is not None and not req.stream:
            raise APIError(
                400,
                "stream_options is only allowed when stream is true.",
                code="invalid_value",
                param="stream_options",
            )
        n, limit = req.n or 1, min(self.ctx.settings.max_n, self.ctx.engine.config.max_batch)
        if n > limit:
            raise APIError(
                400,
                f"n is too large: {n}. This server allows at most {limit}.",
                code="invalid_value",
                param="n",
            )

    def check_endpoint_rules(self, req: SamplingRequestFields) -> None:
        """Combinations of parameters one endpoint refuses (none by default)."""

    def context_error(self, prompt_tokens: int, max_tokens: int, param: str) -> APIError:
        what = "messages" if param == "messages" else "prompt"
        return APIError(
            400,
            f"This model's maximum context length is {self.ctx.context_len} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {what}, "
            f"{max_tokens} in the completion). Please reduce the length of the {what} or completion.",
            code="context_length_exceeded",
            param=param,
        )

    def completion_budget(
        self, requested: int | None, prompt_tokens: int, prompt_param: str, max_tokens_param: str
    ) -> int:
        """The context-length check. The budget is the request's, the server's cap and what is left of the
        context, whichever is smallest: a larger request generates until the context (or the cap) is full
        and finishes with "length", as llama.cpp does. Clients default to max_tokens of 1024-4096, more than
        a small model's context holds; refusing them would fail every such request. Only a prompt that
        leaves no room at all is a 400."""
        room = self.ctx.context_len - prompt_tokens
        if room < 1:
            raise self.context_error(prompt_tokens, requested or 1, prompt_param)
        return min(requested or room, self.ctx.settings.max_tokens, room)

    async def render_chat(self, req: ChatCompletionRequest, reasoning: bool = False) -> ChatPrompt:
        """Render and tokenize the whole conversation (reasoning: ending with ``<|assistant|><think>``) and
        resolve its completion budget against the context."""
        messages = template_messages(req.messages)
        tools = template_tools(req.tools)
        chars = sum(len(m["content"]) for m in messages) + len(json.dumps(tools or ""))
        ids = await tokenize(
            self.ctx.tokenizer.encode_chat, messages, chars=chars, reasoning=reasoning, tools=tools
        )
        max_param = req.max_tokens_param()
        max_tokens = self.completion_budget(req.requested_max_tokens(), len(ids), "messages", max_param)
        return ChatPrompt(messages, ids, max_tokens, max_param)

    def check_params(self, params: SamplingParams, max_tokens_param: str) -> None:
        """Checks that need the vocabulary or relate two parameters, with messages that say what to change."""
        vocab = self.ctx.tokenizer.vocab_size
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

    def log_prompt(self, scope: dict[str, Any], prompt: Any) -> None:
        if self.ctx.settings.log_prompts:
            prompt_logger.info(
                "prompt", extra={"request_id": scope.get("tinyllm.request_id"), "prompt": prompt}
            )

    # -------------------------------------------------------------------------------------- admission

    async def admit(
        self, identity: Identity, prompts: list[list[int]], params: SamplingParams, n: int, prompt_param: str
    ) -> Admission:
        """Reserve rate-limit budget and submit every prompt to the engine, or raise an APIError having kept
        nothing (no reservation, no queued work)."""
        ctx = self.ctx
        if ctx.lifecycle.draining or not ctx.lifecycle.ready:
            raise APIError(
                503,
                "The server is shutting down or not ready; retry shortly.",
                code="server_unavailable",
                headers=retry_after_headers(5),
            )
        prompt_tokens = sum(len(p) for p in prompts)
        try:
            reservation = await ctx.limiter.reserve(
                identity, prompt_tokens + len(prompts) * n * params.max_tokens
            )
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
            reservation.limiter.refund_request(identity)  # the store it was taken from
            error = self._submit_error(e, prompt_param)
            if error is None:
                raise
            raise error from None
        timing = RequestMetrics(ctx.metrics, handles, prompt_tokens, n, params.max_tokens)
        admission = Admission(ctx, handles, reservation, prompt_tokens, timing)
        ctx.lifecycle.track(admission)
        return admission

    def _submit_error(self, e: BaseException, prompt_param: str) -> APIError | None:
        """What the client is told when the engine refuses a submission; None for anything unforeseen."""
        if isinstance(e, QueueFullError):
            self.ctx.metrics.queue_rejections.inc()
            return APIError(
                503,
                "The server is at capacity (request queue full); retry shortly.",
                code="server_overloaded",
                headers=retry_after_headers(1),
            )
        if isinstance(e, PromptTooLongError):  # the engine's own guard; completion_budget normally acts first
            return self.context_error(e.prompt_tokens, e.max_tokens, prompt_param)
        if isinstance(e, ValueError):  # the engine's own argument checks: "invalid value for top_p"
            m = re.match(r"invalid value for (\w+)", str(e))
            param = m.group(1) if m else None
            message = f"Invalid value for '{param}'." if param else f"Invalid request: {e}."
            return APIError(400, message, code="invalid_value", param=param)
        if isinstance(e, EngineError):
            return APIError(
                503,
                "The generation engine is not running; retry shortly.",
                code="server_unavailable",
                headers=retry_after_headers(5),
            )
        return None

    def new_completion_id(self) -> str:
        return f"{self.id_prefix}-{uuid.uuid4().hex}"

    # -------------------------------------------------------------------------------------- responding

    async def respond(self, gen: Generation) -> Response:
        """Stream the generation as SSE, or wait for all of it and answer with one JSON body."""
        if gen.request.stream:
            return sse_response(self.ctx.settings, self._stream(gen), on_close=lambda: self._finish(gen))
        try:
            done = await run_until_disconnect(
                collect(gen.admission.batches(), gen.choices, gen.n), gen.raw_request, gen.admission.cancel
            )
            if done is not None:
                self.on_collected(gen)
        finally:
            self._finish(gen)
        if done is None:
            return Response(status_code=499)  # the client is gone; nobody reads this
        check_finish(gen.choices)
        return self.response(gen)

    async def _stream(self, gen: Generation) -> AsyncIterator[str]:
        """The stream skeleton: the endpoint's opening chunks, its chunks per event, an error event if the
        generation ends early, its closing chunks, the usage chunk when asked for, ``[DONE]``."""
        try:
            for chunk in self.opening_chunks(gen):
                yield chunk
            async for batch in gen.admission.batches():
                # Events that arrived together (the reader fell behind the engine) leave as one chunk per
                # choice: the text they made safe, and their logprobs, together.
                texts: dict[int, str] = {}
                failed = None
                for p, event in batch:
                    position = p * gen.n + event.index
                    choice = gen.choices[position]
                    if choice.done:  # tokens still in flight after a stop string matched
                        continue
                    texts[position] = texts.get(position, "") + choice.on_event(event)
                    if choice.finish_reason in ("cancelled", "error"):
                        failed = choice.finish_reason
                        break
                if failed is None:
                    for position, text in texts.items():
                        for chunk in self.event_chunks(gen, gen.choices[position], text):
                            yield chunk
                else:
                    yield error_event(
                        "The generation ended early: the server is shutting down or failed.",
                        "generation_" + failed,
                    )
                    return
                if all(c.done for c in gen.choices):
                    break
            for chunk in self.closing_chunks(gen):
                yield chunk
            if gen.request.include_usage():
                yield self.chunk(gen, [], usage=self.usage(gen))
            yield "[DONE]"
        finally:
            # Runs on normal end, on client disconnect (cancellation) and on shutdown: frees the slots.
            self._finish(gen)

    def _finish(self, gen: Generation) -> None:
        gen.admission.finish(gen.choices, gen.raw_request.scope, gen.log)

    def chunk(self, gen: Generation, choices: list[Any], **extra: Any) -> str:
        """One streamed chunk of this endpoint's type, as JSON."""
        return self.chunk_type(
            id=gen.completion_id,
            created=gen.created,
            model=self.ctx.model_name,
            system_fingerprint=self.ctx.fingerprint,
            choices=choices,
            **extra,
        ).model_dump_json()

    def text_chunk(self, gen: Generation, index: int, text: str) -> str:
        """``chunk(gen, [text_choice(index, text)])``, from the choice's template (see TextChunkTemplate)."""
        template = gen.text_chunks.get(index)
        if template is None:
            template = TextChunkTemplate(lambda t: self.chunk(gen, [self.text_choice(index, t)]))
            gen.text_chunks[index] = template
        return template(text)

    def text_choice(self, index: int, text: str) -> Any:
        """The endpoint's chunk choice holding only ``text``."""
        raise NotImplementedError

    def usage(self, gen: Generation) -> UsageInfo:
        completion = sum(c.num_tokens for c in gen.choices)
        prompt = gen.admission.prompt_tokens
        return UsageInfo(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={"cached_tokens": gen.admission.cached_tokens},
        )

    # What each endpoint writes. Chunks are JSON text (see chunk()).

    def opening_chunks(self, gen: Generation) -> Iterable[str]:
        """Chunks before the first token."""
        return ()

    def event_chunks(self, gen: Generation, choice: SequenceAccounting, text: str) -> Iterable[str]:
        """Chunks for one event of ``choice``, which made ``text`` safe to send."""
        raise NotImplementedError

    def closing_chunks(self, gen: Generation) -> Iterable[str]:
        """Chunks once every choice is done, before the usage chunk."""
        return ()

    def on_collected(self, gen: Generation) -> None:
        """A non-streaming generation is complete (before its accounting: the access log may take more)."""

    def response(self, gen: Generation) -> ResponseModel:
        """The non-streaming response body."""
        raise NotImplementedError


def check_finish(choices: Sequence[SequenceAccounting]) -> None:
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
