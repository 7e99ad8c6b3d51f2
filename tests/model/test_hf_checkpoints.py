"""Checkpoints written by transformers: dtypes, shards, tied or not, explicit head_dim, rope scaling; and the
configs the engine does not implement, refused with one line naming the file and the field."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from model.checkpoint import CheckpointError, load_checkpoint

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def write_hf_model(directory: Path, tokenizer_dir: Path, save_kwargs: dict | None = None, **config) -> Path:
    """A random LlamaForCausalLM saved by transformers, with the fixture's tokenizer.json."""
    values = dict(
        vocab_size=600,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
    )
    values.update(config)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**values)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.08)
    model.save_pretrained(directory, **(save_kwargs or {}))
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, directory / name)
    return directory


def assert_same_logits(directory: Path, atol: float = 1e-4) -> None:
    reference = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ours = load_checkpoint(directory)
    ids = torch.randint(0, 600, (2, 200), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(ids).logits
        got = ours.model(ids)
    assert (expected - got).abs().max().item() < atol


@pytest.mark.parametrize(
    "config",
    [
        {"tie_word_embeddings": False},
        {"tie_word_embeddings": True, "head_dim": 32},  # head_dim != hidden_size / heads
        {"rope_scaling": {"rope_type": "linear", "factor": 4.0}},
        {
            "max_position_embeddings": 1024,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64,
            },
        },
    ],
    ids=["untied", "head_dim", "rope-linear", "rope-llama3"],
)
def test_logits_equal_transformers(tmp_path, hf_checkpoint, config):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint, **config)
    assert_same_logits(directory)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_and_sharded_files_load(tmp_path, hf_checkpoint, dtype):
    save = {"max_shard_size": "100KB"}
    directory = write_hf_model(tmp_path / "m", hf_checkpoint, save_kwargs=save, dtype=dtype)
    model = LlamaForCausalLM.from_pretrained(directory)
    model.to(dtype).save_pretrained(directory, max_shard_size="100KB")
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert_same_logits(directory, atol=1e-3)


def test_max_len_caps_the_rotary_tables(tmp_path, hf_checkpoint):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint, max_position_embeddings=8192)
    loaded = load_checkpoint(directory, max_len=300)
    assert loaded.model.max_len == 300 and loaded.model.rope.cos.shape[0] == 300
    assert load_checkpoint(directory).model.max_len == 8192


REFUSED = [
    ({"attention_bias": True}, "attention_bias"),
    ({"mlp_bias": True}, "mlp_bias"),
    (
        {"sliding_window": 4096, "model_type": "mistral", "architectures": ["MistralForCausalLM"]},
        "sliding_window",
    ),
    ({"num_local_experts": 8}, "num_local_experts"),
    ({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}, "model_type"),
    ({"architectures": ["GPT2LMHeadModel"]}, "architectures"),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}}, "yarn"),
    ({"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 1e4}}, "rope_scaling"),
    ({"is_encoder_decoder": True}, "cross-attention"),
]


@pytest.mark.parametrize(("change", "field"), REFUSED, ids=[f for _, f in REFUSED])
def test_unsupported_configs_are_refused_naming_file_and_field(tmp_path, hf_checkpoint, change, field):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint)
    config_file = directory / "config.json"
    config = json.loads(config_file.read_text())
    config.update(change)
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(directory)
    message = str(info.value)
    assert message.startswith(str(config_file)) and field in message and "\n" not in message


def test_bias_tensors_are_refused_even_when_the_config_hides_them(tmp_path, hf_checkpoint):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint, attention_bias=True)
    config_file = directory / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "attention_bias": False}))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensors this architecture does not have"):
        load_checkpoint(directory)


def test_serve_refuses_with_one_line_and_no_traceback(tmp_path, hf_checkpoint):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint, mlp_bias=True)
    (directory / "tokenizer.json").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm", "serve", "--model", str(directory), "--auth-disabled"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    printed = [line for line in done.stderr.splitlines() if line.startswith("tinyllm serve:")]
    assert len(printed) == 1 and "config.json" in printed[0] and "mlp_bias" in printed[0]


def test_a_directory_without_tokenizer_is_refused(tmp_path, hf_checkpoint):
    directory = write_hf_model(tmp_path / "m", hf_checkpoint)
    (directory / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_checkpoint(directory)
