"""Fine-tune a pretrained Hugging Face Llama (SmolLM2-135M-Instruct) with LoRA (``peft``) on the CPU.

The data: reasoning records (``training.reasoning_data``) and a share of chat (``training.chat_data``),
rendered with the BASE model's own chat template; a reasoning answer is the assistant turn
``<think>\\n{cot}\\n</think>\\n{final}`` written as plain text (SmolLM2 has no ``<think>`` token; the server
splits such a model's output at the textual ``</think>``). The loss is on assistant tokens only (the mask
comes from ``BaseTokenizer.encode_sft_example``, as for our own models), written as ordinary prepared
shards so the batches are the trainer's own.

The training loop is ``training.trainer.Trainer`` (schedule, exact resume, progress bar, metrics, loss
plot); :class:`HFCausalLM` adapts the ``transformers``/``peft`` model to the interface it expects, and its
state dict holds only the trainable tensors, so a LoRA resume state is a few MB, not the whole base.

Run directory: the trainer's files, plus ``lora.json`` (the options) and ``adapter/`` (``peft``'s
``adapter_model.safetensors`` + ``adapter_config.json``; with ``full`` the whole fine-tuned model).
:func:`merge` writes a servable checkpoint directory from the base and an adapter.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.tokenizer import THINK, THINK_END
from model.tokenizer_loading import load_tokenizer
from training.data import SPLITS, ShardWriter, token_dtype
from training.reasoning_problems import SPOKEN_SHARE
from training.trainer import TrainConfig, Trainer

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
# Appended to a merged checkpoint's chat template: when the server renders a plain request (``reasoning``
# false: ``reasoning_effort: "none"``, or an output a vote cannot give) the generation prompt ends with an
# empty chain, so the model answers at once, as Qwen3's ``enable_thinking=False`` does. Templates end with
# their generation prompt, so appending is enough; ``transformers`` leaves ``reasoning`` undefined: a chain.
NO_THINKING_PROMPT = (
    "{%- if add_generation_prompt and reasoning is defined and not reasoning -%}"
    "{{ '" + THINK + "\\n\\n" + THINK_END + "\\n' }}{%- endif -%}"
)
# The reasoning effort a merged checkpoint declares: requests without one get the chain (one sample).
DEFAULT_EFFORT = "low"


@dataclass
class LoraOptions:
    base: str  # the pretrained checkpoint directory (Hugging Face Llama layout)
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    full: bool = False  # full fine-tuning instead of LoRA
    dtype: str = "fp32"  # weights of the base while training: fp32 | bf16 (LoRA only)


# --------------------------------------------------------------------------------------------- data


# What a plain answer's turn starts with: an empty chain, as in the generation prompt a checkpoint's chat
# template writes when thinking is off (``reasoning`` false, see ``NO_THINKING_PROMPT``). Trained so that
# ``reasoning_effort: "none"`` has a prompt the model knows, apart from the one that asks for a chain.
EMPTY_CHAIN = f"{THINK}\n\n{THINK_END}\n"


def reasoning_messages(
    record: dict[str, Any], with_system: bool, plain: bool = False
) -> list[dict[str, str]]:
    """A reasoning record as a conversation whose answer carries its chain in textual markers (``plain``:
    an empty chain and the final sentence alone)."""
    if plain:
        answer = EMPTY_CHAIN + record["final"]
    else:
        answer = f"{THINK}\n{record['cot']}\n{THINK_END}\n{record['final']}"
    messages = [{"role": "user", "content": record["user"]}, {"role": "assistant", "content": answer}]
    return ([{"role": "system", "content": record["system"]}] if with_system else []) + messages


def _plain_chat(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """A chat conversation whose last assistant turn starts with the empty chain, as a plain request's
    generation prompt does."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    # No whitespace right after the empty chain: its last newline would merge with it into one token.
    return [
        dict(m, content=EMPTY_CHAIN + m["content"].lstrip()) if i == last else m
        for i, m in enumerate(messages)
    ]


