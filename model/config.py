"""Model hyper-parameters, stored as a Hugging Face Llama ``config.json``.

Field names follow ``transformers.LlamaConfig`` on purpose: a checkpoint we write loads in
``LlamaForCausalLM.from_pretrained`` and a small Llama checkpoint written by someone else loads here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


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
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

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
            head_dim=self.head_dim,
            torch_dtype="float32",
            use_cache=True,
            # transformers >= 5 reads rope_parameters; older versions read the top-level rope_theta.
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
        )
        return d

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if not isinstance(d, dict):
            raise ValueError("config.json must hold a JSON object")
        model_type = d.get("model_type", "llama")
        if model_type not in ("llama", "mistral", "qwen2"):
            raise ValueError(
                f"unsupported model_type {model_type!r}: only Llama-architecture checkpoints load"
            )
        if d.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act {d['hidden_act']!r}")
        if d.get("attention_bias") or d.get("mlp_bias"):
            raise ValueError("checkpoints with attention or MLP biases are not supported")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"rope scaling {rope!r} is not supported")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "rope_theta" in rope:
            kwargs["rope_theta"] = rope["rope_theta"]
        kwargs.setdefault("num_key_value_heads", d.get("num_attention_heads", cls.num_attention_heads))
        # HF allows a list of eos ids; our config keeps the primary one (the others live in
        # generation_config.json and are honoured as stop tokens).
        for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = kwargs[key][0]
            if kwargs.get(key) is None:
                kwargs.pop(key, None)
        config = cls(**kwargs)
        if d.get("head_dim") not in (None, config.head_dim):
            raise ValueError("head_dim different from hidden_size / num_attention_heads is not supported")
        return config

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_hf_dict(json.loads(Path(path).read_text(encoding="utf-8")))
