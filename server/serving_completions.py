"""POST /v1/completions (legacy text completions): prompt text or token ids -> engine -> text.

``prompt`` may be a string, a list of strings, a list of token ids or a list of such lists; with P prompts
and ``n`` choices each, choice ``p * n + i`` is continuation i of prompt p (OpenAI's order). Each prompt is
its own engine request. Stream order: the echoed prompts (with ``echo``), text chunks as they become safe
to send, a chunk with each choice's ``finish_reason``, the usage chunk when asked for, ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request, Response

from server.auth import Identity
from server.errors import APIError
from server.outputs import ChoiceState, SampledLogprob, TokenTexts
from server.protocol import CompletionRequest
from server.responses import CompletionChoice, CompletionLogprobs, CompletionResponse
from server.serving import Generation, OpenAIServing, tokenize


def completion_logprobs(texts: TokenTexts, entries: list[SampledLogprob], offset: int) -> CompletionLogprobs:
    out = CompletionLogprobs()
    for e in entries:
        out.tokens.append(texts.get(e.token_id)[0])
        out.token_logprobs.append(e.logprob)
        out.top_logprobs.append({texts.get(t)[0]: lp for t, lp in e.top})
        out.text_offset.append(offset + e.text_offset)
    return out


@dataclass(kw_only=True)
class CompletionGeneration(Generation):
    echoes: list[str]  # per choice: its prompt's text with ``echo``, else ""


class ServingCompletions(OpenAIServing):
    id_prefix = "cmpl"
    chunk_type = CompletionResponse

    def check_endpoint_rules(self, req: CompletionRequest) -> None:
        if req.best_of is not None and req.best_of != (req.n or 1):
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

    def _prompt_ids(self, req: CompletionRequest) -> tuple[list[list[int]], list[str]]:
        """Token ids and text of each prompt."""
        tokenizer = self.ctx.tokenizer
        ids_list, texts = [], []
        for prompt in req.prompts():
            if isinstance(prompt, str):
                ids_list.append(tokenizer.encode_prompt(prompt))
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
        self.check_request(req)
        n = req.n or 1
        # Each prompt is its own engine request: more than the queue holds could never all be queued, and a 503
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
        max_tokens = self.completion_budget(req.max_tokens, longest, "prompt", "max_tokens")
        params = req.to_sampling_params(max_tokens, ctx.generation_defaults)
        self.check_params(params, "max_tokens")
        if not all(prompts):  # text that encodes to no tokens (the tokenizer adds no BOS)
            raise APIError(400, "The prompt is empty.", code="invalid_value", param="prompt")
        self.log_prompt(raw_request.scope, prompt_texts)
        admission = await self.admit(identity, prompts, params, n, "prompt")
        choices = [
            ChoiceState(p * n + i, ctx.tokenizer, req.stop_list())
            for p in range(len(prompts))
            for i in range(n)
        ]
        completion_id = self.new_completion_id()
        log = {
            "model": req.model,
            "stream": bool(req.stream),
            "n": n,
            "prompts": len(prompts),
            "completion_id": completion_id,
        }
        return await self.respond(
            CompletionGeneration(
                request=req,
                admission=admission,
                choices=choices,
                n=n,
                raw_request=raw_request,
                log=log,
                completion_id=completion_id,
                echoes=[prompt_texts[c.index // n] if req.echo else "" for c in choices],
            )
        )

    def _logprobs(
        self, gen: CompletionGeneration, choice: ChoiceState, entries: list[SampledLogprob]
    ) -> CompletionLogprobs:
        return completion_logprobs(self.ctx.texts, entries, len(gen.echoes[choice.index]))

    def opening_chunks(self, gen: CompletionGeneration) -> Iterable[str]:
        return [
            self.chunk(gen, [CompletionChoice(index=c.index, text=gen.echoes[c.index])])
            for c in gen.choices
            if gen.echoes[c.index]
        ]

    def text_choice(self, index: int, text: str) -> CompletionChoice:
        return CompletionChoice(index=index, text=text)

    def event_chunks(self, gen: CompletionGeneration, choice: ChoiceState, text: str) -> Iterable[str]:
        new_logprobs = choice.take_new_logprobs() if gen.request.logprobs is not None else []
        if new_logprobs:
            logprobs = self._logprobs(gen, choice, new_logprobs)
            yield self.chunk(gen, [CompletionChoice(index=choice.index, text=text, logprobs=logprobs)])
        elif text:
            yield self.text_chunk(gen, choice.index, text)
        if choice.done:
            yield self.chunk(
                gen, [CompletionChoice(index=choice.index, text="", finish_reason=choice.finish_reason)]
            )

    def response(self, gen: CompletionGeneration) -> CompletionResponse:
        return CompletionResponse(
            id=gen.completion_id,
            model=self.ctx.model_name,
            system_fingerprint=self.ctx.fingerprint,
            choices=[
                CompletionChoice(
                    index=c.index,
                    text=gen.echoes[c.index] + c.text,
                    finish_reason=c.finish_reason,
                    logprobs=self._logprobs(gen, c, c.logprobs) if gen.request.logprobs is not None else None,
                )
                for c in gen.choices
            ],
            usage=self.usage(gen),
        )
