"""``tinyllm export-gguf DIR OUT``: a checkpoint directory as a GGUF file llama.cpp and Ollama load.

Tensors are written under llama.cpp's names with its q/k row permutation, as ``F16`` or ``Q8_0`` (blocks of
32 values sharing one scale: every row length must be a multiple of 32; the shipped model's
intermediate size 688 is not, so it exports as F16 only). Norm weights stay F32, as llama.cpp writes them.
The vocabulary goes in as llama.cpp's ``llama`` (SentencePiece, with scores) or ``gpt2`` (byte-level BPE,
with merges) kind; the chat template as ``tokenizer.chat_template``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from gguf.quants import quantize

from model.checkpoint import CheckpointError, load_checkpoint
from model.gguf_import import permute_rotary
from model.gguf_vocab import gguf_vocab_fields

OutType = Literal["f16", "q8_0"]
_Q8_BLOCK = 32

_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_tensor_name(name: str) -> str:
    """llama.cpp's name of one of our (prefix-less) parameter names."""
    if name.startswith("layers."):
        _, layer, rest = name.split(".", 2)
        return f"blk.{layer}.{_LAYER_NAMES[rest.removesuffix('.weight')]}.weight"
    return {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight"}.get(
        name, "output.weight" if name == "lm_head.weight" else name
    )


def export_gguf(directory: str | Path, out: str | Path, out_type: OutType = "f16") -> Path:
    """Write the checkpoint ``directory`` as the GGUF file ``out``; returns ``out``."""
    if out_type not in ("f16", "q8_0"):
        raise ValueError(f"unknown GGUF type {out_type!r} (f16 or q8_0)")
    directory, out = Path(directory), Path(out)
    loaded = load_checkpoint(directory)
    config, tokenizer = loaded.config, loaded.tokenizer
    params = {k: v.detach().float().numpy() for k, v in loaded.model.state_dict().items()}
    if config.tie_word_embeddings:
        params.pop("lm_head.weight", None)
    if out_type == "q8_0":
        bad = sorted({v.shape[-1] for v in params.values() if v.ndim == 2 and v.shape[-1] % _Q8_BLOCK})
        if bad:
            raise CheckpointError(
                f"{directory / 'config.json'}: Q8_0 needs every row length to be a multiple of {_Q8_BLOCK}, "
                f"but rows of length {bad} exist (e.g. intermediate_size {config.intermediate_size}); "
                "export as f16 instead"
            )
    try:
        vocab = gguf_vocab_fields(tokenizer)
    except ValueError as e:
        raise CheckpointError(str(e)) from None

    out.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out), "llama")
    writer.add_name(directory.name)
    writer.add_file_type(LlamaFileType.MOSTLY_Q8_0 if out_type == "q8_0" else LlamaFileType.MOSTLY_F16)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if config.rope_scaling is not None:
        if config.rope_scaling.get("rope_type") != "linear":
            raise CheckpointError(
                f"{directory / 'config.json'}: rope_scaling {config.rope_scaling['rope_type']!r} has no GGUF "
                "form here (linear only)"
            )
        from gguf import RopeScalingType

        writer.add_rope_scaling_type(RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.rope_scaling["factor"]))

    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types([TokenType(t) for t in vocab.types])
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    writer.add_add_space_prefix(vocab.add_space_prefix)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(False)
    for add, value in (
        (writer.add_bos_token_id, tokenizer.bos_id),
        (writer.add_eos_token_id, tokenizer.end_id if tokenizer.end_id is not None else tokenizer.eos_id),
        (writer.add_pad_token_id, tokenizer.pad_id),
    ):
        if value is not None and value >= 0:
            add(int(value))
    writer.add_chat_template(tokenizer.chat_template)

    for name, value in params.items():
        if name.endswith("q_proj.weight"):
            value = permute_rotary(value, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            value = permute_rotary(value, config.num_key_value_heads)
        if value.ndim == 1:
            writer.add_tensor(gguf_tensor_name(name), value.astype(np.float32))
        elif out_type == "q8_0":
            data = quantize(value.astype(np.float32), GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_tensor_name(name), data, raw_dtype=GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(gguf_tensor_name(name), value.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
