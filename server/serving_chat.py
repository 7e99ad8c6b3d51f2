"""POST /v1/chat/completions: messages -> chat template -> prompt ids -> engine -> response or SSE chunks.

Stream order (as OpenAI): one role chunk per choice, content chunks as text becomes safe to send (choices
interleaved by index as their tokens decode), a chunk with each choice's ``finish_reason``, the usage chunk
when ``stream_options.include_usage`` is set, then ``data: [DONE]``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request, Response

from server.auth import Identity
from server.errors import APIError
from server.outputs import ChoiceState, SampledLogprob, TokenTexts
from server.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprob,
    TopLogprob,
)
from server.reasoning import resolve_plan
from server.serving_engine import (
    Admission,
    ServingContext,
    admit,
    chat_prompt,
    check_finish,
    check_model,
    check_n,
    check_params,
    collect,
    error_event,
    log_prompt,
    run_until_disconnect,
    sampling_params,
    sse_response,
    usage_of,
)
from server.serving_reasoning import ServingReasoning


def chat_logprobs(texts: TokenTexts, entries: list[SampledLogprob]) -> ChoiceLogprobs:
    content = []
    for e in entries:
        token, raw = texts.get(e.token_id)
        top = [TopLogprob(token=texts.get(t)[0], logprob=lp, bytes=texts.get(t)[1]) for t, lp in e.top]
        content.append(TokenLogprob(token=token, logprob=e.logprob, bytes=raw, top_logprobs=top))
    return ChoiceLogprobs(content=content)


class ServingChat:
    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx
        self.reasoning = ServingReasoning(ctx)

    def _validate(self, req: ChatCompletionRequest) -> None:
        check_model(self.ctx, req.model)
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(
                400, "top_logprobs requires logprobs to be true.", code="invalid_value", param="top_logprobs"
            )
        if req.stream_options is not None and not req.stream:
            raise APIError(
                400,
                "stream_options is only allowed when stream is true.",
                code="invalid_value",
                param="stream_options",
            )
        check_n(self.ctx, req.n or 1)

    async def create(self, req: ChatCompletionRequest, raw_request: Request, identity: Identity) -> Response:
        ctx = self.ctx
        self._validate(req)
        tokenizer = ctx.tokenizer
        plan = resolve_plan(
            req,
            ctx.settings,
            ctx.engine.config.max_batch,
            tokenizer.think_id is not None and tokenizer.think_end_id is not None,
        )
        if plan is not None:  # reasoning_effort / self_consistency: k chains and a vote
            return await self.reasoning.create(req, plan, raw_request, identity)
        n = req.n or 1
        prompt = await chat_prompt(ctx, req)
        params = sampling_params(
            ctx, req, prompt.max_tokens, (req.top_logprobs or 0) if req.logprobs else None
        )
        check_params(ctx, params, prompt.max_param)
        log_prompt(ctx, raw_request.scope, prompt.messages)
        admission = admit(ctx, identity, [prompt.ids], params, n, "messages")
        choices = [ChoiceState(i, ctx.tokenizer, req.stop_list()) for i in range(n)]
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        log = {"model": req.model, "stream": bool(req.stream), "n": n, "completion_id": completion_id}
        if req.stream:
            return sse_response(
                ctx,
                self._stream(req, admission, choices, completion_id, raw_request, log),
                on_close=lambda: admission.finish(choices, raw_request.scope, log),
            )
        try:
            done = await run_until_disconnect(collect(admission, choices, n), raw_request, admission.cancel)
        finally:
            admission.finish(choices, raw_request.scope, log)
        if done is None:
            return Response(status_code=499)  # the client is gone; nobody reads this
        check_finish(choices)
        return ChatCompletionResponse(
            id=completion_id,
            model=ctx.model_name,
            system_fingerprint=ctx.fingerprint,
            choices=[
                ChatCompletionChoice(
                    index=c.index,
                    message=ChatCompletionMessage(content=c.text),
                    logprobs=chat_logprobs(ctx.texts, c.logprobs) if req.logprobs else None,
                    finish_reason=c.finish_reason,
                )
                for c in choices
            ],
            usage=usage_of(admission, choices),
        )

    async def _stream(
        self,
        req: ChatCompletionRequest,
        admission: Admission,
        choices: list[ChoiceState],
        completion_id: str,
        raw_request: Request,
        log: dict,
    ) -> AsyncIterator[str]:
        ctx = self.ctx
        created = int(time.time())

        def chunk(
            index: int,
            delta: DeltaMessage,
            finish_reason: str | None = None,
            logprobs: ChoiceLogprobs | None = None,
        ) -> str:
            return ChatCompletionChunk(
                id=completion_id,
                created=created,
                model=ctx.model_name,
                system_fingerprint=ctx.fingerprint,
                choices=[
                    ChatCompletionChunkChoice(
                        index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason
                    )
                ],
            ).model_dump_json()

        try:
            for c in choices:
                yield chunk(c.index, DeltaMessage(role="assistant", content=""))
            async for _, event in admission.events():
                c = choices[event.index]
                if c.done:
                    continue
                text = c.on_event(event)
                if c.finish_reason in ("cancelled", "error"):
                    yield error_event(
                        "The generation ended early: the server is shutting down or failed.",
                        "generation_" + c.finish_reason,
                    )
                    return
                new_logprobs = c.take_new_logprobs() if req.logprobs else []
                if text or new_logprobs:
                    yield chunk(
                        c.index,
                        DeltaMessage(content=text),
                        logprobs=chat_logprobs(ctx.texts, new_logprobs) if new_logprobs else None,
                    )
                if c.done:
                    yield chunk(c.index, DeltaMessage(), finish_reason=c.finish_reason)
                if all(x.done for x in choices):
                    break
            if req.include_usage():
                yield ChatCompletionChunk(
                    id=completion_id,
                    created=created,
                    model=ctx.model_name,
                    system_fingerprint=ctx.fingerprint,
                    choices=[],
                    usage=usage_of(admission, choices),
                ).model_dump_json()
            yield "[DONE]"
        finally:
            # Runs on normal end, on client disconnect (cancellation) and on shutdown: frees the slots.
            admission.finish(choices, raw_request.scope, log)
