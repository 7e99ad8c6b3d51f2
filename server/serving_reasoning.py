"""Reasoning-mode chat completions: one engine request of k samples, parsed and voted (:mod:`server.reasoning`).

Non-streaming: wait for all k samples, vote, answer with the winner's chain as ``reasoning_content``, its
final text as ``content`` and the top-level ``self_consistency`` object.

Stream order: a role chunk; ``reasoning_content`` deltas of the primary sample (index 0) as it decodes; once
every sample has finished and the vote is in, the voted final text as one ``content`` delta; the chunk with
``finish_reason`` and ``self_consistency``; the usage chunk when ``stream_options.include_usage``; ``[DONE]``.
A client that leaves cancels the engine request, i.e. all k samples at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from reasoning.arithmetic_guide import ArithmeticGuide
from server.auth import Identity
from server.protocol import ChatCompletionRequest
from server.reasoning import (
    ReasoningPlan,
    SampleState,
    VoteOutcome,
    decide,
    question_of,
    reasoning_usage,
    vote_params,
)
from server.responses import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionResponse,
    DeltaMessage,
    UsageInfo,
)
from server.serving import Generation, OpenAIServing


@dataclass(kw_only=True)
class ReasoningGeneration(Generation):
    plan: ReasoningPlan
    question: str  # what the calculator reads
    outcome: VoteOutcome | None = None  # the vote, once every sample has finished


class ServingReasoning(OpenAIServing):
    """Entered from :class:`server.serving_chat.ServingChat`, which has validated the request."""

    id_prefix = "chatcmpl"
    chunk_type = ChatCompletionChunk

    async def create(
        self, req: ChatCompletionRequest, plan: ReasoningPlan, raw_request: Request, identity: Identity
    ) -> Response:
        ctx = self.ctx
        k = plan.samples
        prompt = await self.render_chat(req, reasoning=True)
        params = vote_params(req.to_sampling_params(prompt.max_tokens, ctx.generation_defaults), req, k)
        question = question_of(prompt.messages)
        if plan.arithmetic == "calculator":  # forked for each of the k samples
            params.constraint = ArithmeticGuide(ctx.guide_vocabulary, question)
        self.check_params(params, prompt.max_param)
        self.log_prompt(raw_request.scope, prompt.messages)
        # One request for k continuations: one prefill, KV forked into k slots, decoded in the same batch.
        admission = await self.admit(identity, [prompt.ids], params, k, "messages")
        completion_id = self.new_completion_id()
        log = {
            "model": req.model,
            "stream": bool(req.stream),
            "n": 1,
            "self_consistency_samples": k,
            "completion_id": completion_id,
        }
        return await self.respond(
            ReasoningGeneration(
                request=req,
                admission=admission,
                choices=[SampleState(i, ctx.tokenizer) for i in range(k)],
                n=k,
                raw_request=raw_request,
                log=log,
                completion_id=completion_id,
                plan=plan,
                question=question,
            )
        )

    def _vote(self, gen: ReasoningGeneration) -> VoteOutcome:
        """Vote once every sample has finished; the agreement goes to the metrics and the access log."""
        outcome = gen.outcome = decide(gen.choices, gen.plan, gen.question)
        self.ctx.metrics.sc_samples.observe(gen.plan.samples)
        self.ctx.metrics.sc_agreement.observe(outcome.agreement)
        gen.log.update(self_consistency_agreement=round(outcome.agreement, 3))
        return outcome

    def usage(self, gen: Generation) -> UsageInfo:
        return reasoning_usage(gen.admission.prompt_tokens, gen.admission.cached_tokens, gen.choices)

    def _delta_chunk(
        self, gen: Generation, delta: DeltaMessage, finish_reason: str | None = None, **extra: Any
    ) -> str:
        choice = ChatCompletionChunkChoice(index=0, delta=delta, finish_reason=finish_reason)
        return self.chunk(gen, [choice], **extra)

    def opening_chunks(self, gen: Generation) -> Iterable[str]:
        return [self._delta_chunk(gen, DeltaMessage(role="assistant"))]

    def event_chunks(self, gen: Generation, choice: SampleState, text: str) -> Iterable[str]:
        if text and choice.index == 0:  # the primary sample's chain streams; the others are only voted
            return [self._delta_chunk(gen, DeltaMessage(reasoning_content=text))]
        return []

    def closing_chunks(self, gen: ReasoningGeneration) -> Iterable[str]:
        outcome = self._vote(gen)
        yield self._delta_chunk(gen, DeltaMessage(content=outcome.winner.content))
        yield self._delta_chunk(
            gen, DeltaMessage(), finish_reason=outcome.winner.finish_reason, self_consistency=outcome.result
        )

    def on_collected(self, gen: ReasoningGeneration) -> None:
        if all(s.finish_reason in ("stop", "length") for s in gen.choices):
            self._vote(gen)  # before the accounting: the access log has the agreement

    def response(self, gen: ReasoningGeneration) -> ChatCompletionResponse:
        assert gen.outcome is not None  # every sample ended with stop or length (check_finish said so)
        winner = gen.outcome.winner
        return ChatCompletionResponse(
            id=gen.completion_id,
            model=self.ctx.model_name,
            system_fingerprint=self.ctx.fingerprint,
            choices=[
                ChatCompletionChoice(
                    index=0,
                    message=ChatCompletionMessage(
                        content=winner.content, reasoning_content=winner.reasoning_content or None
                    ),
                    finish_reason=winner.finish_reason,
                )
            ],
            usage=self.usage(gen),
            self_consistency=gen.outcome.result,
        )
