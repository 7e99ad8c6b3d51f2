"""Instruction-data formats users bring, mapped onto one conversation shape.

Supported JSONL records (one JSON object per line; unknown extra keys are ignored):

* simple     ``{"system"?, "user", "assistant"}``                 (the original notes' format)
* chat       ``{"messages": [{"role", "content", "reasoning_content"?}, ...]}``  (OpenAI style)
* alpaca     ``{"instruction", "input"?, "output", "system"?}``
* reasoning  ``{"system"?, "user", "cot", "final"}``               (chain of thought, then answer)

Every format becomes a :class:`Conversation`: a list of ``{"role", "content"}`` messages whose assistant
turns may carry a ``"reasoning"`` chain. Roles are system, user and assistant (``developer`` is read as
system, as the chat template does).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")


class FormatError(ValueError):
    """A record that matches no supported format, or breaks one (reason is in ``.reason``)."""

    def __init__(self, message: str, reason: str = "bad_format") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Conversation:
    """One training example: the messages, the format it came from and where."""

    messages: list[dict[str, str]]
    fmt: str
    source: str = ""

    @property
    def has_reasoning(self) -> bool:
        return any(m.get("reasoning") for m in self.messages if m["role"] == "assistant")

    def text_for_dedup(self) -> str:
        """A canonical string of the whole conversation, so exact duplicates hash equal."""
        return json.dumps(self.messages, ensure_ascii=False, sort_keys=True)

    def texts(self) -> Iterator[str]:
        """Every human-language string in the conversation (for tokenizer training)."""
        for m in self.messages:
            if m.get("reasoning"):
                yield m["reasoning"]
            yield m["content"]


def _str(record: dict[str, Any], key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise FormatError(f"missing field {key!r}", "missing_field")
        return ""
    if not isinstance(value, str):
        raise FormatError(f"field {key!r} is {type(value).__name__}, expected a string", "bad_field_type")
    return value


def _with_system(system: str, rest: list[dict[str, str]]) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system.strip() else []) + rest


def detect_format(record: dict[str, Any]) -> str:
    """Name the format of a parsed JSONL record, or raise FormatError."""
    if not isinstance(record, dict):
        raise FormatError("record is not a JSON object")
    if "messages" in record:
        return "chat"
    if "cot" in record:
        return "reasoning"
    if "instruction" in record:
        return "alpaca"
    if "user" in record and "assistant" in record:
        return "simple"
    raise FormatError(f"unrecognised record with keys {sorted(record)[:8]}")


def _chat_messages(record: dict[str, Any]) -> list[dict[str, str]]:
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise FormatError("'messages' must be a non-empty list")
    messages = []
    for m in raw:
        if not isinstance(m, dict):
            raise FormatError("a message is not an object")
        role = m.get("role")
        role = "system" if role == "developer" else role
        if role not in ROLES:
            raise FormatError(f"unsupported role {role!r}", "bad_role")
        msg = {"role": role, "content": _str(m, "content")}
        reasoning = m.get("reasoning_content") or m.get("reasoning")
        if reasoning:
            if role != "assistant" or not isinstance(reasoning, str):
                raise FormatError("reasoning_content is only allowed on assistant turns", "bad_field_type")
            msg["reasoning"] = reasoning
        messages.append(msg)
    return messages


def to_conversation(record: dict[str, Any], source: str = "") -> Conversation:
    """Convert one parsed record (any supported format) to a Conversation, validating its shape."""
    fmt = detect_format(record)
    if fmt == "chat":
        messages = _chat_messages(record)
    elif fmt == "reasoning":
        messages = _with_system(
            _str(record, "system", False),
            [
                {"role": "user", "content": _str(record, "user")},
                {"role": "assistant", "content": _str(record, "final"), "reasoning": _str(record, "cot")},
            ],
        )
    elif fmt == "alpaca":
        instruction, extra = _str(record, "instruction"), _str(record, "input", False)
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        messages = _with_system(
            _str(record, "system", False),
            [
                {"role": "user", "content": user},
                {"role": "assistant", "content": _str(record, "output")},
            ],
        )
    else:
        messages = _with_system(
            _str(record, "system", False),
            [
                {"role": "user", "content": _str(record, "user")},
                {"role": "assistant", "content": _str(record, "assistant")},
            ],
        )
    if not any(m["role"] == "assistant" for m in messages):
        raise FormatError("no assistant turn: nothing to learn from", "no_assistant_turn")
    if messages[-1]["role"] != "assistant":
        # Trailing user turns would never be trained on; drop them rather than the example.
        while messages[-1]["role"] != "assistant":
            messages.pop()
    return Conversation(messages=messages, fmt=fmt, source=source)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """Yield (line_number, record, error) for every non-blank line; error names why a line failed."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(raw.decode("utf-8")), None
            except UnicodeDecodeError:
                yield lineno, None, "invalid_utf8"
            except json.JSONDecodeError:
                yield lineno, None, "invalid_json"