def training_conversations(
    n_reasoning: int,
    n_chat: int,
    seed: int,
    system_share: float = 0.25,
    split: str = "train",
    hard_share: float | None = None,
    plain_share: float = 0.0,
    expression_share: float | None = None,
    spoken_share: float = SPOKEN_SHARE,
    word_share: float | None = None,
    story_share: float = 0.0,
) -> list[list[dict[str, str]]]:
    """Reasoning conversations (a ``system_share`` of them with the record's system prompt; the others get
    the template's default, as a request without one does) and chat conversations, shuffled.

    ``hard_share``: the share of reasoning problems from the hard stratum (None: strata alternate).
    ``expression_share``: the share that are bare expressions, in symbols or words (None: the generator's
    kind weights); ``spoken_share``: of those, the share asked in words. ``word_share``: the share that are
    word problems (None: by kind weights, with the expressions'); ``story_share``: of those, the share
    composed by ``training.reasoning_story`` rather than from the scenarios' templates.
    ``plain_share``: the share of reasoning problems answered without a chain (the final sentence after an
    empty one); when it is above 0 the chat answers start with the empty chain too, since a plain request's
    prompt holds it."""
    from training.chat_data import generate_chat
    from training.reasoning_data import KINDS, STRATA, generate

    rng = random.Random(f"tinyllm-lora:{split}:{seed}")
    by_stratum = (
        [(STRATA, 1.0)] if hard_share is None else [(("hard",), hard_share), (("easy",), 1 - hard_share)]
    )
    chosen = {"expression": expression_share, "word": word_share}
    chosen = {k: share for k, share in chosen.items() if share is not None}
    others = tuple(k for k in KINDS if k not in chosen)
    by_kind = [((k,), share) for k, share in chosen.items()] + [(others, 1 - sum(chosen.values()))]
    records = []
    for strata, stratum_share in by_stratum:
        for kinds, kind_share in by_kind:
            if n := round(n_reasoning * stratum_share * kind_share):
                records += generate(
                    split,
                    n,
                    seed,
                    strata=strata,
                    kinds=kinds,
                    spoken_share=spoken_share,
                    story_share=story_share,
                )
    conversations = [
        reasoning_messages(r, rng.random() < system_share, plain=rng.random() < plain_share) for r in records
    ]
    chats = [r["messages"] for r in generate_chat(n_chat, seed)] if n_chat else []
    conversations += [_plain_chat(c) for c in chats] if plain_share > 0 else chats
    rng.shuffle(conversations)
    return conversations


