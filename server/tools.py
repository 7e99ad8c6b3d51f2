"""Tool calling: the request's tools as a grammar, and the model's output back as ``tool_calls``.

The model writes a call in the chat template's format (Hermes style, as Qwen and many tool-tuned models):
``<tool_call>\\n{"name": "get_weather", "arguments": {...}}\\n</tool_call>``. The grammar (an xgrammar
structural tag) enforces it:

* ``tool_choice: "required"`` or a named function: only calls, each one's ``arguments`` valid under that
  function's ``parameters`` schema; with ``parallel_tool_calls: false`` exactly one;
* ``"auto"``: free text, and once the model writes ``<tool_call>`` a complete, valid call;
* ``"none"``: no grammar and no parsing (the tools are still shown to the model, as OpenAI does).

The call's framing ends with ``}\\n</tool_call>``, which JSON cannot contain (a newline inside a string is
escaped), so the end of ``arguments`` is found without parsing.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from server.errors import APIError
from server.responses import (
    ChatCompletionMessage,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
    FunctionCallOut,
    ToolCallOut,
)
from server.structured_output import check_schema

OPEN = "<tool_call>"
CLOSE_ARGUMENTS = "}\n</tool_call>"
_HEADER = re.compile(r'<tool_call>\n\{"name": ("(?:[^"\\]|\\.)*"), "arguments": ')
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def call_prefix(name: str) -> str:
    return f'{OPEN}\n{{"name": {json.dumps(name)}, "arguments": '


@dataclass
class ToolPlan:
    mode: str  # "auto" or "required" (a named choice is "required" with one function)
    functions: dict[str, dict[str, Any]]  # name -> parameters schema
    parallel: bool

    def structural_tag(self) -> dict[str, Any]:
        tags = [
            {
                "type": "tag",
                "begin": call_prefix(name),
                # One whitespace at most between tokens: a small model can loop on whitespace forever.
                "content": {"type": "json_schema", "json_schema": parameters, "max_whitespace_cnt": 1},
                "end": CLOSE_ARGUMENTS,
            }
            for name, parameters in self.functions.items()
        ]
        if self.mode == "auto":
            fmt = {"type": "triggered_tags", "triggers": [OPEN], "tags": tags}
        else:
            fmt = {"type": "tags_with_separator", "tags": tags, "separator": "\n", "at_least_one": True}
        fmt["stop_after_first"] = not self.parallel
        return {"type": "structural_tag", "format": fmt}


def plan_tools(
    tools: list[Any] | None, tool_choice: Any, parallel_tool_calls: bool | None
) -> ToolPlan | None:
    """The request's tool plan (None: nothing to constrain or parse), every schema checked."""
    if not tools:
        if tool_choice not in (None, "none"):
            raise APIError(
                400,
                "tool_choice is only allowed when tools are specified.",
                code="invalid_value",
                param="tool_choice",
            )
        return None
    functions: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        name = tool.function.name
        if not _NAME.fullmatch(name):
            raise APIError(
                400,
                f"tools[{i}].function.name must be 1-64 letters, digits, underscores or dashes.",
                code="invalid_value",
                param=f"tools[{i}].function.name",
            )
        if name in functions:
            raise APIError(
                400, f"Duplicate tool name '{name}'.", code="invalid_value", param=f"tools[{i}].function.name"
            )
        parameters = tool.function.parameters if tool.function.parameters is not None else _EMPTY_PARAMETERS
        check_schema(parameters, f"tools[{i}].function.parameters")
        functions[name] = parameters
    choice = tool_choice if tool_choice is not None else "auto"
    if choice == "none":
        return None
    parallel = parallel_tool_calls is not False
    if isinstance(choice, str):
        return ToolPlan(choice, functions, parallel)
    name = choice.function.name
    if name not in functions:
        raise APIError(
            400,
            f"tool_choice names the function '{name[:64]}', which is not in tools.",
            code="invalid_value",
            param="tool_choice.function.name",
        )
    return ToolPlan("required", {name: functions[name]}, parallel)


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass
class ParsedCall:
    id: str
    name: str
    arguments: str


def parse_output(text: str) -> tuple[str | None, list[ParsedCall]]:
    """(content, calls) of a finished output, exactly as the stream parser splits it: a call cut off by
    max_tokens inside its arguments keeps what it has (the stream has sent it already); cut off before its
    name, it is text when no call came before and dropped otherwise."""
    parser = ToolCallStreamParser()
    deltas = parser.feed(text) + parser.flush()
    content = "".join(d.content for d in deltas if d.content is not None)
    if parser.calls:
        return content.strip() or None, parser.calls
    return content, parser.calls


@dataclass
class StreamDelta:
    """Either content text or a piece of the call at ``index`` (id and name come in its first piece)."""

    content: str | None = None
    index: int | None = None
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


def _held_back(buffer: str, marker: str) -> int:
    """Length of the longest end of ``buffer`` that could begin ``marker``."""
    for k in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if marker.startswith(buffer[-k:]):
            return k
    return 0


