"""POST /v1/chat/completions: messages -> chat template -> prompt ids -> engine -> response or SSE chunks.

Stream order (as OpenAI): one role chunk per choice, content chunks as text becomes safe to send (choices
interleaved by index as their tokens decode), a chunk with each choice's ``finish_reason``, the usage chunk
when ``stream_options.include_usage`` is set, then ``data: [DONE]``.

A request with ``reasoning_effort`` or ``self_consistency`` goes to :class:`ServingReasoning` instead.
With ``response_format`` or ``tools`` the output follows a grammar (server.constrained_output); under a
tool plan, text becomes ``tool_calls`` (server.tools), streamed as OpenAI streams them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi import Request, Response

from server.auth import Identity
from server.constrained_output import plan_output, refuse_in_reasoning_mode
from server.errors import APIError
from server.outputs import ChoiceState, SampledLogprob, TokenTexts
from server.protocol import ChatCompletionRequest
from server.reasoning import resolve_plan
from server.responses import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionMessage,
    ChatCompletionResponse,
    ChoiceLogprobs,
    DeltaMessage,
    TokenLogprob,
    TopLogprob,
)
from server.serving import Generation, OpenAIServing, ServingContext
from server.serving_reasoning import ServingReasoning
from server.tools import ToolCallStreamParser, ToolPlan, finish_reason_of, response_message, stream_deltas


def chat_logprobs(texts: TokenTexts, entries: list[SampledLogprob]) -> ChoiceLogprobs:
    content = []
    for e in entries:
        token, raw = texts.get(e.token_id)
        top = [TopLogprob(token=texts.get(t)[0], logprob=lp, bytes=texts.get(t)[1]) for t, lp in e.top]
        content.append(TokenLogprob(token=token, logprob=e.logprob, bytes=raw, top_logprobs=top))
    return ChoiceLogprobs(content=content)


@dataclass(kw_only=True)
class ChatGeneration(Generation):
    tools: ToolPlan | None = None  # the output's text becomes tool_calls
    parsers: list[ToolCallStreamParser] = field(default_factory=list)  # per choice, when streaming tools


class ServingChat(OpenAIServing):
    id_prefix = "chatcmpl"
    chunk_type = ChatCompletionChunk

    def __init__(self, ctx: ServingContext) -> None:
        super().__init__(ctx)
        self.reasoning = ServingReasoning(ctx)

    def check_endpoint_rules(self, req: ChatCompletionRequest) -> None:
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(
                400, "top_logprobs requires logprobs to be true.", code="invalid_value", param="top_logprobs"
            )

    async def create(self, req: ChatCompletionRequest, raw_request: Request, identity: Identity) -> Response:
        ctx = self.ctx
        self.check_request(req)
        tokenizer = ctx.tokenizer
        plan = resolve_plan(req, ctx.settings, ctx.engine.config.max_batch, ctx.default_reasoning_effort)
        if plan is not None:  # reasoning_effort / self_consistency: k chains and a vote
            refuse_in_reasoning_mode(req)
            return await self.reasoning.create(req, plan, raw_request, identity)
        n = req.n or 1
        output = await plan_output(req, tokenizer, ctx.engine.vocab_size)
        prompt = await self.render_chat(req)
        params = req.to_sampling_params(prompt.max_tokens, ctx.generation_defaults)
        params.constraint = output.constraint
        self.check_params(params, prompt.max_param)
        self.log_prompt(raw_request.scope, prompt.messages)
        admission = await self.admit(identity, [prompt.ids], params, n, "messages")
        completion_id = self.new_completion_id()
        return await self.respond(
            ChatGeneration(
                request=req,
                admission=admission,
                choices=[ChoiceState(i, tokenizer, req.stop_list()) for i in range(n)],
                n=n,
                raw_request=raw_request,
                log={"model": req.model, "stream": bool(req.stream), "n": n, "completion_id": completion_id},
                completion_id=completion_id,
                tools=output.tools,
                parsers=[ToolCallStreamParser() for _ in range(n)] if output.tools else [],
            )
        )

    def _choice_chunk(
        self,
        gen: Generation,
        index: int,
        delta: DeltaMessage,
        finish_reason: str | None = None,
        logprobs: ChoiceLogprobs | None = None,
    ) -> str:
        choice = ChatCompletionChunkChoice(
            index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason
        )
        return self.chunk(gen, [choice])

    def opening_chunks(self, gen: Generation) -> Iterable[str]:
        return [
            self._choice_chunk(gen, c.index, DeltaMessage(role="assistant", content="")) for c in gen.choices
        ]

    def text_choice(self, index: int, text: str) -> ChatCompletionChunkChoice:
        return ChatCompletionChunkChoice(index=index, delta=DeltaMessage(content=text))

    def event_chunks(self, gen: ChatGeneration, choice: ChoiceState, text: str) -> Iterable[str]:
        new_logprobs = choice.take_new_logprobs() if gen.request.logprobs else []
        logprobs = chat_logprobs(self.ctx.texts, new_logprobs) if new_logprobs else None
        finish_reason = choice.finish_reason
        if gen.parsers:  # content and tool-call pieces; logprobs ride on the first delta
            parser = gen.parsers[choice.index]
            for delta in stream_deltas(parser, text, choice.done):
                yield self._choice_chunk(gen, choice.index, delta, logprobs=logprobs)
                logprobs = None
            if logprobs is not None:
                yield self._choice_chunk(gen, choice.index, DeltaMessage(), logprobs=logprobs)
            finish_reason = finish_reason_of(parser.calls, finish_reason)
        elif new_logprobs:
            yield self._choice_chunk(gen, choice.index, DeltaMessage(content=text), logprobs=logprobs)
        elif text:
            yield self.text_chunk(gen, choice.index, text)
        if choice.done:
            yield self._choice_chunk(gen, choice.index, DeltaMessage(), finish_reason=finish_reason)

    def response(self, gen: ChatGeneration) -> ChatCompletionResponse:
        messages = [
            response_message(c.text, c.finish_reason)
            if gen.tools
            else (ChatCompletionMessage(content=c.text), c.finish_reason)
            for c in gen.choices
        ]
        return ChatCompletionResponse(
            id=gen.completion_id,
            model=self.ctx.model_name,
            system_fingerprint=self.ctx.fingerprint,
            choices=[
                ChatCompletionChoice(
                    index=c.index,
                    message=message,
                    logprobs=chat_logprobs(self.ctx.texts, c.logprobs) if gen.request.logprobs else None,
                    finish_reason=finish_reason,
                )
                for c, (message, finish_reason) in zip(gen.choices, messages, strict=True)
            ],
            usage=self.usage(gen),
        )
