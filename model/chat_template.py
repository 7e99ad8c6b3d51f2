"""The chat template: how a conversation becomes the text the model sees.

The template is Jinja, rendered as ``transformers``' ``apply_chat_template`` renders it (a sandboxed
environment with ``trim_blocks``/``lstrip_blocks``, ``raise_exception``, ``strftime_now``, a ``tojson`` that
does not escape HTML (but writes ``<``/``>`` as JSON escapes); variables ``messages``, ``tools``, ``add_generation_prompt``, ``bos_token``,
``eos_token``...), so one source serves our tokenizer, ``transformers`` and any checkpoint that brings its own
template (``chat_template.jinja``, ``chat_template`` in ``tokenizer_config.json``, or GGUF metadata).

Our own template: one turn is ``<|role|>{content}<|end|>\\n``. The generation prompt is ``<|assistant|>``; in
reasoning mode it is ``<|assistant|><think>`` and the model writes ``\\n{chain}\\n</think>\\n{final}<|end|>``.
No newline follows a role token on purpose: the prompt then always ends on a special token, so the first
generated token is tokenized exactly as it was in training (a trailing "\\n" could merge with it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "<|system|>You can call these functions. To call one, write <tool_call>, a new line, a JSON object "
    "with \"name\" and \"arguments\", a new line and </tool_call>.{{ '\\n' }}<tools>{{ '\\n' }}"
    "{%- for tool in tools -%}{{ tool | tojson }}{{ '\\n' }}{%- endfor -%}</tools><|end|>{{ '\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- set role = 'system' if message['role'] == 'developer' else message['role'] -%}"
    "{%- if role == 'tool' -%}<|user|><tool_response>{{ '\\n' }}"
    "{%- else -%}<|{{ role }}|>{%- endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}{{ part['text'] }}{%- endfor -%}{%- endif -%}"
    "{%- if role == 'tool' -%}{{ '\\n' }}</tool_response>{%- endif -%}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "<tool_call>{{ '\\n' }}{\"name\": {{ call['function']['name'] | tojson }}, \"arguments\": "
    "{{ call['function']['arguments'] | tojson }}}{{ '\\n' }}</tool_call>"
    "{%- endfor -%}{%- endif -%}"
    "<|end|>\n"
    "{% endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- if reasoning -%}<think>{%- endif -%}{%- endif -%}"
)

ROLES = ("system", "developer", "user", "assistant", "tool")

# Content is rendered as numbered placeholders of private-use characters, then encoded apart from the
# template text, so a user who types "<|end|>" gets those characters, not the special token.
_OPEN, _CLOSE = "\ue000", "\ue001"


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False):
    """transformers' ``tojson`` (no HTML escaping of ``&``/quotes), except ``<`` and ``>`` are written as
    JSON escapes: the template's text is encoded with special tokens allowed, and tool definitions and
    call arguments are client text that must never become ``<|end|>``. Same JSON value; ids differ from
    ``apply_chat_template`` only for tool JSON that contains ``<`` or ``>``."""
    text = json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


_env = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
)
_env.filters["tojson"] = _tojson
_env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> jinja2.Template:
    """Compiling a template costs milliseconds; every request and training example reuses it."""
    return _env.from_string(template)


def message_text(content: str | Sequence[dict[str, Any]] | None) -> str:
    """The text of a message: a string, or the concatenated ``text`` of OpenAI-style content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def _template_messages(messages: Sequence[dict[str, Any]], contents: Sequence[str | None]) -> list[dict]:
    """Messages as a template sees them: every field passed through (tool_calls, name...), text content."""
    return [{**m, "content": c} for m, c in zip(messages, contents, strict=True)]


def _render(
    template: str,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool,
    reasoning: bool,
    tools: Sequence[dict[str, Any]] | None,
    special_tokens: dict[str, str] | None,
) -> str:
    return _compiled(template).render(
        messages=messages,
        tools=list(tools) if tools else None,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        reasoning=reasoning,
        **(special_tokens or {}),
    )


def render(
    template: str,
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    reasoning: bool = False,
    tools: Sequence[dict[str, Any]] | None = None,
    special_tokens: dict[str, str] | None = None,
) -> str:
    """The conversation as text, exactly as ``apply_chat_template(..., tokenize=False)`` writes it."""
    contents = [None if m.get("content") is None else message_text(m["content"]) for m in messages]
    return _render(
        template,
        _template_messages(messages, contents),
        add_generation_prompt,
        reasoning,
        tools,
        special_tokens,
    )


def render_segments(
    template: str,
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    reasoning: bool = False,
    tools: Sequence[dict[str, Any]] | None = None,
    special_tokens: dict[str, str] | None = None,
) -> list[tuple[str, int]]:
    """Render into ``(text, message_index)`` segments: a message's content, or template text (index -1,
    special tokens allowed).

    Contents are rendered as placeholders first. A template that transforms content (strips it, splits it
    at ``</think>``...) does not reproduce the plain rendering that way; then the plain rendering is cut
    where each message's content is found, in order, and only what is not found counts as template text."""
    contents = [None if m.get("content") is None else message_text(m["content"]) for m in messages]
    args = (add_generation_prompt, reasoning, tools, special_tokens)
    plain = _render(template, _template_messages(messages, contents), *args)
    marked = [None if c is None else f"{_OPEN}{i}{_CLOSE}" for i, c in enumerate(contents)]
    rendered = _render(template, _template_messages(messages, marked), *args)
    segments: list[tuple[str, int]] = []
    rest = rendered
    while _OPEN in rest:
        before, _, tail = rest.partition(_OPEN)
        index, _, rest = tail.partition(_CLOSE)
        if before:
            segments.append((before, -1))
        if not index.isdigit() or int(index) >= len(contents) or contents[int(index)] is None:
            return _segments_by_search(plain, contents)
        segments.append((contents[int(index)], int(index)))
    if rest:
        segments.append((rest, -1))
    if "".join(text for text, _ in segments) != plain:
        return _segments_by_search(plain, contents)
    return [(text, owner) for text, owner in segments if text]


def _segments_by_search(plain: str, contents: Sequence[str | None]) -> list[tuple[str, int]]:
    segments: list[tuple[str, int]] = []
    cursor = 0
    for i, content in enumerate(contents):
        if not content:
            continue
        at = plain.find(content, cursor)
        if at < 0:
            continue
        if at > cursor:
            segments.append((plain[cursor:at], -1))
        segments.append((content, i))
        cursor = at + len(content)
    if cursor < len(plain):
        segments.append((plain[cursor:], -1))
    return segments