def prepare_data(
    base: str | Path,
    out: str | Path,
    n_reasoning: int,
    n_chat: int,
    n_val: int = 64,
    seed: int = 0,
    max_tokens: int = 512,
    hard_share: float | None = None,
    plain_share: float = 0.0,
    expression_share: float | None = None,
    spoken_share: float = SPOKEN_SHARE,
    word_share: float | None = None,
    story_share: float = 0.0,
) -> dict[str, Any]:
    """Tokenize the conversations with the base's tokenizer into prepared ``sft`` shards (train/ and val/,
    val from the reasoning generator's test split). Returns the meta.json it writes."""
    tokenizer = load_tokenizer(base)
    out = Path(out)
    dtype = token_dtype(tokenizer.vocab_size)
    splits: dict[str, dict[str, int]] = {}
    dropped = 0
    empty_chain = tokenizer.encode(EMPTY_CHAIN)
    for split, convs in (
        (
            "train",
            training_conversations(
                n_reasoning,
                n_chat,
                seed,
                hard_share=hard_share,
                plain_share=plain_share,
                expression_share=expression_share,
                spoken_share=spoken_share,
                word_share=word_share,
                story_share=story_share,
            ),
        ),
        ("val", training_conversations(n_val, 0, seed, split="test")),
    ):
        writer = ShardWriter(out / split, dtype, with_mask=True)
        for messages in convs:
            ids, mask = tokenizer.encode_sft_example(messages)
            if messages[-1]["content"].startswith(EMPTY_CHAIN):
                mask = _unmask_prompt_part(ids, mask, empty_chain)
            if len(ids) > max_tokens:
                dropped += 1
                continue
            writer.add(ids, mask)
        splits[split] = writer.close()
    assert set(splits) == set(SPLITS)
    meta = {
        "kind": "sft",
        "dtype": dtype.name,
        "tokenizer": str(Path(base).resolve()),
        "vocab_size": tokenizer.vocab_size,
        "sources": [
            {
                "reasoning": n_reasoning,
                "chat": n_chat,
                "val_reasoning": n_val,
                "seed": seed,
                "hard_share": hard_share,
                "plain_share": plain_share,
                "expression_share": expression_share,
                "spoken_share": spoken_share,
                "word_share": word_share,
                "story_share": story_share,
            }
        ],
        "splits": splits,
        "dropped_over_context": dropped,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def _unmask_prompt_part(ids: list[int], mask: list[int], part: list[int]) -> list[int]:
    """``mask`` without the loss on the last run of ``part``'s tokens: the empty chain is the plain request's
    prompt, never the model's to write (a model that learned to close its chain at once would do so in
    reasoning mode too, whose prompt stops before the chain)."""
    for start in range(len(ids) - len(part), -1, -1):
        if ids[start : start + len(part)] == part:
            return mask[:start] + [0] * len(part) + mask[start + len(part) :]
    raise ValueError("the empty chain is not tokenized apart from the answer")


# --------------------------------------------------------------------------------------------- model


class _HFConfigView:
    """What the trainer reads of ``model.config``, from a ``transformers`` config."""

    def __init__(self, hf_config: Any, pad_token_id: int) -> None:
        self.hf_config = hf_config
        self.vocab_size = int(hf_config.vocab_size)
        self.max_position_embeddings = int(hf_config.max_position_embeddings)
        self.pad_token_id = pad_token_id

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.hf_config.to_json_string(), encoding="utf-8")


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM (optionally wrapped by ``peft``) as the trainer's model: ``ids ->
    logits``; ``state_dict``/``load_state_dict`` cover the trainable tensors only (the frozen base is
    reloaded from its directory, so a resume state stays small)."""

    def __init__(self, network: nn.Module, pad_token_id: int) -> None:
        super().__init__()
        self.network = network
        self.config = _HFConfigView(network.config, pad_token_id)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.network(input_ids=ids, use_cache=False).logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in {id(p): p for p in self.network.parameters()}.values())

    def trainable_names(self) -> list[str]:
        return [name for name, p in self.network.named_parameters() if p.requires_grad]

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        params = dict(self.network.named_parameters())
        return {name: params[name].detach().clone() for name in self.trainable_names()}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True, assign: bool = False):  # type: ignore[override]
        params = dict(self.network.named_parameters())
        wanted = set(self.trainable_names())
        if set(state) != wanted:
            raise ValueError(
                f"state holds {len(state)} tensors, the model trains {len(wanted)}: "
                f"{sorted(set(state) ^ wanted)[:4]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)


def build_network(options: LoraOptions) -> nn.Module:
    """The base model, frozen and wrapped with LoRA on every linear layer of the blocks (or all
    trainable, with ``full``)."""
    from transformers import LlamaForCausalLM

    dtype = torch.bfloat16 if options.dtype == "bf16" and not options.full else torch.float32
    network = LlamaForCausalLM.from_pretrained(options.base, dtype=dtype)
    if options.full:
        return network
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(TARGET_MODULES),
        bias="none",
        task_type="CAUSAL_LM",
    )
    network = get_peft_model(network, config)
    if dtype != torch.float32:  # the adapter trains in fp32 on top of a bf16 base
        for p in network.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    return network


class LoraTrainer(Trainer):
    """The trainer, on a ``transformers`` model with LoRA (options in ``lora.json`` of the run directory)."""

    def __init__(self, config: TrainConfig, options: LoraOptions, resume: bool = False) -> None:
        self.options = options
        super().__init__(config, resume=resume)

    def _build_model(self, config: TrainConfig, data_meta: dict[str, Any]) -> tuple[nn.Module, Path]:
        tokenizer = load_tokenizer(self.options.base)
        pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
        return HFCausalLM(build_network(self.options), pad), Path(self.options.base)

    def _prepare_run_dir(self) -> None:
        if not self.dist.is_main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.out / "train_config.json")
        (self.out / "lora.json").write_text(
            json.dumps(asdict(self.options), indent=2) + "\n", encoding="utf-8"
        )
        self.model.config.save(self.out / "model_config.json")

    def save_adapter(self) -> Path:
        """``adapter/``: peft's adapter files (LoRA) or the whole fine-tuned model (full)."""
        directory = self.out / "adapter"
        self.model.network.save_pretrained(directory, safe_serialization=True)
        if self.options.full:
            copy_tokenizer_files(Path(self.options.base), directory)
        return directory


