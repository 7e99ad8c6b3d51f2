"""Pydantic models of the OpenAI API objects we serve: requests, responses and stream chunks. Schemas only.

Policy for request fields (one rule, applied everywhere):

* what we serve is validated strictly (ranges as OpenAI documents them);
* fields the SDKs send that change nothing here (``store``, ``metadata``, ``user``, ...) are accepted;
* features we do not serve (tools, images, audio, JSON mode, ...) are refused with a 400 that names the
  parameter (``unsupported_parameter`` / ``unsupported_value``), never silently ignored;
* anything else is an unknown parameter (400 ``unknown_parameter``), as the OpenAI API answers.

Limits that depend on the server configuration (``n``, ``max_tokens``) are checked by the serving layer.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer
from pydantic_core import PydanticCustomError

from server.reasoning_schemas import SelfConsistencyResult, if_none

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def unsupported(param: str, what: str = "") -> PydanticCustomError:
    return PydanticCustomError(
        "unsupported_parameter",
        "'{param}' is not supported by this server{what}.",
        {"param": param, "what": f" ({what})" if what else ""},
    )


def unsupported_value(message: str) -> PydanticCustomError:
    return PydanticCustomError("unsupported_value", message)


class OpenAIRequestModel(BaseModel):
    # NaN and infinities are valid Python JSON but never a valid parameter. Strict types, as the OpenAI API:
    # "5" is not an integer and true is not 1 (pydantic's lax mode would read [[false]] as token id 0).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(allow_inf_nan=True)


# --------------------------------------------------------------------------------------------- requests


class StreamOptions(OpenAIRequestModel):
    include_usage: bool | None = False
    # Obfuscation pads chunks against length side channels of a remote service; nothing to hide locally.
    include_obfuscation: bool | None = None


class TextContentPart(OpenAIRequestModel):
    type: Literal["text"]
    text: str


class ChatMessage(OpenAIRequestModel):
    role: str
    content: str | list[TextContentPart]
    name: str | None = None  # a participant name: our chat template has no place for it
    refusal: str | None = None
    tool_calls: Any = None
    function_call: Any = None
    tool_call_id: Any = None
    audio: Any = None

    @field_validator("role")
    @classmethod
    def _role(cls, role: str) -> str:
        if role in ("tool", "function"):
            raise unsupported_value(
                f"role '{role}' is not supported: this server does not serve tool calling."
            )
        if role not in ("system", "developer", "user", "assistant"):
            raise PydanticCustomError(
                "invalid_role",
                "role must be one of 'system', 'developer', 'user', 'assistant' (got '{role}').",
                {"role": role[:40]},
            )
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, content: Any) -> Any:
        if content is None:
            raise PydanticCustomError("missing_content", "message content is required.")
        if isinstance(content, list):
            for i, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind is not None and kind != "text":
                    raise unsupported_value(
                        f"content part {i} has type '{str(kind)[:40]}': this server serves "
                        f"text only (no images, audio or files)."
                    )
        return content

    @field_validator("tool_calls", "function_call", "tool_call_id", "audio")
    @classmethod
    def _refuse(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == []:
            return value
        raise unsupported(str(info.field_name), "no tool calling or audio")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormat(OpenAIRequestModel):
    type: str
    json_schema: Any = None

    @field_validator("type")
    @classmethod
    def _type(cls, kind: str) -> str:
        if kind != "text":
            raise unsupported_value(f"response_format type '{kind[:40]}' is not supported: only 'text' is.")
        return kind


class SelfConsistencyOptions(OpenAIRequestModel):
    """Extension: sample k reasoning chains and majority-vote their final answers."""

    samples: int = Field(ge=1, le=1024, description="k: chains sampled and voted (capped by the server).")
    return_chains: bool = Field(False, description="List every sample's chain and answer in the response.")
    calculator: bool = Field(False, description="Check the voted answer with the safe calculator.")
    check_steps: bool = Field(
        True,
        description="Recompute every arithmetic step of each chain and trace its numbers "
        "to the question; answers of chains that check out are ranked "
        "first in the vote.",
    )


class SamplingRequestFields(OpenAIRequestModel):
    """Fields shared by chat and text completions."""

    model: str
    frequency_penalty: float | None = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    max_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(1, ge=1)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    user: str | None = None
    # Accepted, change nothing here.
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # Extensions (as vLLM and llama.cpp offer).
    top_k: int | None = Field(None, ge=-1, description="Keep the k most likely tokens (0 or -1 = off).")
    min_p: float | None = Field(None, ge=0.0, le=1.0, description="Drop tokens below min_p * p(best).")
    # Bounded: a penalty near 0 (5e-324) or huge divides logits into inf/NaN, and a NaN in one sequence's
    # sampling fails the whole decode step, every request in the batch with it.
    repetition_penalty: float | None = Field(
        None, ge=0.01, le=100.0, description="HF-style penalty over prompt+output."
    )
    min_tokens: int | None = Field(0, ge=0, description="Stop tokens are suppressed until this many tokens.")
    ignore_eos: bool | None = Field(False, description="Generate exactly max_tokens tokens.")

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, bias: dict[str, float] | None) -> dict[str, float] | None:
        for key, value in (bias or {}).items():
            # ASCII digits, one optional sign, bounded: str.isdigit() alone passes "--5", "²" and "١٢", which
            # int() refuses (a 500) or reads as some other token id.
            digits = key.removeprefix("-")
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
                raise PydanticCustomError(
                    "invalid_value", "logit_bias keys must be token ids (got '{key}').", {"key": key[:40]}
                )
            if not -100.0 <= value <= 100.0:
                raise PydanticCustomError("invalid_value", "logit_bias values must be between -100 and 100.")
        return bias

    @field_validator("stop")
    @classmethod
    def _stop(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else (stop or [])
        if len(stops) > 4:
            raise PydanticCustomError("invalid_value", "stop accepts at most 4 sequences.")
        if any(not s for s in stops) and stops != [""]:
            raise PydanticCustomError("invalid_value", "stop sequences must not be empty.")
        return stop

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return [s for s in stops if s]

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingRequestFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # Accepted when they ask for nothing we lack.
    modalities: list[str] | None = None
    response_format: ResponseFormat | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    # Refused.
    tools: Any = None
    functions: Any = None
    function_call: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    # Reasoning mode: k sampled chains and a self-consistency vote (server.reasoning).
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    self_consistency: SelfConsistencyOptions | None = None

    @field_validator("tools", "functions", "function_call", "audio", "prediction", "web_search_options")
    @classmethod
    def _refuse(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == []:
            return value
        raise unsupported(str(info.field_name))

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, value: Any) -> Any:
        if value in (None, "none"):
            return value
        raise unsupported("tool_choice", "no tool calling")

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: list[str] | None) -> list[str] | None:
        for m in value or []:
            if m != "text":
                raise unsupported_value(f"modality '{m[:40]}' is not supported: only 'text' is.")
        return value

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


class CompletionRequest(SamplingRequestFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for legacy completions
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = Field(None, ge=1)
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, prompt: Any) -> Any:
        if isinstance(prompt, list) and (not prompt or any(isinstance(p, list) and not p for p in prompt)):
            raise PydanticCustomError("invalid_value", "prompt must not be empty.")
        return prompt

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, suffix: str | None) -> str | None:
        if suffix:
            raise unsupported("suffix", "no fill-in-the-middle")
        return suffix

    def prompts(self) -> list[str | list[int]]:
        """The prompts as a list: each a string or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- responses