@dataclass
class ToolCallStreamParser:
    """Splits streamed text into content deltas and tool-call deltas, as OpenAI streams them: a call's first
    delta carries its index, id, type and name with empty arguments; the arguments follow in pieces."""

    buffer: str = ""
    state: str = "text"  # text | header | arguments
    calls: list[ParsedCall] = field(default_factory=list)

    def feed(self, text: str) -> list[StreamDelta]:
        self.buffer += text
        out: list[StreamDelta] = []
        while True:
            if self.state == "text":
                i = self.buffer.find(OPEN)
                if i < 0:
                    keep = _held_back(self.buffer, OPEN)
                    self._content(out, self.buffer[: len(self.buffer) - keep])
                    self.buffer = self.buffer[len(self.buffer) - keep :]
                    return out
                self._content(out, self.buffer[:i])
                self.buffer, self.state = self.buffer[i:], "header"
            elif self.state == "header":
                m = _HEADER.match(self.buffer)
                if m is None:
                    return out
                call = ParsedCall(new_call_id(), json.loads(m.group(1)), "")
                self.calls.append(call)
                out.append(StreamDelta(index=len(self.calls) - 1, id=call.id, name=call.name, arguments=""))
                self.buffer, self.state = self.buffer[m.end() :], "arguments"
            else:
                end = self.buffer.find(CLOSE_ARGUMENTS)
                piece = self.buffer if end < 0 else self.buffer[:end]
                if end < 0:
                    piece = piece[: len(piece) - _held_back(piece, CLOSE_ARGUMENTS)]
                if piece:
                    self.calls[-1].arguments += piece
                    out.append(StreamDelta(index=len(self.calls) - 1, arguments=piece))
                if end < 0:
                    self.buffer = self.buffer[len(piece) :]
                    return out
                self.buffer, self.state = self.buffer[end + len(CLOSE_ARGUMENTS) :], "text"

    def flush(self) -> list[StreamDelta]:
        """At the end: text held back in case it began a marker is content after all."""
        out: list[StreamDelta] = []
        # What was held back as a possible call start is text, unless calls came before (then it is the
        # start of one more call that max_tokens cut off).
        cut_call = self.calls and (self.state == "header" or OPEN.startswith(self.buffer.strip()))
        if not cut_call and self.state != "arguments":
            self._content(out, self.buffer)
        self.buffer = ""
        return out

    def _content(self, out: list[StreamDelta], text: str) -> None:
        if self.calls:  # after a call, only the separators between calls: whitespace is not content
            text = text.strip()
        if text:
            out.append(StreamDelta(content=text))


def template_tools(tools: list[Any] | None) -> list[dict[str, Any]] | None:
    """Tools as chat templates take them (the OpenAI shape, as transformers' ``apply_chat_template``)."""
    if not tools:
        return None
    return [tool.model_dump(exclude_none=True) for tool in tools]


def template_tool_calls(tool_calls: list[Any]) -> list[dict[str, Any]]:
    """An assistant message's calls as templates take them: ``arguments`` parsed into an object (as vLLM
    passes them; templates write them with ``tojson``)."""
    out = []
    for call in tool_calls:
        try:
            arguments = json.loads(call.function.arguments)
        except ValueError:
            arguments = call.function.arguments
        out.append(
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": arguments},
            }
        )
    return out


def template_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """The conversation as templates take it: role and text, plus an assistant's calls and a tool message's
    call id. Everything else the SDKs send back (reasoning of earlier turns, annotations, refusal...) is
    dropped here, as OpenAI and DeepSeek drop earlier reasoning."""
    out = []
    for m in messages:
        message: dict[str, Any] = {"role": m.role, "content": m.text()}
        if m.tool_calls:
            message["tool_calls"] = template_tool_calls(m.tool_calls)
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        out.append(message)
    return out


def finish_reason_of(calls: list[ParsedCall], finish_reason: str | None) -> str | None:
    """A generation that ended normally after writing calls finishes with "tool_calls", as OpenAI's."""
    return "tool_calls" if calls and finish_reason == "stop" else finish_reason


def response_message(text: str, finish_reason: str | None) -> tuple[ChatCompletionMessage, str | None]:
    """The message and finish reason of a finished output written under a tool plan."""
    content, calls = parse_output(text)
    tool_calls = [
        ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments)) for c in calls
    ]
    return ChatCompletionMessage(content=content, tool_calls=tool_calls or None), finish_reason_of(
        calls, finish_reason
    )


def stream_deltas(parser: ToolCallStreamParser, text: str, final: bool) -> list[DeltaMessage]:
    """Streamed text as the deltas OpenAI sends: content, or tool-call pieces (id and name first)."""
    pieces = parser.feed(text) + (parser.flush() if final else [])
    out: list[DeltaMessage] = []
    for p in pieces:
        if p.content is not None:
            out.append(DeltaMessage(content=p.content))
        else:
            call = DeltaToolCall(
                index=p.index,
                id=p.id,
                type="function" if p.id else None,
                function=DeltaFunctionCall(name=p.name, arguments=p.arguments),
            )
            out.append(DeltaMessage(tool_calls=[call]))
    return out