def train_lora(
    config: TrainConfig, options: LoraOptions, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    trainer = LoraTrainer(config, options, resume=resume)
    summary = trainer.fit(stop_after=stop_after)
    summary["adapter"] = str(trainer.save_adapter())
    summary["trainable_parameters"] = sum(p.numel() for p in trainer.params)
    return summary


# --------------------------------------------------------------------------------------------- merge


def copy_tokenizer_files(source: Path, target: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)


def merge(
    base: str | Path,
    adapter: str | Path | list[str | Path],
    out: str | Path,
    effort: str = DEFAULT_EFFORT,
) -> Path:
    """A servable checkpoint directory: the base with the adapter folded into its weights (fp32
    safetensors), the base's tokenizer and chat template, and a generation_config.json that declares
    ``reasoning_effort`` so the server thinks by default. A list of adapters is folded in order: a run
    that continued from a merged checkpoint trained its adapter on top of the ones before."""
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base, out = Path(base), Path(out)
    adapters = [Path(a) for a in (adapter if isinstance(adapter, list) else [adapter])]
    if (adapters[0] / "config.json").is_file():  # a full fine-tune: the adapter directory is the model
        merged = LlamaForCausalLM.from_pretrained(adapters[0], dtype=torch.float32)
        adapters = adapters[1:]
    else:
        merged = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    for path in adapters:
        merged = PeftModel.from_pretrained(merged, path).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    copy_tokenizer_files(base, out)
    add_thinking_switch(out)
    generation = {}
    if (base / "generation_config.json").is_file():
        generation = json.loads((base / "generation_config.json").read_text(encoding="utf-8"))
    generation = {k: v for k, v in generation.items() if not k.startswith("transformers")}
    generation["reasoning_effort"] = effort
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    return out


def add_thinking_switch(checkpoint: Path) -> None:
    """Append ``NO_THINKING_PROMPT`` to the checkpoint's chat template (``chat_template.jinja``, else
    ``tokenizer_config.json``'s ``chat_template``), once."""
    jinja = checkpoint / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
        if NO_THINKING_PROMPT not in template:
            jinja.write_text(template + NO_THINKING_PROMPT, encoding="utf-8")
        return
    config_path = checkpoint / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    template = config.get("chat_template")
    if isinstance(template, str) and NO_THINKING_PROMPT not in template:
        config["chat_template"] = template + NO_THINKING_PROMPT
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_adapter(adapter: str | Path, out: str | Path) -> Path:
    """A copy of a LoRA adapter for shipping: its config, and its weights in bf16, half the bytes. Folded into
    fp32 base weights by :func:`merge` the logits move by ~0.004 (SmolLM2, r = 16) and greedy tokens do not."""
    from safetensors.torch import load_file, save_file

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise ValueError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = None  # a path on the training machine; lora-merge is told the base
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    weights = load_file(adapter / "adapter_model.safetensors")
    save_file(
        {name: w.to(torch.bfloat16) for name, w in weights.items()},
        out / "adapter_model.safetensors",
        metadata={"format": "pt"},
    )
    return out


def base_directory(base: str | None) -> Path:
    """The base checkpoint: ``base`` if given, else SmolLM2-135M-Instruct pulled into the model cache."""
    if base:
        return Path(base)
    from tinyllm.pull import pull

    return pull("smollm2")