class UsageInfo(ResponseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: dict[str, int] | None = None


class TopLogprob(ResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(ResponseModel):
    content: list[TokenLogprob] | None = None
    refusal: None = None


class ChatCompletionMessage(ResponseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    # Reasoning mode: the chain of the sample whose answer won (absent outside reasoning mode).
    reasoning_content: str | None = Field(None, exclude_if=if_none)


class ChatCompletionChoice(ResponseModel):
    index: int
    message: ChatCompletionMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


def _created() -> int:
    return int(time.time())


class ChatCompletionResponse(ResponseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_created)
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    self_consistency: SelfConsistencyResult | None = Field(None, exclude_if=if_none)


class DeltaMessage(ResponseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatCompletionChunkChoice(ResponseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(ResponseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=_created)
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChunkChoice]
    usage: UsageInfo | None = None
    self_consistency: SelfConsistencyResult | None = Field(None, exclude_if=if_none)


class CompletionLogprobs(ResponseModel):
    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(ResponseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionResponse(ResponseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=_created)
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class ModelCard(ResponseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_created)
    owned_by: str = "tinyllm"
    max_model_len: int | None = None  # longest prompt + completion, in tokens
    kv_cache_bytes: int | None = None  # memory the KV cache preallocates for every slot together


class ModelList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(ResponseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(ResponseModel):
    error: ErrorDetail
