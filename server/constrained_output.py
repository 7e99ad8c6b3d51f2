"""What a chat request's output must follow (``response_format`` or ``tools``), as one token constraint.

The serving layer calls :func:`plan_output` once per request: it checks the request (a 400 names the part
it cannot serve), compiles the grammar off the event loop and returns the constraint for the sampling
parameters and the tool plan that turns the output text into ``tool_calls``.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

from model.constraint import GrammarCompiler, GrammarError
from model.sampling import TokenConstraint
from server.errors import APIError
from server.protocol import ChatCompletionRequest
from server.structured_output import grammar_error, json_constraint, response_format_schema
from server.tools import ToolPlan, plan_tools

_compilers: weakref.WeakKeyDictionary[Any, GrammarCompiler] = weakref.WeakKeyDictionary()


def grammar_compiler(tokenizer: Any, vocab_size: int) -> GrammarCompiler:
    """One compiler per served tokenizer (building one reads the whole vocabulary)."""
    compiler = _compilers.get(tokenizer)
    if compiler is None:
        compiler = _compilers[tokenizer] = GrammarCompiler(tokenizer, vocab_size)
    return compiler


@dataclass
class OutputPlan:
    constraint: TokenConstraint | None = None
    tools: ToolPlan | None = None


def constrained_param(req: ChatCompletionRequest) -> str | None:
    """The parameter that asks for a grammar-constrained output (JSON or a tool call), None if none does."""
    if req.response_format is not None and req.response_format.type != "text":
        return "response_format"
    if req.tools and req.tool_choice != "none":
        return "tools"
    return None


def refuse_in_reasoning_mode(req: ChatCompletionRequest) -> None:
    """A vote over k chains returns one voted answer: there is no single output to constrain."""
    param = constrained_param(req)
    if param is None:
        return
    raise APIError(
        400,
        f"{param} is not supported in reasoning mode (reasoning_effort, self_consistency); use "
        f"reasoning_effort 'none' for structured output.",
        code="unsupported_parameter",
        param=param,
    )


async def plan_output(req: ChatCompletionRequest, tokenizer: Any, vocab_size: int) -> OutputPlan:
    tools = plan_tools(req.tools, req.tool_choice, req.parallel_tool_calls)
    constrained, schema = response_format_schema(req.response_format)
    if tools is not None and constrained:
        raise APIError(
            400,
            "response_format and tools cannot both constrain the output: use one of them, or tool_choice "
            "'none'.",
            code="invalid_value",
            param="response_format",
        )
    if not (constrained or tools):
        return OutputPlan()
    compiler = grammar_compiler(tokenizer, vocab_size)
    if constrained:
        return OutputPlan(constraint=await json_constraint(compiler, schema))
    assert tools is not None
    try:
        compiled = await asyncio.to_thread(compiler.structural_tag, tools.structural_tag())
    except GrammarError as e:
        raise grammar_error(e, "tools") from None
    return OutputPlan(constraint=compiler.constraint(compiled), tools=tools)
