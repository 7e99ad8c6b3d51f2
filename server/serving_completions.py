"""POST /v1/completions (legacy text completions): prompt text or token ids -> engine -> text.

``prompt`` may be a string, a list of strings, a list of token ids or a list of such lists; with P prompts
and ``n`` choices each, choice ``p * n + i`` is continuation i of prompt p (OpenAI's order).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request, Response

from server.auth import Identity
from server.errors import APIError
from server.outputs import ChoiceState, SampledLogprob, TokenTexts
from server.protocol import CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse
from server.serving_engine import (
    Admission,
    ServingContext,
    admit,
    check_finish,
    check_model,
    check_n,
    check_params,
    collect,
    error_event,
    log_prompt,
    resolve_max_tokens,
    run_until_disconnect,
    sampling_params,
    sse_response,
    tokenize,
    usage_of,
)


def completion_logprobs(texts: TokenTexts, entries: list[SampledLogprob], offset: int) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for e in entries:
        out.tokens.append(texts.get(e.token_id)[0])
        out.token_logprobs.append(e.logprob)
        out.top_logprobs.append({texts.get(t)[0]: lp for t, lp in e.top})
        out.text_offset.append(offset + e.text_offset)
    return out


class ServingCompletions:
    def __init__(self, ctx: ServingContext) -> None:
        self.ctx = ctx

    def _prompt_ids(self, req: CompletionRequest) -> tuple[list[list[int]], list[str]]:
        """Token ids and text of each prompt."""
        tokenizer = self.ctx.tokenizer
        ids_list, texts = [], []
        for prompt in req.prompts():
            if isinstance(prompt, str):
                ids_list.append(tokenizer.encode(prompt))
                texts.append(prompt)
            else:
                if any(not 0 <= t < tokenizer.vocab_size for t in prompt):
                    raise APIError(
                        400,
                        f"prompt has a token id outside the vocabulary (0..{tokenizer.vocab_size - 1}).",
                        code="invalid_value",
                        param="prompt",
                    )
                ids_list.append(list(prompt))
                texts.append(tokenizer.decode(prompt))
        return ids_list, texts

    async def create(self, req: CompletionRequest, raw_request: Request, identity: Identity) -> Response:
        ctx = self.ctx
        check_model(ctx, req.model)
        n = req.n or 1
        if req.best_of is not None and req.best_of != n:
            raise APIError(
                400,
                "best_of different from n is not supported.",
                code="unsupported_parameter",
                param="best_of",
            )
        if req.echo and req.logprobs is not None:
            raise APIError(
                400,
                "echo with logprobs (prompt logprobs) is not supported.",
                code="unsupported_parameter",
                param="echo",
            )
        if req.stream_options is not None and not req.stream:
            raise APIError(
                400,
                "stream_options is only allowed when stream is true.",
                code="invalid_value",
                param="stream_options",
            )
        check_n(ctx, n)
        # Each prompt is its own engine request: more than the queue holds could never be admitted, and a 503
        # would have the client retry forever.
        limit = max(1, ctx.settings.max_queue)
        if len(req.prompts()) > limit:
            raise APIError(
                400,
                f"Too many prompts: {len(req.prompts())}. This server accepts at most {limit} per request.",
                code="invalid_value",
                param="prompt",
            )
        chars = sum(len(prompt) for prompt in req.prompts() if isinstance(prompt, str))
        prompts, prompt_texts = await tokenize(self._prompt_ids, req, chars=chars)
        longest = max(len(p) for p in prompts)
        max_tokens = resolve_max_tokens(ctx, req.max_tokens, longest, "prompt", "max_tokens")
        params = sampling_params(ctx, req, max_tokens, req.logprobs)
        check_params(ctx, params, "max_tokens")
        log_prompt(ctx, raw_request.scope, prompt_texts)
        admission = admit(ctx, identity, prompts, params, n, "prompt")
        choices = [
            ChoiceState(p * n + i, ctx.tokenizer, req.stop_list())
            for p in range(len(prompts))
            for i in range(n)
        ]
        echoes = [prompt_texts[c.index // n] if req.echo else "" for c in choices]
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        log = {
            "model": req.model,
            "stream": bool(req.stream),
            "n": n,
            "prompts": len(prompts),
            "completion_id": completion_id,
        }
        if req.stream:
            return sse_response(
                ctx,
                self._stream(req, admission, choices, echoes, n, completion_id, raw_request, log),
                on_close=lambda: admission.finish(choices, raw_request.scope, log),
            )
        try:
            done = await run_until_disconnect(collect(admission, choices, n), raw_request, admission.cancel)
        finally:
            admission.finish(choices, raw_request.scope, log)
        if done is None:
            return Response(status_code=499)  # the client is gone; nobody reads this
        check_finish(choices)
        return CompletionResponse(
            id=completion_id,
            model=ctx.model_name,
            system_fingerprint=ctx.fingerprint,
            choices=[
                CompletionChoice(
                    index=c.index,
                    text=echoes[c.index] + c.text,
                    finish_reason=c.finish_reason,
                    logprobs=completion_logprobs(ctx.texts, c.logprobs, len(echoes[c.index]))
                    if req.logprobs is not None
                    else None,
                )
                for c in choices
            ],
            usage=usage_of(admission, choices),
        )

    async def _stream(
        self,
        req: CompletionRequest,
        admission: Admission,
        choices: list[ChoiceState],
        echoes: list[str],
        n: int,
        completion_id: str,
        raw_request: Request,
        log: dict,
    ) -> AsyncIterator[str]:
        ctx = self.ctx
        created = int(time.time())

        def chunk(choice: CompletionChoice) -> str:
            return CompletionResponse(
                id=completion_id,
                created=created,
                model=ctx.model_name,
                system_fingerprint=ctx.fingerprint,
                choices=[choice],
            ).model_dump_json()

        try:
            for c in choices:
                if echoes[c.index]:
                    yield chunk(CompletionChoice(index=c.index, text=echoes[c.index]))
            async for p, event in admission.events():
                c = choices[p * n + event.index]
                if c.done:
                    continue
                text = c.on_event(event)
                if c.finish_reason in ("cancelled", "error"):
                    yield error_event(
                        "The generation ended early: the server is shutting down or failed.",
                        "generation_" + c.finish_reason,
                    )
                    return
                new_logprobs = c.take_new_logprobs() if req.logprobs is not None else []
                if text or new_logprobs:
                    logprobs = (
                        completion_logprobs(ctx.texts, new_logprobs, len(echoes[c.index]))
                        if new_logprobs
                        else None
                    )
                    yield chunk(CompletionChoice(index=c.index, text=text, logprobs=logprobs))
                if c.done:
                    yield chunk(CompletionChoice(index=c.index, text="", finish_reason=c.finish_reason))
                if all(x.done for x in choices):
                    break
            if req.include_usage():
                yield CompletionResponse(
                    id=completion_id,
                    created=created,
                    model=ctx.model_name,
                    system_fingerprint=ctx.fingerprint,
                    choices=[],
                    usage=usage_of(admission, choices),
                ).model_dump_json()
            yield "[DONE]"
        finally:
            admission.finish(choices, raw_request.scope, log)
