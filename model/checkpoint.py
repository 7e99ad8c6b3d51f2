"""Checkpoint directories in the Hugging Face Llama layout.

A checkpoint is a directory holding ``config.json``, ``model.safetensors`` (tensor names as in
``LlamaForCausalLM``), a tokenizer (``tokenizer.model`` SentencePiece, which we write, or ``tokenizer.json``),
``tokenizer_config.json`` (with the chat template), ``special_tokens_map.json`` and
``generation_config.json``. ``transformers`` loads what we write, and we load Llama checkpoints written by
others (sharded safetensors, bf16/fp16, tied or not, explicit head_dim, linear/llama3 rope scaling); what
the engine does not implement is refused with the file and the field named (:mod:`model.config`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model import chat_template
from model.config import ModelConfig
from model.tokenizer import SPECIAL_TOKENS, Tokenizer
from model.tokenizer_base import BaseTokenizer
from model.tokenizer_loading import TOKENIZER_FILES, load_tokenizer, tokenizer_file
from model.transformer import Transformer


class CheckpointError(Exception):
    """A checkpoint directory that cannot be loaded; the message names the file at fault."""


@dataclass
class LoadedCheckpoint:
    model: Transformer
    tokenizer: BaseTokenizer
    config: ModelConfig
    generation_config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # Who publishes the model: the organisation of config.json's "org/name" _name_or_path, if it has one.
    owner: str | None = None


def _to_hf_name(name: str) -> str:
    return name if name.startswith("lm_head.") else f"model.{name}"


def _from_hf_name(name: str) -> str:
    return name.removeprefix("model.")


def save_model_files(directory: str | Path, model: Transformer, dtype: torch.dtype = torch.float32) -> None:
    """Write ``model.safetensors`` and ``config.json`` (the weights half of a checkpoint directory)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # tied to embed_tokens; transformers re-ties it on load
        state[_to_hf_name(name)] = tensor.detach().to(dtype).contiguous()
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    hf_config = model.config.to_hf_dict()
    hf_config["torch_dtype"] = str(dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")


def save_checkpoint(
    directory: str | Path,
    model: Transformer,
    tokenizer_model_path: str | Path,
    generation_config: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
    chat_template_text: str | None = None,
) -> Path:
    """Write ``model`` and its tokenizer as a checkpoint directory; returns the directory."""
    directory = Path(directory)
    config = model.config
    save_model_files(directory, model, dtype)

    tokenizer_model_path = Path(tokenizer_model_path)
    if tokenizer_model_path.resolve() != (directory / "tokenizer.model").resolve():
        shutil.copyfile(tokenizer_model_path, directory / "tokenizer.model")
    tokenizer = Tokenizer(directory / "tokenizer.model", chat_template_text)
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    tokenizer_config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": False,
        "add_eos_token": False,
        "legacy": False,
        "model_max_length": config.max_position_embeddings,
        "additional_special_tokens": SPECIAL_TOKENS,
        "chat_template": chat_template_text or chat_template.DEFAULT_CHAT_TEMPLATE,
        **specials,
    }
    (directory / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (directory / "special_tokens_map.json").write_text(
        json.dumps({**specials, "additional_special_tokens": SPECIAL_TOKENS}, indent=2) + "\n",
        encoding="utf-8",
    )
    gen = {
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.stop_token_ids,
        "pad_token_id": tokenizer.pad_id,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_new_tokens": 256,
    }
    gen.update(generation_config or {})
    (directory / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n", encoding="utf-8")
    return directory


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e


def _read_tensors(directory: Path) -> dict[str, torch.Tensor]:
    index = directory / "model.safetensors.index.json"
    files = sorted(set(_read_json(index)["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        path = directory / name
        if not path.exists():
            raise CheckpointError(f"{path}: file not found")
        try:
            tensors.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({e})") from e
    return tensors


def _stop_ids(
    tokenizer: BaseTokenizer, config: dict[str, Any], generation_config: dict[str, Any]
) -> list[int]:
    """The tokenizer's end-of-turn/eos ids and the eos ids ``transformers`` ``generate`` stops on:
    generation_config.json's, or config.json's when there is no generation config."""
    source = generation_config if "eos_token_id" in generation_config else config
    extra = source.get("eos_token_id")
    ids = extra if isinstance(extra, list) else [extra]
    wanted = set(tokenizer.stop_token_ids) | {
        int(i) for i in ids if isinstance(i, int) and not isinstance(i, bool)
    }
    return sorted(i for i in wanted if 0 <= i < tokenizer.vocab_size)


def load_checkpoint(
    directory: str | Path, dtype: torch.dtype = torch.float32, max_len: int | None = None
) -> LoadedCheckpoint:
    """Load a Llama-layout checkpoint directory into our :class:`Transformer` (in eval mode).

    ``max_len`` caps the positions the model is built for (see :class:`Transformer`); default its context.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    hf_config = _read_json(directory / "config.json")
    try:
        config = ModelConfig.from_hf_dict(hf_config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{directory / 'config.json'}: {e}") from e
    tok_path = tokenizer_file(directory)
    if tok_path is None:
        raise CheckpointError(f"{directory}: no tokenizer ({' or '.join(TOKENIZER_FILES)} is required)")
    try:
        tokenizer = load_tokenizer(directory)
    except Exception as e:  # each library has its own errors for a corrupt file
        raise CheckpointError(f"{tok_path}: cannot load the tokenizer ({type(e).__name__}: {e})") from None
    if tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{tok_path}: the tokenizer has {tokenizer.vocab_size} tokens, more than config.json's "
            f"vocab_size {config.vocab_size}"
        )

    model = Transformer(config, max_len=max_len)
    tensors = {_from_hf_name(k): v for k, v in _read_tensors(directory).items() if "rotary_emb" not in k}
    expected = model.state_dict()
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
        expected.pop("lm_head.weight")
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise CheckpointError(f"{directory / 'model.safetensors'}: missing tensors {missing[:5]}")
    unexpected = sorted(_to_hf_name(k) for k in set(tensors) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{directory / 'model.safetensors'}: tensors this architecture does not have {unexpected[:5]} "
            "(biases, extra layers or a different model type are not supported)"
        )
    for name, tensor in tensors.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{directory / 'model.safetensors'}: tensor {_to_hf_name(name)} has shape "
                f"{tuple(tensor.shape)}, config.json implies {tuple(expected[name].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    del tensors
    model.to(dtype).eval()
    gen_path = directory / "generation_config.json"
    generation_config = _read_json(gen_path) if gen_path.exists() else {}
    tokenizer.stop_token_ids = _stop_ids(tokenizer, hf_config, generation_config)
    name_or_path = hf_config.get("_name_or_path")
    owner = (
        name_or_path.split("/")[0] if isinstance(name_or_path, str) and name_or_path.count("/") == 1 else None
    )
    return LoadedCheckpoint(
        model=model,
        tokenizer=tokenizer,
        config=config,
        generation_config=generation_config,
        path=directory,
        owner=owner or None,
    )
