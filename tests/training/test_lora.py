"""LoRA fine-tuning of a Hugging Face Llama (training.lora) on a tiny random model with a byte-level BPE
tokenizer trained in the fixture: the loss mask, what training changes, exact resume, and the merged
checkpoint loading in our loader and in transformers with the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from model.checkpoint import load_checkpoint  # noqa: E402
from model.tokenizer_loading import load_tokenizer  # noqa: E402
from tests.support import make_hf_checkpoint  # noqa: E402
from training.cli import main as training_main  # noqa: E402
from training.lora import (  # noqa: E402
    EMPTY_CHAIN,
    LoraOptions,
    LoraTrainer,
    merge,
    prepare_data,
    reasoning_messages,
    training_conversations,
)
from training.metrics import read_metrics  # noqa: E402
from training.reasoning_data import generate  # noqa: E402
from training.trainer import TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hf_checkpoint(tmp_path_factory.mktemp("lora-base"), seed=3, max_position_embeddings=1024)


@pytest.fixture(scope="module")
def data(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lora-data")
    prepare_data(base, out, n_reasoning=32, n_chat=4, n_val=8, seed=0, max_tokens=1024)
    return out


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(
        stage="lora",
        data=str(data),
        out=str(out),
        seq_len=1024,
        batch_size=4,
        max_steps=6,
        lr=1e-2,
        warmup_steps=1,
        weight_decay=0.0,
        eval_interval=0,
        eval_batches=2,
        checkpoint_interval=0,
        seed=7,
        precision="fp32",
        threads=1,
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _trained(base: Path, data: Path, out: Path, steps: int) -> LoraTrainer:
    """A rank-8 LoRA run of ``steps`` steps on ``base``, fitted, its model in eval mode."""
    trainer = LoraTrainer(_config(data, out, max_steps=steps), LoraOptions(str(base), rank=8))
    trainer.fit()
    trainer.model.eval()
    return trainer


def test_loss_mask_covers_exactly_the_assistant_turn(base: Path, data: Path) -> None:
    tokenizer = load_tokenizer(base)
    record = generate("train", 1, 5)[0]
    messages = reasoning_messages(record, with_system=False)
    ids, mask = tokenizer.encode_sft_example(messages)
    target = [t for t, m in zip(ids, mask, strict=True) if m]
    context = [t for t, m in zip(ids, mask, strict=True) if not m]
    answer = f"<think>\n{record['cot']}\n</think>\n{record['final']}"
    assert tokenizer.decode(target, skip_special=False) == answer + "<|im_end|>"
    # Everything else is the base template's text: its default system prompt, the question, the turn tags.
    prompt = tokenizer.decode(context, skip_special=False)
    assert prompt.startswith("<|im_start|>system\n") and record["user"] in prompt
    assert prompt.endswith("<|im_start|>assistant\n\n") and answer not in prompt
    # The prepared shards hold the same masks: every training example's targets are one assistant turn.
    meta = json.loads((data / "meta.json").read_text())
    tokens = np.fromfile(data / "train" / "tokens.bin", dtype=meta["dtype"])
    masks = np.fromfile(data / "train" / "mask.bin", dtype=np.uint8)
    offsets = np.load(data / "train" / "offsets.npy")
    thinking = 0
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        text = tokenizer.decode(tokens[start:end][masks[start:end] == 1].tolist(), skip_special=False)
        assert text.endswith("<|im_end|>") and text.count("<|im_end|>") == 1
        thinking += text.startswith("<think>\n") and "\n</think>\n" in text
    assert thinking >= 28  # the 32 reasoning examples (some may be dropped as over-long); chat has no chain


def test_plain_answers_learn_the_answer_after_an_empty_chain_never_the_chain(
    base: Path, tmp_path: Path
) -> None:
    """``--plain-share``: some problems are answered without a chain, after the empty one a plain request's
    prompt ends with; the loss never covers that empty chain (a model that learned to write it would close
    its chain at once in reasoning mode too). ``--hard-share`` sets the strata's mix."""
    conversations = training_conversations(40, 4, seed=1, hard_share=0.75, plain_share=0.5)
    answers = [c[-1]["content"] for c in conversations]
    plain = [a for a in answers if a.startswith(EMPTY_CHAIN)]
    assert 8 <= len(plain) <= 36 and all(a.startswith("<think>\n") for a in answers)
    assert sum(EMPTY_CHAIN + "\n" in a or EMPTY_CHAIN + " " in a for a in answers) == 0
    # --expression-share and --word-share set the kinds' mix, --story-share the composed word problems.
    mixed = training_conversations(40, 0, seed=1, expression_share=0.25, word_share=0.5, story_share=1.0)
    composed = [
        c for c in mixed if c[-1]["content"].startswith(("<think>\n数量关系", "<think>\nThe numbers"))
    ]
    assert len(composed) == 20, [c[-1]["content"][:40] for c in mixed]
    records = [r for r in generate("train", 12, 1, strata=("hard",))]
    assert all(r["stratum"] == "hard" for r in records)
    out = tmp_path / "data"
    prepare_data(base, out, n_reasoning=24, n_chat=4, n_val=4, seed=1, max_tokens=1024, plain_share=0.5)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["sources"][0]["plain_share"] == 0.5
    tokenizer = load_tokenizer(base)
    tokens = np.fromfile(out / "train" / "tokens.bin", dtype=meta["dtype"])
    masks = np.fromfile(out / "train" / "mask.bin", dtype=np.uint8)
    offsets = np.load(out / "train" / "offsets.npy")
    answered_plainly = 0
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        ids, mask = tokens[start:end].tolist(), masks[start:end]
        target = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m], skip_special=False)
        whole = tokenizer.decode(ids, skip_special=False)
        assert not target.startswith("<think>\n\n") and "</think>" not in target.split("\n", 1)[0]
        if EMPTY_CHAIN in whole:
            answered_plainly += 1
            assert whole.count(EMPTY_CHAIN) == 1 and "<think>" not in target
    assert answered_plainly >= 8


