"""Checkpoint format: transformers loads what we write with the same logits, and we load theirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.transformer import Transformer
from tests.support import tiny_config

SHIPPED = Path(__file__).resolve().parents[2] / "checkpoints" / "tinyllm-default"


@pytest.mark.parametrize("tie,kv_heads", [(True, 2), (False, 4)])
def test_transformers_loads_our_checkpoint_with_same_logits(tmp_path, tiny_tokenizer_path, tie, kv_heads):
    torch.manual_seed(1)
    model = Transformer(tiny_config(512, tie_word_embeddings=tie, num_key_value_heads=kv_heads)).eval()
    directory = save_checkpoint(tmp_path / "ckpt", model, tiny_tokenizer_path)
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.model",
        "tokenizer_config.json",
        "generation_config.json",
        "special_tokens_map.json",
    ):
        assert (directory / name).exists(), name
    hf = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    ids = torch.randint(0, 512, (3, 40))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4


def test_transformers_loads_the_shipped_checkpoint_with_same_logits():
    """The checkpoint users download, not a random one: what ``transformers`` computes from the shipped files
    equals what we serve in fp32, on real text and on random ids over the whole context."""
    loaded = load_checkpoint(SHIPPED)
    hf = LlamaForCausalLM.from_pretrained(SHIPPED, dtype=torch.float32).eval()
    config = loaded.config
    text = loaded.tokenizer.encode_chat(
        [{"role": "user", "content": "What is 12*7? 请算一下。"}], reasoning=True
    )
    torch.manual_seed(0)
    random_ids = torch.randint(0, config.vocab_size, (2, config.max_position_embeddings))
    with torch.no_grad():
        for ids in (torch.tensor([text]), random_ids):
            ours, theirs = loaded.model.eval()(ids), hf(ids).logits
            assert ours.shape == theirs.shape
            assert (ours - theirs).abs().max().item() < 1e-3


def test_config_round_trips_through_hf_config(tmp_path):
    config = ModelConfig(
        vocab_size=1000,
        hidden_size=96,
        num_attention_heads=6,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        rope_theta=5e5,
    )
    config.save(tmp_path / "config.json")
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["model_type"] == "llama" and data["num_key_value_heads"] == 2
    assert ModelConfig.load(tmp_path / "config.json") == config
    hf = LlamaConfig.from_pretrained(tmp_path)
    assert (hf.hidden_size, hf.num_key_value_heads) == (96, 2)
    assert hf.rope_parameters["rope_theta"] == 5e5
    # what transformers writes back loads here too
    hf.save_pretrained(tmp_path / "hf")
    assert ModelConfig.load(tmp_path / "hf" / "config.json") == config


def test_we_load_a_checkpoint_written_by_transformers(tmp_path, tiny_tokenizer_path):
    """A directory we did not write: transformers' own save_pretrained, in bfloat16, untied, MHA."""
    torch.manual_seed(2)
    hf_config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    hf = LlamaForCausalLM(hf_config).to(torch.bfloat16).eval()
    hf.save_pretrained(tmp_path / "foreign", safe_serialization=True)
    shutil.copyfile(tiny_tokenizer_path, tmp_path / "foreign" / "tokenizer.model")
    loaded = load_checkpoint(tmp_path / "foreign")
    ids = torch.randint(0, 512, (2, 30))
    with torch.no_grad():
        ours = loaded.model(ids)
        theirs = hf.float()(ids).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    assert loaded.tokenizer.encode_chat([{"role": "user", "content": "hi"}])  # default template applies


def test_corrupt_and_missing_files_name_the_file(tmp_path, tiny_checkpoint):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(broken)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"num_attention_heads": 0},
        {"num_hidden_layers": -1},
        {"hidden_size": "256"},
        {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
    ],
)
def test_invalid_configs_are_refused_with_a_reason(tmp_path, tiny_checkpoint, bad):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    data = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(bad if isinstance(bad, list) else {**data, **bad}))
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(broken)
