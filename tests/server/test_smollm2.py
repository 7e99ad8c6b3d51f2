"""SmolLM2-135M-Instruct through the real server agrees with transformers on the same (imported) weights.

Greedy: the first 32 tokens of five varied chat prompts equal ``generate``'s; float32 logits (the plain
network and the serving copy) differ by < 1e-3. int8: perplexity ratio to float32 on held-out English
text, and top-1 agreement. Slow (minutes on 2 cores: two copies of a 135M model, 30 layers).
"""

from __future__ import annotations

import math
from pathlib import Path

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from model.checkpoint import load_checkpoint
from model.inference import prepare_for_serving
from tests.server.support import API_KEY, run_server

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence why the sky is blue.",
    "List three fruits that are red.",
    "How do I reverse a list in Python?",
]
# Written for this test, so it is in no training set.
HELD_OUT = (
    "The lighthouse keeper had lived on the island for nearly thirty years. Every evening he climbed the "
    "narrow stairs, trimmed the wick, and watched the beam sweep across the dark water. Ships passed far out "
    "on the horizon, their lights small and steady, and he liked to imagine where they were going. In the "
    "winter the storms came hard from the north, and the waves threw spray all the way up to the gallery "
    "windows. He kept a logbook of every vessel he saw, noting the date, the weather, and the direction it "
    "was heading. When the government finally announced that the light would be automated, he did not "
    "argue. He packed his books, his logbooks, and a small box of shells he had collected on the beach, and "
    "he took the ferry back to the mainland."
)


@pytest.fixture(scope="module")
def reference(smollm2_dir: Path):
    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()


def test_greedy_tokens_through_the_server_equal_transformers_generate(smollm2_dir: Path, reference):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    with run_server(smollm2_dir, served_model_name=None, quantize="none", max_batch=2) as live:
        client = openai.OpenAI(base_url=live.v1, api_key=API_KEY, max_retries=0)
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            with torch.no_grad():
                out = reference.generate(
                    torch.tensor([ids]),
                    max_new_tokens=32,
                    do_sample=False,
                    eos_token_id=tokenizer.eos_token_id,
                )
            expected = out[0, len(ids) :].tolist()
            if expected[-1] == tokenizer.eos_token_id:
                expected = expected[:-1]
            r = client.chat.completions.create(
                model="SmolLM2-135M-Instruct", messages=messages, max_tokens=32, temperature=0
            )
            assert r.usage.prompt_tokens == len(ids)
            assert r.usage.completion_tokens == len(expected)
            assert r.choices[0].message.content == tokenizer.decode(expected, skip_special_tokens=True)
            assert r.choices[0].finish_reason == ("stop" if len(expected) < 32 else "length")


def test_float32_logits_equal_transformers(smollm2_dir: Path, reference):
    loaded = load_checkpoint(smollm2_dir, max_len=512)
    ids = torch.tensor([loaded.tokenizer.encode(HELD_OUT)])
    with torch.no_grad():
        expected = reference(ids).logits[0]
        plain = loaded.model(ids)[0]
        serving = prepare_for_serving(loaded.model, "fp32")(ids)[0]
    assert (plain - expected).abs().max().item() < 1e-3
    assert (serving - expected).abs().max().item() < 1e-3


def _perplexity(logits: torch.Tensor, ids: torch.Tensor) -> float:
    logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
    return math.exp(-logprobs[torch.arange(len(ids) - 1), ids[1:]].mean().item())


def test_int8_perplexity_is_within_2_percent_of_float32(smollm2_dir: Path):
    loaded = load_checkpoint(smollm2_dir, max_len=512)
    ids = torch.tensor(loaded.tokenizer.encode(HELD_OUT))
    with torch.no_grad():
        fp32 = loaded.model(ids[None])[0]
        int8 = prepare_for_serving(loaded.model, "int8")(ids[None])[0]
    ratio = _perplexity(int8, ids) / _perplexity(fp32, ids)
    agreement = (fp32.argmax(-1) == int8.argmax(-1)).float().mean().item()
    print(f"SmolLM2 int8/fp32 perplexity ratio {ratio:.3f}, top-1 agreement {agreement:.3f}")
    assert ratio <= 1.02