def _network_state(trainer: LoraTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.network.named_parameters()}


def test_lora_trains_only_the_adapter_and_lowers_the_loss(base: Path, data: Path, tmp_path: Path) -> None:
    trainer = LoraTrainer(_config(data, tmp_path / "run", max_steps=12), LoraOptions(str(base), rank=8))
    before = _network_state(trainer)
    loss_before = trainer.evaluate()["val_loss"]
    summary = trainer.fit()
    loss_after = trainer.evaluate()["val_loss"]
    after = _network_state(trainer)
    assert loss_after < loss_before - 0.5, (loss_before, loss_after)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    lora_b = {name for name in before if "lora_B" in name}
    assert lora_b and lora_b <= changed  # B starts at zero: every adapter moved
    assert all("lora_" in name for name in changed)  # the base stayed frozen
    assert summary["finished"] and (tmp_path / "run" / "loss.png").is_file()
    adapter = trainer.save_adapter()
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    assert set(state["model"]) == {n for n, p in trainer.model.network.named_parameters() if p.requires_grad}


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(base: Path, data: Path, tmp_path: Path) -> None:
    options = LoraOptions(str(base), rank=4, dropout=0.1)  # dropout: the RNG state must resume too
    whole = LoraTrainer(_config(data, tmp_path / "whole"), options)
    whole.fit()
    LoraTrainer(_config(data, tmp_path / "cut"), options).fit(stop_after=3)
    resumed = LoraTrainer(_config(data, tmp_path / "cut"), options, resume=True)
    assert resumed.step == 3
    resumed.fit()
    losses = [
        [r["loss"] for r in read_metrics(d / "metrics.jsonl") if "loss" in r]
        for d in (tmp_path / "whole", tmp_path / "cut")
    ]
    assert len(losses[0]) == 6 and losses[0] == losses[1]
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_merged_checkpoint_loads_here_and_in_transformers_with_equal_logits(
    base: Path, data: Path, tmp_path: Path
) -> None:
    from transformers import LlamaForCausalLM

    trainer = _trained(base, data, tmp_path / "run", steps=4)
    adapter = trainer.save_adapter()
    ids = torch.tensor([load_tokenizer(base).encode_chat([{"role": "user", "content": "计算：12*3+4"}])])
    with torch.no_grad():
        trained = trainer.model(ids)
    # The command users run: base + shipped adapter -> checkpoint directory.
    out = tmp_path / "merged"
    assert (
        training_main(["lora-merge", "--base", str(base), "--adapter", str(adapter), "--out", str(out)]) == 0
    )
    assert json.loads((out / "generation_config.json").read_text())["reasoning_effort"] == "low"
    loaded = load_checkpoint(out)
    with torch.no_grad():
        ours = loaded.model(ids)
        theirs = LlamaForCausalLM.from_pretrained(out).eval()(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours, trained, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        base_logits = load_checkpoint(base).model(ids)
    assert (ours - base_logits).abs().max() > 1e-3  # the adapter is in the weights
    # Reasoning mode renders as the base does; a plain request's prompt ends with the empty chain the model
    # was trained to answer after (reasoning_effort "none"), and transformers, which knows no `reasoning`,
    # renders as the base.
    hi = [{"role": "user", "content": "hi"}]
    base_tokenizer = load_tokenizer(base)
    assert loaded.tokenizer.encode_chat(hi, reasoning=True) == base_tokenizer.encode_chat(hi, reasoning=True)
    plain = loaded.tokenizer.decode(loaded.tokenizer.encode_chat(hi), skip_special=False)
    assert plain == base_tokenizer.decode(base_tokenizer.encode_chat(hi), skip_special=False) + EMPTY_CHAIN
    from transformers import AutoTokenizer

    hf_prompt = AutoTokenizer.from_pretrained(out).apply_chat_template(
        hi, tokenize=False, add_generation_prompt=True
    )
    assert hf_prompt.endswith("assistant\n") and EMPTY_CHAIN not in hf_prompt
    merge(base, adapter, out)  # merging again into the same directory adds the switch once
    assert loaded.tokenizer.encode_chat(hi) == load_checkpoint(out).tokenizer.encode_chat(hi)


def test_full_fine_tuning_trains_every_weight_and_merges(base: Path, data: Path, tmp_path: Path) -> None:
    trainer = LoraTrainer(
        _config(data, tmp_path / "run", max_steps=2, lr=1e-3), LoraOptions(str(base), full=True)
    )
    before = _network_state(trainer)
    trainer.fit()
    after = _network_state(trainer)
    assert all(not torch.equal(before[n], after[n]) for n in before)
    out = merge(base, trainer.save_adapter(), tmp_path / "merged")
    ids = torch.tensor([[1, 5, 9, 40, 2]])
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(out).model(ids), trainer.model(ids), atol=1e-4, rtol=1e-4)


