"""Small real checkpoints for tests: a SentencePiece tokenizer trained on generated text and a
random-weight model, written with the project's own save code (no committed binaries)."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.config import ModelConfig
from model.tokenizer import train_tokenizer
from model.transformer import Transformer

_EN = (
    "the quick brown fox jumps over a lazy dog while we compute what the answer is and how many apples "
    "each train carries per hour hello world model server token stream"
).split()
_ZH = "你好世界今天天气很好我们一起学习计算答案是多少苹果香蕉火车速度每小时生产零件一共"


def corpus_lines(n: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        lines.append(
            " ".join(rng.choice(_EN) for _ in range(rng.randint(4, 12)))
            + f" {rng.randint(0, 999)}*({rng.randint(0, 99)}+{rng.randint(0, 9)})-{rng.randint(0, 50)}"
        )
        lines.append("".join(rng.choice(_ZH) for _ in range(rng.randint(6, 20))) + rng.choice("。！？，："))
    return lines


def tiny_config(vocab_size: int, **overrides) -> ModelConfig:
    values = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    values.update(overrides)
    return ModelConfig(**values)


def make_tokenizer(directory: Path, vocab_size: int = 512) -> Path:
    return train_tokenizer(corpus_lines(), directory / "spm", vocab_size=vocab_size)


def make_checkpoint(directory: Path, tokenizer_path: Path, seed: int = 0, **overrides) -> Path:
    """A random-weight checkpoint; its vocabulary matches the tokenizer's."""
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(tokenizer_path)).get_piece_size()
    torch.manual_seed(seed)
    model = Transformer(tiny_config(vocab, **overrides))
    # Larger-than-init weights so random models produce varied (non-degenerate) token distributions.
    with torch.no_grad():
        model.embed_tokens.weight.normal_(0, 0.1)
    return save_checkpoint(directory, model, tokenizer_path)


def in_ci() -> bool:
    """CI sets CI=true (.ci/run does, as do GitHub Actions and GitLab CI)."""
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str, install: str) -> str:
    """The path of the program ``name``. Missing, the test skips on a developer's machine and FAILS in CI
    (CI=true): a CI machine without the program must not pass the tests that need it by skipping them."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install})"
        if in_ci():
            pytest.fail(message + "; CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(message)
    return path


# SmolLM2's ChatML template, as its tokenizer_config.json and GGUF carry it.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
HF_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def make_hf_tokenizer(directory: Path, vocab_size: int = 600) -> Path:
    """A byte-level BPE ``tokenizer.json`` (as GPT-2/SmolLM2 use) trained with the ``tokenizers`` library on
    English, Chinese and emoji text, with ChatML special tokens and template; returns ``directory``."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=HF_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = corpus_lines(1500) + ["emoji 😀 👍🏽 🎉 ✨"] * 20
    tok.train_from_iterator(lines, trainer=trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


def make_hf_checkpoint(directory: Path, seed: int = 0, **overrides) -> Path:
    """A random-weight checkpoint with a fixture-trained ``tokenizer.json`` (no SentencePiece model)."""
    import json

    from model.checkpoint import save_model_files

    make_hf_tokenizer(directory)
    vocab = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    torch.manual_seed(seed)
    model = Transformer(tiny_config(len(vocab), **{"bos_token_id": 1, "eos_token_id": 2, **overrides}))
    with torch.no_grad():
        model.embed_tokens.weight.normal_(0, 0.1)
    save_model_files(directory, model)
    (directory / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.6, "top_p": 0.8}), encoding="utf-8"
    )
    return directory
