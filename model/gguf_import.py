"""``tinyllm import-gguf FILE OUT_DIR``: a GGUF file (llama.cpp's format) as a checkpoint directory.

Reads the file with the ``gguf`` package, dequantizes every tensor to float32, undoes llama.cpp's q/k row
permutation (its rotary layout interleaves pairs; the Hugging Face layout rotates halves), and writes
``model.safetensors``, ``config.json``, ``tokenizer.json`` + ``tokenizer_config.json`` (vocabulary, merges
and chat template from the GGUF metadata) and ``generation_config.json``. ``transformers`` loads the result
as a ``LlamaForCausalLM``.

Refused with one line naming the file and the field: an architecture other than ``llama``, mixture of
experts, a tensor type the ``gguf`` package cannot dequantize, tensors the Llama layout does not have
(biases, Llama 3.1's ``rope_freqs``), a vocabulary kind we cannot rebuild (``gpt2`` and ``llama`` are).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.torch import save_file

from model.checkpoint import CheckpointError
from model.gguf_vocab import tokenizer_json_from_gguf

_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


def hf_tensor_name(gguf_name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor of the Llama layout, or None when it has none."""
    if m := _BLOCK.match(gguf_name):
        layer, part, kind = m.groups()
        if kind == "weight" and part in _LAYER_NAMES:
            return f"model.layers.{layer}.{_LAYER_NAMES[part]}.weight"
        return None
    base, _, kind = gguf_name.rpartition(".")
    return f"{_TOP_NAMES[base]}.weight" if kind == "weight" and base in _TOP_NAMES else None


def unpermute_rotary(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k permutation: each head's rows (pairs i, i + D/2 side by side) back to halves."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rotary(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k permutation (the inverse of :func:`unpermute_rotary`)."""
    rows = w.shape[0]
    return w.reshape(heads, 2, rows // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_metadata(reader: GGUFReader) -> dict[str, Any]:
    """Every key/value field of a GGUF file as Python values (arrays as lists)."""
    meta: dict[str, Any] = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            meta[name] = f.contents()
        except Exception:  # a field type this gguf version cannot read: not one we use
            continue
    return meta


def hf_config_from_gguf(meta: dict[str, Any]) -> dict[str, Any]:
    """config.json for the ``llama.*`` fields; ValueError naming the field for what we cannot serve."""
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"general.architecture {arch!r} is not supported (llama only)")

    def get(key: str, default: Any = None) -> Any:
        value = meta.get(f"llama.{key}", default)
        if value is None:
            raise ValueError(f"llama.{key} is missing")
        return value

    if meta.get("llama.expert_count"):
        raise ValueError(
            f"llama.expert_count={meta['llama.expert_count']}: mixture of experts is not supported"
        )
    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(
        meta.get("llama.attention.key_length") or meta.get("llama.rope.dimension_count") or hidden // heads
    )
    if head_dim != int(meta.get("llama.rope.dimension_count", head_dim)):
        raise ValueError(
            "llama.rope.dimension_count != head size: partial rotary embeddings are not supported"
        )
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "vocab_size": int(meta.get("llama.vocab_size") or len(meta.get("tokenizer.ggml.tokens") or [])),
        "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")),
        "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get("llama.attention.head_count_kv") or heads),
        "head_dim": head_dim,
        "max_position_embeddings": int(get("context_length")),
        "rms_norm_eps": float(meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(meta.get("llama.rope.freq_base", 10000.0)),
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }
    scaling = meta.get("llama.rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    elif scaling not in (None, "none"):
        raise ValueError(f"llama.rope.scaling.type {scaling!r} is not supported (linear only)")
    return config


def _dequantized(tensor: Any, path: Path) -> np.ndarray:
    try:
        return np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    except (NotImplementedError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path}: tensor {tensor.name} has type {tensor.tensor_type.name}, which the gguf package cannot "
            f"dequantize ({e})"
        ) from None


def import_gguf(path: str | Path, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Convert the GGUF file ``path`` into the checkpoint directory ``out_dir``; returns ``out_dir``."""
    path, out_dir = Path(path), Path(out_dir)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        reader = GGUFReader(path)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None
    meta = read_metadata(reader)
    try:
        config = hf_config_from_gguf(meta)
        vocab = tokenizer_json_from_gguf({**meta, "context_length": config["max_position_embeddings"]})
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None

    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        name = hf_tensor_name(tensor.name)
        if name is None:
            raise CheckpointError(
                f"{path}: tensor {tensor.name} has no place in the Llama layout (biases, rope_freqs and other "
                "extras are not supported)"
            )
        weight = _dequantized(tensor, path)
        if name.endswith("q_proj.weight"):
            weight = unpermute_rotary(weight, heads)
        elif name.endswith("k_proj.weight"):
            weight = unpermute_rotary(weight, kv_heads)
        state[name] = torch.from_numpy(np.array(weight, dtype=np.float32, order="C")).to(dtype)
    config["tie_word_embeddings"] = "lm_head.weight" not in state
    config["torch_dtype"] = str(dtype).removeprefix("torch.")
    if vocab.bos_id is not None:
        config["bos_token_id"] = vocab.bos_id
    if vocab.eos_id is not None:
        config["eos_token_id"] = vocab.eos_id
    if org := meta.get("general.organization"):
        config["_name_or_path"] = f"{org}/{meta.get('general.basename') or path.stem}"

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / "config.json", config)
    (out_dir / "tokenizer.json").write_text(vocab.tokenizer_json, encoding="utf-8")
    _write_json(out_dir / "tokenizer_config.json", vocab.tokenizer_config)
    generation = {
        k: v for k, v in (("bos_token_id", vocab.bos_id), ("eos_token_id", vocab.eos_id)) if v is not None
    }
    _write_json(out_dir / "generation_config.json", generation)
    return out_dir


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
