"""Reasoning-mode chat completions: one engine request of k samples, parsed and voted (:mod:`server.reasoning`).

Non-streaming: wait for all k samples, vote, answer with the winner's chain as ``reasoning_content``, its
final text as ``content`` and the top-level ``self_consistency`` object.

Stream order: a role chunk; ``reasoning_content`` deltas of the primary sample (index 0) as it decodes; once
every sample has finished and the vote is in, the voted final text as one ``content`` delta; the chunk with
``finish_reason`` and ``self_consistency``; the usage chunk when ``stream_options.include_usage``; ``[DONE]``.
A client that leaves cancels the engine request, i.e. all k samples at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request, Response

from server.auth import Identity
from server.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
)
from server.reasoning import (
    ReasoningPlan,
    SampleState,
    VoteOutcome,
    decide,
    question_of,
    reasoning_usage,
    vote_params,
)
from server.serving_engine import (
    Admission,
    ServingContext,
    admit,
    chat_prompt,
    check_finish,
    check_params,
    collect,
    error_event,
    log_prompt,
    run_until_disconnect,
    sampling_params,
    sse_response,
)


class ServingReasoning:
    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    async def create(
        self, req: ChatCompletionRequest, plan: ReasoningPlan, raw_request: Request, identity: Identity
    ) -> Response:
        ctx = self.ctx
        k = plan.samples
        prompt = await chat_prompt(ctx, req, reasoning=True)
        params = vote_params(sampling_params(ctx, req, prompt.max_tokens, None), req, k)
        check_params(ctx, params, prompt.max_param)
        log_prompt(ctx, raw_request.scope, prompt.messages)
        # One request for k continuations: one prefill, KV forked into k slots, decoded in the same batch.
        admission = admit(ctx, identity, [prompt.ids], params, k, "messages")
        samples = [SampleState(i, ctx.tokenizer) for i in range(k)]
        question = question_of(prompt.messages)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        log = {
            "model": req.model,
            "stream": bool(req.stream),
            "n": 1,
            "self_consistency_samples": k,
            "completion_id": completion_id,
        }
        if req.stream:
            return sse_response(
                ctx,
                self._stream(req, plan, admission, samples, question, completion_id, raw_request, log),
                on_close=lambda: admission.finish(samples, raw_request.scope, log),
            )
        outcome = None
        try:
            done = await run_until_disconnect(collect(admission, samples, k), raw_request, admission.cancel)
            if done is not None and all(s.finish_reason in ("stop", "length") for s in samples):
                outcome = self._vote(samples, plan, question, log)  # before finish(): the access log has it
        finally:
            admission.finish(samples, raw_request.scope, log)
        if done is None:
            return Response(status_code=499)  # the client is gone; nobody reads this
        check_finish(samples)
        assert outcome is not None
        winner = outcome.winner
        return ChatCompletionResponse(
            id=completion_id,
            model=ctx.model_name,
            system_fingerprint=ctx.fingerprint,
            choices=[
                ChatCompletionChoice(
                    index=0,
                    message=ChatCompletionMessage(
                        content=winner.content, reasoning_content=winner.reasoning_content
                    ),
                    finish_reason=winner.finish_reason,
                )
            ],
            usage=reasoning_usage(admission.prompt_tokens, samples),
            self_consistency=outcome.result,
        )

    def _vote(self, samples: list[SampleState], plan: ReasoningPlan, question: str, log: dict) -> VoteOutcome:
        outcome = decide(samples, plan, question)
        self.ctx.metrics.sc_samples.observe(plan.samples)
        self.ctx.metrics.sc_agreement.observe(outcome.agreement)
        log.update(self_consistency_agreement=round(outcome.agreement, 3))
        return outcome

    async def _stream(
        self,
        req: ChatCompletionRequest,
        plan: ReasoningPlan,
        admission: Admission,
        samples: list[SampleState],
        question: str,
        completion_id: str,
        raw_request: Request,
        log: dict,
    ) -> AsyncIterator[str]:
        ctx = self.ctx
        created = int(time.time())

        def chunk(delta: DeltaMessage, finish_reason: str | None = None, **extra: object) -> str:
            return ChatCompletionChunk(
                id=completion_id,
                created=created,
                model=ctx.model_name,
                system_fingerprint=ctx.fingerprint,
                choices=[ChatCompletionChunkChoice(index=0, delta=delta, finish_reason=finish_reason)],
                **extra,
            ).model_dump_json()

        try:
            yield chunk(DeltaMessage(role="assistant"))
            async for _, event in admission.events():
                sample = samples[event.index]
                delta = sample.on_event(event)
                if sample.finish_reason in ("cancelled", "error"):
                    yield error_event(
                        "The generation ended early: the server is shutting down or failed.",
                        "generation_" + sample.finish_reason,
                    )
                    return
                if delta and sample.index == 0:
                    yield chunk(DeltaMessage(reasoning_content=delta))
                if all(s.done for s in samples):
                    break
            outcome = self._vote(samples, plan, question, log)
            yield chunk(DeltaMessage(content=outcome.winner.content))
            yield chunk(
                DeltaMessage(), finish_reason=outcome.winner.finish_reason, self_consistency=outcome.result
            )
            if req.include_usage():
                yield ChatCompletionChunk(
                    id=completion_id,
                    created=created,
                    model=ctx.model_name,
                    system_fingerprint=ctx.fingerprint,
                    choices=[],
                    usage=reasoning_usage(admission.prompt_tokens, samples),
                ).model_dump_json()
            yield "[DONE]"
        finally:
            # Runs on normal end, on client disconnect (cancellation) and on shutdown: frees all k slots.
            admission.finish(samples, raw_request.scope, log)
