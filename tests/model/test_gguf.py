"""GGUF in and out on tiny models: export then import gives back the checkpoint (weights within the type's
precision, identical tokenizer and template); transformers reads both what we export and what we import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.quants import dequantize
from transformers import AutoModelForCausalLM, AutoTokenizer

from model.checkpoint import CheckpointError, load_checkpoint
from model.gguf_export import export_gguf
from model.gguf_import import import_gguf, read_metadata, unpermute_rotary
from tests.support import corpus_lines, make_checkpoint

TEXTS = ["Hello, world! 42 apples.", "你好世界 😀👍🏽 鬱", "  spaces\n\nnewlines "]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi 你好"}]


def logits(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        out = model(torch.tensor([ids]))
    return (out.logits if hasattr(out, "logits") else out)[0]


@pytest.mark.parametrize(("out_type", "atol"), [("f16", 2e-3), ("q8_0", 5e-2)])
def test_export_then_import_round_trips(tmp_path, hf_checkpoint, out_type, atol):
    gguf_file = export_gguf(hf_checkpoint, tmp_path / f"tiny.{out_type}.gguf", out_type)
    back = import_gguf(gguf_file, tmp_path / "back")
    original, imported = load_checkpoint(hf_checkpoint), load_checkpoint(back)
    for field in ("hidden_size", "num_key_value_heads", "head_dim", "rope_theta", "tie_word_embeddings"):
        assert getattr(imported.config, field) == getattr(original.config, field)
    for text in TEXTS:
        assert imported.tokenizer.encode(text) == original.tokenizer.encode(text)
    assert imported.tokenizer.encode_chat(MESSAGES) == original.tokenizer.encode_chat(MESSAGES)
    assert imported.tokenizer.stop_token_ids == original.tokenizer.stop_token_ids
    ids = original.tokenizer.encode_chat(MESSAGES)
    diff = (logits(imported.model, ids) - logits(original.model, ids)).abs().max().item()
    assert 0 < diff < atol if out_type == "q8_0" else diff < atol


def test_transformers_loads_the_imported_directory(tmp_path, hf_checkpoint):
    back = import_gguf(export_gguf(hf_checkpoint, tmp_path / "tiny.gguf"), tmp_path / "back")
    ours = load_checkpoint(back)
    reference = AutoModelForCausalLM.from_pretrained(back).eval()
    tokenizer = AutoTokenizer.from_pretrained(back)
    ids = ours.tokenizer.encode_chat(MESSAGES)
    expected = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=True)
    assert ids == list(expected["input_ids"] if hasattr(expected, "keys") else expected)
    assert (logits(reference, ids) - logits(ours.model, ids)).abs().max().item() < 1e-4


def test_our_sentencepiece_checkpoint_exports_for_llama_cpp(tmp_path, tiny_checkpoint):
    gguf_file = export_gguf(tiny_checkpoint, tmp_path / "ours.gguf")
    reader = GGUFReader(gguf_file)
    meta = read_metadata(reader)
    loaded = load_checkpoint(tiny_checkpoint)
    assert meta["general.architecture"] == "llama" and meta["tokenizer.ggml.model"] == "llama"
    assert len(meta["tokenizer.ggml.tokens"]) == loaded.tokenizer.vocab_size
    assert meta["tokenizer.ggml.eos_token_id"] == loaded.tokenizer.end_id
    assert meta["tokenizer.chat_template"] == loaded.tokenizer.chat_template
    tensors = {t.name: t for t in reader.tensors}
    q = dequantize(tensors["blk.0.attn_q.weight"].data, tensors["blk.0.attn_q.weight"].tensor_type)
    expected = loaded.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    assert np.abs(unpermute_rotary(q, loaded.config.num_attention_heads) - expected).max() < 1e-3
    # transformers' own GGUF reader (as llama.cpp, it re-permutes q/k) gives the same network.
    pytest.importorskip("accelerate")
    reference = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="ours.gguf").eval()
    ids = loaded.tokenizer.encode("the quick brown fox 123")
    assert (logits(reference, ids) - logits(loaded.model, ids)).abs().max().item() < 5e-3


def test_q8_0_needs_rows_in_multiples_of_32(tmp_path, tiny_tokenizer_path):
    directory = make_checkpoint(tmp_path / "odd", tiny_tokenizer_path, intermediate_size=100)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinyllm",
            "export-gguf",
            str(directory),
            str(tmp_path / "x.gguf"),
            "--type",
            "q8_0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "multiple of 32" in done.stderr and "intermediate_size 100" in done.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_import_refuses_other_architectures_naming_the_field(tmp_path):
    path = tmp_path / "qwen.gguf"
    writer = GGUFWriter(str(path), "qwen2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError) as info:
        import_gguf(path, tmp_path / "out")
    assert str(info.value).startswith(str(path)) and "general.architecture 'qwen2'" in str(info.value)
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm", "import-gguf", str(path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "qwen2" in done.stderr


def test_import_cli_writes_a_servable_directory(tmp_path, hf_checkpoint):
    gguf_file = export_gguf(hf_checkpoint, tmp_path / "tiny.gguf")
    done = subprocess.run(
        [sys.executable, "-m", "tinyllm", "import-gguf", str(gguf_file), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "out"
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>" and "<|im_start|>" in config["chat_template"]


def test_a_sentencepiece_vocabulary_round_trips(tmp_path, tiny_checkpoint):
    """Our SentencePiece checkpoint -> GGUF ('llama' vocabulary: pieces and scores) -> tokenizer.json
    (BPE with byte fallback, merges ranked by score) encodes as the SentencePiece model did."""
    back = import_gguf(export_gguf(tiny_checkpoint, tmp_path / "ours.gguf"), tmp_path / "back")
    original, imported = load_checkpoint(tiny_checkpoint), load_checkpoint(back)
    texts = corpus_lines(200, seed=5) + ["Hello  world\n\n tabs\t", "emoji 😀 鬱龘", "3*(4+5)-2 = 25"]
    for text in texts:
        assert imported.tokenizer.encode(text) == original.tokenizer.encode(text), text
        assert imported.tokenizer.decode(original.tokenizer.encode(text)) == text
    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "计算：3*(4+5)"}]
    assert imported.tokenizer.encode_chat(messages) == original.tokenizer.encode_chat(messages)
    assert imported.tokenizer.stop_token_ids == [original.tokenizer.end_id]
    ids = original.tokenizer.encode_chat(messages)
    assert (logits(imported.model, ids) - logits(original.model, ids)).abs().max().item() < 2e-3


def test_import_refuses_a_tensor_type_the_gguf_package_cannot_dequantize(tmp_path):
    path = tmp_path / "q8_1.gguf"
    writer = GGUFWriter(str(path), "llama")
    for add, value in (
        (writer.add_block_count, 1),
        (writer.add_context_length, 16),
        (writer.add_embedding_length, 32),
        (writer.add_feed_forward_length, 64),
        (writer.add_head_count, 2),
    ):
        add(value)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b"])
    writer.add_token_merges([])
    block = np.zeros((2, 40), dtype=np.uint8)  # two rows of one Q8_1 block (32 values, 40 bytes) each
    writer.add_tensor("token_embd.weight", block, raw_dtype=GGMLQuantizationType.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError) as info:
        import_gguf(path, tmp_path / "out")
    message = str(info.value)
    assert message.startswith(str(path)) and "token_embd.weight" in message and "Q8_1" in message
