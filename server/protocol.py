"""Pydantic models of the OpenAI API requests we serve (responses and chunks: :mod:`server.responses`).

Policy for request fields (one rule, applied everywhere):

* what we serve is validated strictly (ranges as OpenAI documents them);
* fields the SDKs send that change nothing here (``store``, ``metadata``, ``user``, ...) are accepted;
* features we do not serve (images, audio, the deprecated ``functions``, ...) are refused with a 400 that
  names the parameter (``unsupported_parameter`` / ``unsupported_value``), never silently ignored;
* anything else is an unknown parameter (400 ``unknown_parameter``), as the OpenAI API answers.

Limits that depend on the server configuration (``n``, ``max_tokens``) are checked by the serving layer.
A request converts itself to the engine's :class:`~model.sampling.SamplingParams`
(:meth:`SamplingRequestFields.to_sampling_params`), from one table of defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from model.sampling import SamplingParams

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# What a sampling parameter becomes when the request leaves it out (or sends null): for the keys in
# CHECKPOINT_SAMPLING_KEYS the checkpoint's generation_config.json value first (as vLLM does: a model ships
# the sampling it was tuned for), else the value here, OpenAI's default.
SAMPLING_DEFAULTS: dict[str, float | int | bool] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "min_tokens": 0,
    "ignore_eos": False,
}
# The generation_config.json keys that set request defaults (server.loading checks them at start-up).
CHECKPOINT_SAMPLING_KEYS = frozenset({"temperature", "top_p", "top_k", "min_p", "repetition_penalty"})
# Below these, sampling is greedy. top_p: the best token alone has p >= 1/vocab > 1e-6.
MIN_TEMPERATURE, MIN_TOP_P = 1e-4, 1e-6


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


# --------------------------------------------------------------------------------------------- requests


class StreamOptions(OpenAIRequestModel):
    include_usage: bool | None = False
    # Obfuscation pads chunks against length side channels of a remote service; nothing to hide locally.
    include_obfuscation: bool | None = None


class TextContentPart(OpenAIRequestModel):
    type: Literal["text"]
    text: str


class FunctionCall(OpenAIRequestModel):
    name: str
    arguments: str


class ToolCall(OpenAIRequestModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


_ABSENT = object()  # a message without "content" (told apart from "content": null)


class ChatMessage(OpenAIRequestModel):
    role: str
    tool_calls: list[ToolCall] | None = None  # an assistant's earlier calls, rendered by the template
    tool_call_id: str | None = None  # a tool message: the call it answers
    # None only for an assistant message that carries tool_calls (fields above are validated first).
    content: str | list[TextContentPart] | None = None
    name: str | None = None  # a participant name: our chat template has no place for it
    # What the SDKs send back when a client appends ``resp.choices[0].message``: accepted, not rendered.
    # Earlier turns' reasoning is dropped, as OpenAI and DeepSeek do.
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: Any = None
    annotations: list[Any] | None = None
    audio: Any = None
    function_call: Any = None
    provider_specific_fields: Any = None

    @model_validator(mode="before")
    @classmethod
    def _mark_absent_content(cls, data: Any) -> Any:
        if isinstance(data, dict) and "content" not in data:
            return {**data, "content": _ABSENT}  # so that the content validator runs and can tell
        return data

    @field_validator("role")
    @classmethod
    def _role(cls, role: str) -> str:
        if role == "function":
            raise unsupported_value(
                "role 'function' (the deprecated function calling) is not supported: use tools and "
                "role 'tool'."
            )
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise PydanticCustomError(
                "invalid_role",
                "role must be one of 'system', 'developer', 'user', 'assistant', 'tool' (got '{role}').",
                {"role": role[:40]},
            )
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, content: Any, info: ValidationInfo) -> Any:
        if content is None or content is _ABSENT:
            if info.data.get("role") == "assistant" and info.data.get("tool_calls"):
                return None
            if content is _ABSENT:
                raise PydanticCustomError("missing", "Field required")
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

    @model_validator(mode="after")
    def _tool_call_id(self) -> ChatMessage:
        if self.role == "tool" and self.tool_call_id is None:
            raise PydanticCustomError("missing_tool_call_id", "a tool message needs tool_call_id.")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class JSONSchemaFormat(OpenAIRequestModel):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None  # every accepted schema is enforced exactly, strict or not


class ResponseFormat(OpenAIRequestModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise PydanticCustomError("missing_json_schema", "response_format json_schema needs json_schema.")
        return self


class FunctionDefinition(OpenAIRequestModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # every accepted schema is enforced exactly, strict or not


class ChatTool(OpenAIRequestModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(OpenAIRequestModel):
    name: str


class NamedToolChoice(OpenAIRequestModel):
    type: Literal["function"]
    function: NamedFunction


class SelfConsistencyOptions(OpenAIRequestModel):
    """Extension: sample k reasoning chains and majority-vote their final answers."""

    samples: int = Field(ge=1, le=1024, description="k: chains sampled and voted (capped by the server).")
    return_chains: bool = Field(False, description="List every sample's chain and answer in the response.")
    calculator: bool = Field(False, description="Check the voted answer with the safe calculator.")
    arithmetic: Literal["calculator", "model"] | None = Field(
        None,
        description="Who writes the result of each `expression=` in the chains: the safe calculator or the "
        "model alone (default: the server's TINYLLM_REASONING_ARITHMETIC).",
    )
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
    max_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
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

    def num_logprobs(self) -> int | None:
        """Alternatives to report per sampled token; None: no logprobs (each endpoint spells it its way)."""
        return None

    def to_sampling_params(self, max_tokens: int, checkpoint_defaults: Mapping[str, Any]) -> SamplingParams:
        """The engine's sampling for this request. ``max_tokens`` is the completion budget, already resolved
        against the context by the serving layer; ``checkpoint_defaults`` is the generation_config.json."""
        values: dict[str, Any] = {}
        for key, default in SAMPLING_DEFAULTS.items():
            value = getattr(self, key)
            if value is None and key in CHECKPOINT_SAMPLING_KEYS:
                value = checkpoint_defaults.get(key)
            values[key] = default if value is None else type(default)(value)
        if self.temperature is None and checkpoint_defaults.get("do_sample") is False:
            values["temperature"] = 0.0
        # Near-zero values mean greedy, and must become it: logits / 1e-300 overflow to inf and the softmax to
        # NaN; a top_p that rounds to 0 in float32 (5e-324) drops every token. A NaN in one sequence fails the
        # engine's whole decode step, every request in the batch with it.
        if values["top_p"] < MIN_TOP_P:  # OpenAI accepts 0: keep only the most likely token, i.e. greedy
            values["temperature"], values["top_p"] = 0.0, 1.0
        if values["temperature"] < MIN_TEMPERATURE:
            values["temperature"] = 0.0
        values["top_k"] = max(0, values["top_k"])  # -1 and 0 both mean off
        return SamplingParams(
            **values,
            logit_bias={int(k): float(v) for k, v in self.logit_bias.items()} if self.logit_bias else None,
            seed=self.seed,
            max_tokens=max_tokens,
            logprobs=self.num_logprobs(),
        )


class ChatCompletionRequest(SamplingRequestFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # Accepted when they ask for nothing we lack.
    modalities: list[str] | None = None
    # Structured output and tools (server.structured_output, server.tools).
    response_format: ResponseFormat | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = None
    # Refused.
    functions: Any = None
    function_call: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    # Reasoning mode: k sampled chains and a self-consistency vote (server.reasoning).
    # none/minimal: a plain answer; xhigh: the largest vote the server allows.
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    self_consistency: SelfConsistencyOptions | None = None

    @field_validator("functions", "function_call", "audio", "prediction", "web_search_options")
    @classmethod
    def _refuse(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == []:
            return value
        raise unsupported(str(info.field_name))

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: list[str] | None) -> list[str] | None:
        for m in value or []:
            if m != "text":
                raise unsupported_value(f"modality '{m[:40]}' is not supported: only 'text' is.")
        return value

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def max_tokens_param(self) -> str:
        """The name the client gave its completion budget, for errors about it."""
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    def num_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(SamplingRequestFields):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1, le=INT64_MAX)  # OpenAI's default for legacy completions
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

    def num_logprobs(self) -> int | None:
        return self.logprobs

    def prompts(self) -> list[str | list[int]]:
        """The prompts as a list: each a string or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]
