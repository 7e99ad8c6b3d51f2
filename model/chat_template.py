"""The chat template: how a conversation becomes the text the model sees.

The template is Jinja (as in Hugging Face ``tokenizer_config.json``), so one source serves our tokenizer,
``transformers``' ``apply_chat_template`` and any checkpoint that brings its own template.

Format of one turn: ``<|role|>{content}<|end|>\\n``. The generation prompt is ``<|assistant|>``; in reasoning
mode it is ``<|assistant|><think>`` and the model writes ``\\n{chain}\\n</think>\\n{final answer}<|end|>``.
No newline follows a role token on purpose: the prompt then always ends on a special token, so the first
generated token is tokenized exactly as it was in training (a trailing "\\n" could merge with it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jinja2
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

_env = ImmutableSandboxedEnvironment(trim_blocks=False, lstrip_blocks=False, undefined=jinja2.StrictUndefined)


@functools.lru_cache(maxsize=16)
def _compiled(template: str) -> jinja2.Template:
    """Compiling a template costs milliseconds; every request and training example reuses it."""
    return _env.from_string(template)


def message_text(content: str | Sequence[dict[str, Any]]) -> str:
    """The text of a message: a string, or the concatenated ``text`` of OpenAI-style content parts."""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def _template_message(message: dict[str, Any], content: str) -> dict[str, Any]:
    """What a template sees of a message: role, content and, for tool turns, the calls and call id."""
    out = {"role": message["role"], "content": content}
    for key in ("tool_calls", "tool_call_id"):
        if message.get(key):
            out[key] = message[key]
    return out


def render(
    template: str,
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    reasoning: bool = False,
    tools: Sequence[dict[str, Any]] | None = None,
) -> str:
    return _compiled(template).render(
        messages=[_template_message(m, message_text(m["content"])) for m in messages],
        add_generation_prompt=add_generation_prompt,
        reasoning=reasoning,
        tools=tools,
    )


def render_segments(
    template: str,
    messages: Sequence[dict[str, Any]],
    add_generation_prompt: bool = True,
    reasoning: bool = False,
    tools: Sequence[dict[str, Any]] | None = None,
) -> list[tuple[str, int]]:
    """Render into ``(text, message_index)`` segments: a message's content, or template text (index -1,
    special tokens allowed). Tool definitions and calls are template text written with ``tojson``, which
    escapes ``<`` and ``>``: no client text becomes a special token through them either."""
    contents = [message_text(m["content"]) for m in messages]
    placeholders = [_template_message(m, f"{_OPEN}{i}{_CLOSE}") for i, m in enumerate(messages)]
    rendered = _compiled(template).render(
        messages=placeholders, add_generation_prompt=add_generation_prompt, reasoning=reasoning, tools=tools
    )
    segments: list[tuple[str, int]] = []
    rest = rendered
    while _OPEN in rest:
        before, _, tail = rest.partition(_OPEN)
        index, _, rest = tail.partition(_CLOSE)
        if before:
            segments.append((before, -1))
        segments.append((contents[int(index)], int(index)))
    if rest:
        segments.append((rest, -1))
    return segments