def test_a_run_continued_from_a_merged_checkpoint_merges_as_two_adapters_in_order(
    base: Path, data: Path, tmp_path: Path
) -> None:
    first = _trained(base, data, tmp_path / "first", steps=2)
    first_merged = merge(base, first.save_adapter(), tmp_path / "first-merged")
    second = _trained(first_merged, data, tmp_path / "second", steps=2)
    second_adapter = second.save_adapter()
    ids = torch.tensor([[1, 5, 9, 40, 2]])
    with torch.no_grad():
        trained = second.model(ids)
    out = tmp_path / "both"
    argv = ["lora-merge", "--base", str(base), "--adapter", str(first.save_adapter()), str(second_adapter)]
    assert training_main([*argv, "--out", str(out)]) == 0
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(out).model(ids), trained, atol=1e-4, rtol=1e-4)
        # The second adapter alone on the original base is another model.
        alone = merge(base, second_adapter, tmp_path / "alone")
        assert (load_checkpoint(alone).model(ids) - trained).abs().max() > 1e-3


def test_an_exported_adapter_is_half_the_bytes_and_merges_to_the_same_tokens(
    base: Path, data: Path, tmp_path: Path
) -> None:
    adapter = _trained(base, data, tmp_path / "run", steps=3).save_adapter()
    shipped = tmp_path / "shipped"
    assert training_main(["lora-export", "--adapter", str(adapter), "--out", str(shipped)]) == 0
    size = (shipped / "adapter_model.safetensors").stat().st_size
    assert size < 0.6 * (adapter / "adapter_model.safetensors").stat().st_size
    ids = torch.tensor([[1, 5, 9, 40, 2, 77, 3]])
    with torch.no_grad():
        exact = load_checkpoint(merge(base, adapter, tmp_path / "exact")).model(ids)
        halved = load_checkpoint(merge(base, shipped, tmp_path / "halved")).model(ids)
    assert not torch.equal(exact, halved)  # the weights really were rounded
    torch.testing.assert_close(halved, exact, atol=2e-2, rtol=0)
    assert torch.equal(halved.argmax(-1), exact.argmax(-1))
