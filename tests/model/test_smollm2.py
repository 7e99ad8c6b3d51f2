"""SmolLM2-135M-Instruct, the reference real model, obtained by ``tinyllm pull smollm2``: its tokenizer and
ChatML template through our code give exactly the ids of transformers' ``apply_chat_template``."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from model.checkpoint import load_checkpoint
from model.config import ModelConfig
from model.tokenizer_hf import HFTokenizer

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name three primes."},
        {"role": "assistant", "content": "2, 3, 5."},
        {"role": "user", "content": "And the next one? 谢谢 😀"},
    ],
    [
        {"role": "developer", "content": "Reply in JSON."},
        {"role": "user", "content": '  {"a": 1}\n\n tabs\tand   spaces '},
    ],
]


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_directory(smollm2_dir)


@pytest.fixture(scope="module")
def reference(smollm2_dir: Path):
    return AutoTokenizer.from_pretrained(str(smollm2_dir))


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_chat_ids_equal_apply_chat_template(tok, reference, messages, add_generation_prompt):
    expected = reference.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True
    )
    expected = expected["input_ids"] if hasattr(expected, "keys") else expected
    assert tok.encode_chat(messages, add_generation_prompt) == list(expected)


def test_digits_split_one_per_token_as_in_the_original_tokenizer(tok):
    assert [tok.decode([i]) for i in tok.encode("2025")] == ["2", "0", "2", "5"]


def test_the_imported_checkpoint_is_smollm2(smollm2_dir: Path, tok: HFTokenizer):
    config = ModelConfig.load(smollm2_dir / "config.json")
    assert (config.num_hidden_layers, config.hidden_size, config.head_dim) == (30, 576, 64)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (9, 3, 49152)
    assert config.tie_word_embeddings and config.rope_theta == 100000.0
    assert tok.vocab_size == 49152 and tok.id_to_piece(tok.eos_id) == "<|im_end|>"
    loaded = load_checkpoint(smollm2_dir, max_len=64)
    assert loaded.tokenizer.stop_token_ids == [tok.eos_id] and loaded.owner == "HuggingFaceTB"
    assert loaded.generation_config["temperature"] == 0.2
