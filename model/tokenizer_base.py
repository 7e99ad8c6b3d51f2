"""The tokenizer interface every part of the project uses, whatever library does the splitting.

Two implementations: :class:`model.tokenizer.Tokenizer` (SentencePiece ``tokenizer.model``, ours) and
:class:`model.tokenizer_hf.HFTokenizer` (a Hugging Face ``tokenizer.json``, e.g. byte-level BPE);
:func:`model.tokenizer_loading.load_tokenizer` picks one from what a checkpoint directory holds.

What a subclass provides: the ids (``vocab_size``, ``bos_id``, ``eos_id``, ``pad_id``, ``end_id``,
``special_ids``, ``stop_token_ids``, ``think_id``/``think_end_id`` or None), ``token_bytes`` (the exact
UTF-8 bytes of one token, for streaming and structured output), ``encode`` (user text: special-token
strings stay text), ``encode_template_text`` (template text: special-token strings become special tokens),
``decode`` and ``id_to_piece``. The chat rendering and the training examples are written once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model import chat_template


class BaseTokenizer:
    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    end_id: int | None
    special_ids: set[int]
    stop_token_ids: list[int]
    think_id: int | None
    think_end_id: int | None
    # A SentencePiece "dummy prefix" tokenizer writes a space before the first word; streams drop it.
    adds_dummy_prefix: bool = False
    chat_template: str
    # The strings a template sees as bos_token/eos_token/... (transformers passes its special tokens map).
    special_token_strings: dict[str, str]

    def token_id(self, piece: str) -> int | None:
        raise NotImplementedError

    def id_to_piece(self, token_id: int) -> str:
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_template_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_prompt(self, text: str) -> list[int]:
        """A raw completion prompt: user text, preceded by BOS where the tokenizer's config asks for it."""
        return self.encode(text)

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        raise NotImplementedError

    def render_chat(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        return chat_template.render(
            self.chat_template,
            messages,
            add_generation_prompt,
            reasoning,
            tools=tools,
            special_tokens=self.special_token_strings,
        )

    def encode_chat(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:
        return self.encode_chat_segments(messages, add_generation_prompt, reasoning, tools)[0]

    def encode_chat_segments(
        self,
        messages: Sequence[dict[str, Any]],
        add_generation_prompt: bool = True,
        reasoning: bool = False,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[list[int], list[int]]:
        """Token ids of a rendered conversation and, per token, the index of the message whose content it
        belongs to (-1 for template tokens). Training uses the owners to build the assistant-only loss mask."""
        ids: list[int] = []
        owners: list[int] = []
        for text, owner in chat_template.render_segments(
            self.chat_template,
            messages,
            add_generation_prompt,
            reasoning,
            tools=tools,
            special_tokens=self.special_token_strings,
        ):
            piece = self.encode(text) if owner >= 0 else self.encode_template_text(text)
            ids.extend(piece)
            owners.extend([owner] * len(piece))
        return ids, owners

    def encode_sft_example(
        self, messages: Sequence[dict[str, Any]], reasoning_chain: str | None = None
    ) -> tuple[list[int], list[int]]:
        """Token ids of a training conversation and its loss mask (1 = a token the model learns to write).

        The mask covers every assistant message's content and the end-of-turn token that closes it, never
        the system/user text or the template. With ``reasoning_chain`` the last (assistant) message is the
        final answer and is written in reasoning format, exactly as generated at inference time:
        ``<|assistant|><think>`` (prompt) then ``\\n{chain}\\n</think>\\n{final}<|end|>`` (target).
        """
        if reasoning_chain is None:
            ids, owners = self.encode_chat_segments(messages, add_generation_prompt=False)
            return ids, self._assistant_mask(messages, ids, owners)
        if not messages or messages[-1]["role"] != "assistant" or self.think_end_id is None:
            raise ValueError(
                "a reasoning example needs a final assistant message and a tokenizer with </think>"
            )
        ids, owners = self.encode_chat_segments(messages[:-1], add_generation_prompt=True, reasoning=True)
        mask = self._assistant_mask(messages[:-1], ids, owners)
        final = chat_template.message_text(messages[-1]["content"])
        end = [self.end_id] if self.end_id is not None else []
        target = (
            self.encode("\n" + reasoning_chain + "\n") + [self.think_end_id] + self.encode("\n" + final) + end
        )
        tail = self.encode_template_text("\n")
        return ids + target + tail, mask + [1] * len(target) + [0] * len(tail)

    def _assistant_mask(
        self, messages: Sequence[dict[str, Any]], ids: list[int], owners: list[int]
    ) -> list[int]:
        is_assistant = [m["role"] == "assistant" for m in messages]
        mask = [1 if o >= 0 and is_assistant[o] else 0 for o in owners]
        for i in range(1, len(ids)):  # the end-of-turn token closing an assistant message is its target
            if ids[i] == self.end_id and owners[i] < 0 and owners[i - 1] >= 0 and is_assistant[owners[i - 1]]:
                mask[i] = 1
        return mask
