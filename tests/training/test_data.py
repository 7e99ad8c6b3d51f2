"""Data step: JSONL formats, cleaning report, shards and the SFT loss mask as the trainer sees it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.tokenizer import Tokenizer
from training.batches import IGNORE, PretrainBatches, SFTBatches
from training.cleaning import CleaningConfig, TextCleaner, normalize_unicode
from training.data import prepare
from training.formats import FormatError, to_conversation

SIMPLE = {"system": "你是助手", "user": "你好", "assistant": "你好！有什么可以帮你？"}
CHAT = {
    "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
}
ALPACA = {"instruction": "Translate to English", "input": "你好", "output": "hello"}
REASONING = {
    "system": "你是严谨的中文推理助手",
    "user": "计算：12*(3+4)-10",
    "cot": "先算括号：3+4=7。12*7=84。84-10=74。",
    "final": "答案：74。",
    "answer": "74",
    "lang": "zh",
}


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_path):
    return Tokenizer(tiny_tokenizer_path)


def test_each_format_becomes_the_same_conversation_shape():
    simple = to_conversation(SIMPLE)
    assert simple.fmt == "simple" and [m["role"] for m in simple.messages] == ["system", "user", "assistant"]
    chat = to_conversation(CHAT)
    assert chat.fmt == "chat" and chat.messages[0] == {"role": "system", "content": "be brief"}
    alpaca = to_conversation(ALPACA)
    assert alpaca.fmt == "alpaca"
    assert alpaca.messages == [
        {"role": "user", "content": "Translate to English\n\n你好"},
        {"role": "assistant", "content": "hello"},
    ]
    reasoning = to_conversation(REASONING)
    assert reasoning.fmt == "reasoning" and reasoning.has_reasoning
    assert reasoning.messages[-1] == {
        "role": "assistant",
        "content": "答案：74。",
        "reasoning": REASONING["cot"],
    }
    with pytest.raises(FormatError) as e:
        to_conversation({"prompt": "x", "completion": "y"})
    assert e.value.reason == "bad_format"
    with pytest.raises(FormatError) as e:
        to_conversation({"messages": [{"role": "user", "content": "only a question"}]})
    assert e.value.reason == "no_assistant_turn"


def test_jsonl_ingestion_of_all_four_formats_with_report(tmp_path, tiny_tokenizer_path):
    src = _jsonl(
        tmp_path / "mixed.jsonl",
        [
            SIMPLE,
            CHAT,
            ALPACA,
            REASONING,
            SIMPLE,  # exact duplicate
            "{not json",
            {"instruction": "no output field"},
            {"messages": [{"role": "wizard", "content": "?"}, {"role": "assistant", "content": "!"}]},
            {"user": "q", "assistant": ""},  # empty answer
        ],
    )
    result = prepare("sft", [src], tiny_tokenizer_path, tmp_path / "out", val_fraction=0.0, workers=1)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["formats"] == {"simple": 1, "chat": 1, "alpaca": 1, "reasoning": 1}
    assert meta["splits"]["train"]["documents"] == 4 and meta["splits"]["val"]["documents"] == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dropped"] == {
        "bad_role": 1,
        "duplicate": 1,
        "empty": 1,
        "invalid_json": 1,
        "missing_field": 1,
    }
    assert report["seen"] == 9 and report["kept"] == 4
    assert "duplicate" in result.report.summary()


def test_cleaning_repairs_and_drops_with_reasons(tmp_path, tiny_tokenizer_path):
    raw = tmp_path / "raw.txt"
    raw.write_bytes(
        "\x1b[32m《静夜思》\x1b[m\n床前明月光，疑是地上霜。\n\n"  # colour codes stripped
        "Ｆｕｌｌ－ｗｉｄｔｈ １２３ stays readable，punctuation kept？\n\n"
        "bell\x07 and zero\u200bwidth removed\n\n"
        "床前明月光，疑是地上霜。\n\n"  # not a duplicate of the first (that one has a title)
        "duplicate paragraph\n\nduplicate paragraph\n\n"
        "ok\n\n"  # too short
        "broken \ufffd text\n\n".encode()
        + b"bad \xff\xfe bytes\n\n"
        + b"x" * 500
        + b"\n"
    )
    result = prepare(
        "pretrain",
        [raw],
        tiny_tokenizer_path,
        tmp_path / "out",
        CleaningConfig(min_chars=3, max_chars=400),
        val_fraction=0.0,
        workers=1,
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dropped"] == {
        "duplicate": 1,
        "invalid_utf8": 1,
        "replacement_char": 1,
        "too_long": 1,
        "too_short": 1,
    }
    assert report["kept"] == 5
    assert report["repaired"]["ansi_escapes"] == 1 and report["repaired"]["control_chars"] == 1
    # what was kept, decoded back from the shards
    tok = Tokenizer(tiny_tokenizer_path)
    offsets = np.load(tmp_path / "out" / "train" / "offsets.npy")
    tokens = np.fromfile(tmp_path / "out" / "train" / "tokens.bin", dtype=np.uint16)
    docs = [tok.decode(tokens[a:b].tolist()) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    assert docs[0] == "《静夜思》\n床前明月光，疑是地上霜。"
    assert docs[1] == "Full-width 123 stays readable，punctuation kept？"
    assert docs[2] == "bell and zerowidth removed"
    assert all(tokens[b - 1] == tok.eos_id for b in offsets[1:])
    assert result.meta["splits"]["train"]["documents"] == 5


def test_normalisation_keeps_cjk_punctuation_but_folds_digits():
    assert normalize_unicode("１２＋３＝？（ｘ）…ﬁ") == "12+3=？（x）…fi"
    assert normalize_unicode("１２，", "nfkc") == "12,"
    cleaner = TextCleaner(CleaningConfig(min_chars=1))
    assert cleaner("a\r\nb  \n\n\n\nc") == "a\nb\n\nc"
    assert cleaner("a\r\nb  \n\n\n\nc") is None and cleaner.report.dropped["duplicate"] == 1


def _one_example_batch(
    tmp_path: Path, name: str, record: dict, tokenizer_path
) -> tuple[list[int], list[int], int]:
    src = _jsonl(tmp_path / f"{name}.jsonl", [record])
    prepare("sft", [src], tokenizer_path, tmp_path / name, val_fraction=0.0, workers=1)
    data = SFTBatches(tmp_path / name / "train", seq_len=256, batch_size=1, seed=0)
    inputs, targets = data.batch(0)
    n = int(data.lengths[data._examples(0)[0]]) - 1  # the example's own tokens; the rest is padding
    assert inputs.shape[1] % 16 == 0 and all(t == IGNORE for t in targets[0, n:].tolist())
    return inputs[0, :n].tolist(), targets[0, :n].tolist(), data.target_count(0)


def test_sft_loss_mask_counts_only_assistant_tokens(tmp_path, tiny_tokenizer_path, tok):
    """From JSONL to the batch the trainer takes its loss on: the targets are exactly the assistant tokens
    (content and the closing <|end|>) of the conversation as the chat template renders it."""
    inputs, targets, count = _one_example_batch(tmp_path, "chat", CHAT, tiny_tokenizer_path)
    rendered = tok.encode_chat(to_conversation(CHAT).messages, add_generation_prompt=False)
    assert inputs == rendered[:-1]  # the whole template, in order (the last token is never an input)
    learned = [t for t in targets if t != IGNORE]
    assert count == len(learned)
    assert tok.decode(learned, skip_special=False) == "hello<|end|>4<|end|>"
    # each learned token sits where the rendered conversation has it: target i is token i + 1
    assert all(t == IGNORE or t == rendered[i + 1] for i, t in enumerate(targets))
    for piece in ("<|system|>", "<|user|>", "<|assistant|>"):
        assert tok.token_id(piece) not in learned
    first = targets.index(learned[0])
    assert tok.decode(rendered[: first + 1], skip_special=False).endswith("<|user|>hi<|end|>\n<|assistant|>")


def test_reasoning_mask_starts_after_the_inference_prompt(tmp_path, tiny_tokenizer_path, tok):
    inputs, targets, count = _one_example_batch(tmp_path, "reasoning", REASONING, tiny_tokenizer_path)
    prompt = tok.encode_chat(
        [{"role": "system", "content": REASONING["system"]}, {"role": "user", "content": REASONING["user"]}],
        reasoning=True,
    )
    assert inputs[: len(prompt)] == prompt  # trained on exactly the prompt the eval and server send
    assert all(t == IGNORE for t in targets[: len(prompt) - 1])
    learned = [t for t in targets if t != IGNORE]
    assert count == len(learned) and targets[len(prompt) - 1] == learned[0]
    assert (
        tok.decode(learned, skip_special=False)
        == f"\n{REASONING['cot']}\n</think>\n{REASONING['final']}<|end|>"
    )


def test_pretrain_batches_are_windows_of_the_stream(tmp_path, tiny_tokenizer_path):
    text = tmp_path / "t.txt"
    text.write_text(
        "\n\n".join(f"document number {i} about apples and trains {i * 7}" for i in range(200)),
        encoding="utf-8",
    )
    prepare("pretrain", [text], tiny_tokenizer_path, tmp_path / "out", val_fraction=0.1, workers=2)
    data = PretrainBatches(tmp_path / "out" / "train", seq_len=32, batch_size=4, seed=3)
    x, y = data.batch(5)
    assert x.shape == y.shape == (4, 32)
    assert (x[:, 1:] == y[:, :-1]).all()  # targets are the inputs shifted by one
    again = PretrainBatches(tmp_path / "out" / "train", seq_len=32, batch_size=4, seed=3).batch(5)
    assert (again[0] == x).all()  # a batch is a pure function of (data, seed, index)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["splits"]["val"]["documents"] > 0 and meta["splits"]["train"]["documents"] > 150


def test_text_jsonl_documents_for_pretraining(tmp_path, tiny_tokenizer_path):
    src = _jsonl(
        tmp_path / "docs.jsonl",
        [
            {"text": "first document\n\nwith a blank line inside"},
            {"text": "second document"},
            "{broken",
            {"content": "wrong key"},
        ],
    )
    result = prepare("pretrain", [src], tiny_tokenizer_path, tmp_path / "out", val_fraction=0.0, workers=1)
    assert result.meta["splits"]["train"]["documents"] == 2  # the blank line does not split a JSONL document
    assert result.report.to_dict()["dropped"] == {"invalid_json": 1, "missing_field": 1}
