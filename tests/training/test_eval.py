"""Scoring of the reasoning eval: answer extraction from generated ids, greedy vs self-consistency@k."""

from __future__ import annotations

import pytest
import torch

from model.config import ModelConfig
from model.tokenizer import Tokenizer
from model.transformer import Transformer
from tests.training.support import problem_result
from training.eval import EvalConfig, accuracy_table, answer_key, format_table, run_problems
from training.reasoning_templates import EXPRESSION


def test_self_consistency_uses_the_first_k_samples_and_majority_vote():
    results = [
        # greedy wrong; the first sample wrong, but 3 of the first 5 right
        problem_result("hard", "zh", "74", "75", ["75", "74", "74", "74", "1", "1", "1", "1", "1"]),
        # greedy right; the vote over 9 goes to a wrong answer
        problem_result("easy", "en", "6", "6", ["6", "", "5", "5", "6", "5", "5", "", ""]),
    ]
    table = accuracy_table(results, ks=(1, 5, 9))
    assert table["hard"] == {
        "n": 1,
        "greedy": 0.0,
        "sc@1": 0.0,
        "sc@5": 100.0,
        "sc@9": 0.0,
        "checked@5": 100.0,
        "checked@9": 0.0,  # no chain text: every sample is eligible
        "answered_greedy": 100.0,
        "agreement@max": pytest.approx(5 / 9, abs=1e-3),
    }
    assert table["easy"]["greedy"] == 100.0 and table["easy"]["sc@1"] == 100.0
    assert table["easy"]["sc@5"] == 100.0  # "6" x2 vs "5" x2: the tie goes to the answer seen first
    assert table["easy"]["sc@9"] == 0.0
    assert table["all"]["n"] == 2 and table["all"]["greedy"] == 50.0
    assert set(table) >= {"easy/en", "hard/zh", "zh", "en", "kind:expression"}
    markdown = format_table({"reasoning": {"fp32": table}})
    assert "| fp32 | hard | 1 | 0.0 | 0.0 | 100.0 | 0.0 | 100.0 | 0.0 |" in markdown


def test_accuracy_is_split_by_held_out_wording():
    held_out = EXPRESSION["zh"][-1].format(e="3+4")  # the template train never uses
    results = [
        problem_result("easy", "zh", "7", "7", ["7"], user=held_out),
        problem_result("easy", "zh", "7", "8", ["8"], user=EXPRESSION["zh"][0].format(e="3+4")),
        problem_result("easy", "zh", "7", "8", ["8"], user=EXPRESSION["zh"][1].format(e="3+4")),
    ]
    table = accuracy_table(results, ks=(1,))
    assert (table["wording:held-out"]["n"], table["wording:held-out"]["greedy"]) == (1, 100.0)
    assert (table["wording:train"]["n"], table["wording:train"]["greedy"]) == (2, 0.0)
    assert table["easy/wording:train"]["n"] == 2 and "hard/wording:train" not in table


def test_checked_vote_ranks_chains_whose_steps_hold_first():
    right, slip = "3+4=7. 12*7=84. 84-10=74.", "3+4=7. 12*7=84. 84-10=75."
    # Five wrong "1" chains each with a false step outvote four right ones in the plain vote, not when checked.
    result = problem_result("hard", "en", "74", "1", ["1"] * 5 + ["74"] * 4, [slip] * 5 + [right] * 4)
    table = accuracy_table([result], ks=(9,))
    assert (table["all"]["sc@9"], table["all"]["checked@9"]) == (0.0, 100.0)


def test_answer_is_read_after_the_closing_think_token(tiny_tokenizer_path):
    tok = Tokenizer(tiny_tokenizer_path)
    ids = tok.encode("\n3+4=7. 12*7=84. 84-10=74.\n") + [tok.think_end_id] + tok.encode("\nThe answer is 74.")
    text, key = answer_key(tok, ids)
    assert "</think>" in text and key == "74"
    unfinished = tok.encode("\n3+4=7. 12*7=84. The answer is 84")  # cut off before </think>: no answer
    assert answer_key(tok, unfinished)[1] == ""


def test_chains_never_ask_for_more_than_the_context_leaves():
    # A long prompt and a budget past the context: each chain gets what the context leaves after its prompt
    # (the engine would refuse a request that cannot fit, and the eval would stop).
    tokenizer = Tokenizer("checkpoints/tinyllm-default/tokenizer.model")
    torch.manual_seed(0)
    model = Transformer(
        ModelConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=96,
        )
    ).eval()
    record = {
        "system": "请先推理，再给出最终答案。",
        "user": "计算：" + "+".join(["12"] * 12),
        "answer": "144",
        "stratum": "hard",
        "lang": "zh",
        "kind": "expression",
    }
    prompt = tokenizer.encode_chat(
        [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["user"]}],
        add_generation_prompt=True,
        reasoning=True,
    )
    assert 40 < len(prompt) < 96
    cfg = EvalConfig(ks=(1, 2), max_new_tokens=10_000, max_batch=4)
    [result] = run_problems(model, tokenizer, [record], cfg, progress=False)
    assert result.greedy_text and len(result.sample_texts) == 2  # untrained weights: no end token, so the
    # chains ran to the end of the context, and were not refused for a budget that cannot fit
