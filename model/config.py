"""Model hyper-parameters, stored as a Hugging Face Llama ``config.json``.

Field names follow ``transformers.LlamaConfig`` on purpose: a checkpoint we write loads in
``LlamaForCausalLM.from_pretrained`` and a small Llama checkpoint written by someone else loads here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from model.rope_scaling import SUPPORTED_ROPE_TYPES, inverse_frequencies, rope_type

# model_type values whose checkpoints are exactly this architecture (Mistral is Llama plus an optional
# sliding window, refused below when set).
LLAMA_FAMILY = ("llama", "mistral")
_MOE_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size")


@dataclass
class ModelConfig:
    vocab_size: int = 8000
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0
    # None: hidden_size // num_attention_heads (as in transformers); some checkpoints set it explicitly.
    head_dim: int | None = None
    # transformers' rope_scaling without rope_theta: {"rope_type": "llama3", "factor": 8.0, ...} or None.
    rope_scaling: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.rms_norm_eps, int | float) and self.rms_norm_eps > 0):
            raise ValueError(f"rms_norm_eps must be a positive number, got {self.rms_norm_eps!r}")
        if not (isinstance(self.rope_theta, int | float) and self.rope_theta > 0):
            raise ValueError(f"rope_theta must be a positive number, got {self.rope_theta!r}")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError("hidden_size must be divisible by num_attention_heads")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if not isinstance(self.head_dim, int) or self.head_dim <= 0 or self.head_dim % 2:
            raise ValueError(f"head_dim must be a positive even integer, got {self.head_dim!r}")
        if rope_type(self.rope_scaling) == "default":
            self.rope_scaling = None
        elif rope_type(self.rope_scaling) not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"rope_scaling type {rope_type(self.rope_scaling)!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
            )
        try:
            inverse_frequencies(self.head_dim, self.rope_theta, self.rope_scaling)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise ValueError(f"rope_scaling {self.rope_scaling!r} lacks or mistypes a field ({e})") from None
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")

    def to_hf_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            model_type="llama",
            architectures=["LlamaForCausalLM"],
            hidden_act="silu",
            attention_bias=False,
            mlp_bias=False,
            attention_dropout=0.0,
            initializer_range=0.02,
            torch_dtype="float32",
            use_cache=True,
            # transformers >= 5 reads rope_parameters; older versions read rope_theta and rope_scaling.
            rope_parameters={
                "rope_type": "default",
                **(self.rope_scaling or {}),
                "rope_theta": self.rope_theta,
            },
        )
        if self.rope_scaling is None:
            d.pop("rope_scaling")
        return d

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """A config.json dict; ValueError naming the field for what the engine does not implement."""
        if not isinstance(d, dict):
            raise ValueError("config.json must hold a JSON object")
        model_type = d.get("model_type", "llama")
        if model_type not in LLAMA_FAMILY:
            raise ValueError(
                f"model_type {model_type!r} is not supported: only Llama-architecture checkpoints load "
                f"({', '.join(LLAMA_FAMILY)})"
            )
        architectures = d.get("architectures") or []
        if any(a not in ("LlamaForCausalLM", "MistralForCausalLM") for a in architectures):
            raise ValueError(f"architectures {architectures!r} is not supported (LlamaForCausalLM only)")
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {d['hidden_act']!r} is not supported (silu only)")
        for key in ("attention_bias", "mlp_bias"):
            if d.get(key):
                raise ValueError(f"{key}=true is not supported (the engine's projections have no bias)")
        if d.get("sliding_window") and d.get("use_sliding_window", True):
            raise ValueError(f"sliding_window={d['sliding_window']!r} is not supported (full attention only)")
        for key in _MOE_FIELDS:
            if d.get(key):
                raise ValueError(f"{key}={d[key]!r}: mixture-of-experts models are not supported")
        if d.get("is_encoder_decoder") or d.get("add_cross_attention"):
            raise ValueError("cross-attention (is_encoder_decoder/add_cross_attention) is not supported")
        rope = dict(d.get("rope_parameters") or d.get("rope_scaling") or {})
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError(f"rope partial_rotary_factor={rope['partial_rotary_factor']!r} is not supported")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names and k not in ("rope_scaling", "head_dim")}
        if "rope_theta" in rope:
            kwargs["rope_theta"] = rope.pop("rope_theta")
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope.pop("type")
        kwargs["rope_scaling"] = rope if rope_type(rope) != "default" else None
        if d.get("head_dim") is not None:
            kwargs["head_dim"] = d["head_dim"]
        kwargs.setdefault("num_key_value_heads", d.get("num_attention_heads", cls.num_attention_heads))
        # HF allows a list of eos ids; our config keeps the primary one (the others live in
        # generation_config.json and are honoured as stop tokens).
        for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = kwargs[key][0] if kwargs[key] else None
            if kwargs.get(key) is None:
                kwargs.pop(key, None)
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_hf_dict(json.loads(Path(path).read_text(encoding="utf-8")))
