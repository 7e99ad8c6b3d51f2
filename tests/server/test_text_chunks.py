"""Streamed text chunks from a per-choice template are byte for byte the pydantic chunk they stand for."""

from __future__ import annotations

import json

import pytest

from server.responses import (
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    CompletionChoice,
    CompletionResponse,
    DeltaMessage,
)
from server.streams import TextChunkTemplate

TEXTS = [
    "",
    "Hello",
    "计算：12*(3+4)-10，结果是74。",
    'quote " backslash \\ slash / tab \t newline \n return \r',
    "".join(chr(c) for c in range(32)) + "\x7f",
    "emoji 😀 line separator \u2028 paragraph \u2029 bom \ufeff",
    "\x00text\x00",  # the template's own marker, as text
]


def chat(index: int, text: str) -> str:
    choice = ChatCompletionChunkChoice(index=index, delta=DeltaMessage(content=text))
    return ChatCompletionChunk(
        id="chatcmpl-1", created=1, model="tinyllm", system_fingerprint="fp_x", choices=[choice]
    ).model_dump_json()


def completion(index: int, text: str) -> str:
    choice = CompletionChoice(index=index, text=text)
    return CompletionResponse(
        id="cmpl-1", created=1, model="m", system_fingerprint=None, choices=[choice]
    ).model_dump_json()


@pytest.mark.parametrize("dump", [chat, completion])
@pytest.mark.parametrize("index", [0, 3])
def test_a_templated_text_chunk_is_the_pydantic_chunk(dump, index: int) -> None:
    template = TextChunkTemplate(lambda text: dump(index, text))
    for text in TEXTS:
        assert template(text) == dump(index, text), repr(text)
        assert json.loads(template(text))["choices"][0]["index"] == index


def test_a_chunk_without_its_text_as_one_string_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON string"):
        TextChunkTemplate(lambda text: json.dumps({"text": text.upper()}))
