"""Grammar constraints: whatever tokens are drawn among the allowed ones, the text completes a valid
document, with a SentencePiece vocabulary and a byte-level BPE (``tokenizer.json`` kind) alike; the sampler
applies the mask, and the engine gives each of n sequences its own grammar state."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from model.checkpoint import load_checkpoint
from model.constraint import GrammarCompiler, GrammarError
from model.engine import Engine, EngineConfig
from model.sampling import SamplingParams, SequenceSamplingState, TokenConstraint, sample_next
from model.tokenizer import Tokenizer
from tests.support import corpus_lines

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10},
        "n": {"type": "integer", "minimum": -5, "maximum": 500},
        "kind": {"enum": ["a", "b c", "名字"]},
        "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3},
    },
    "required": ["name", "n", "kind"],
    "additionalProperties": False,
}


def _byte_of_char() -> dict[str, int]:
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {chr(b): b for b in printable} | {chr(256 + i): b for i, b in enumerate(others)}


_BYTE_OF = _byte_of_char()


class ByteLevelVocabulary:
    """A byte-level BPE built with `tokenizers` (as a ``tokenizer.json`` holds), seen as grammars see one."""

    def __init__(self) -> None:
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=800,
            special_tokens=["<|endoftext|>", "<|im_start|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        hf.train_from_iterator(corpus_lines(400) + ['{"name": "x", "n": 1}'] * 20, trainer)
        self.hf = hf
        self.vocab_size = hf.get_vocab_size()
        self.special_ids = {0, 1}
        self.stop_token_ids = [0]

    def token_bytes(self, token_id: int) -> bytes:
        """A byte-level piece is one printable character per byte (GPT-2's table): map each back."""
        return bytes(_BYTE_OF[c] for c in self.hf.id_to_token(token_id))

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids)


@pytest.fixture(scope="module")
def sentencepiece(tiny_tokenizer_path) -> Tokenizer:
    return Tokenizer(tiny_tokenizer_path)


def walk(constraint: TokenConstraint, vocab_size: int, stop_ids: list[int], seed: int) -> list[int]:
    """Draw uniformly among the allowed tokens until only a stop token may come."""
    rng = random.Random(seed)
    out: list[int] = []
    for _ in range(400):
        mask = torch.zeros(vocab_size, dtype=torch.bool)
        constraint.fill_mask(mask)
        allowed = mask.nonzero().flatten().tolist()
        if constraint.is_done():
            assert set(allowed) <= set(stop_ids)
            return out
        token = rng.choice([t for t in allowed if t not in stop_ids] or allowed)
        constraint.accept(token)
        out.append(token)
    raise AssertionError("the grammar never completed")


def test_sentencepiece_walks_validate(sentencepiece: Tokenizer):
    compiler = GrammarCompiler(sentencepiece)
    compiled = compiler.json_schema(SCHEMA)
    for seed in range(6):
        ids = walk(
            compiler.constraint(compiled), sentencepiece.vocab_size, sentencepiece.stop_token_ids, seed
        )
        assert not set(ids) & sentencepiece.special_ids
        jsonschema.validate(json.loads(sentencepiece.decode(ids)), SCHEMA)


def test_byte_level_bpe_walks_validate():
    vocabulary = ByteLevelVocabulary()
    compiler = GrammarCompiler(vocabulary)
    compiled = compiler.json_schema(SCHEMA)
    for seed in range(6):
        ids = walk(compiler.constraint(compiled), vocabulary.vocab_size, vocabulary.stop_token_ids, seed)
        assert not set(ids) & vocabulary.special_ids
        jsonschema.validate(json.loads(vocabulary.decode(ids)), SCHEMA)


def test_a_schema_the_engine_cannot_compile_is_a_grammar_error(sentencepiece: Tokenizer):
    with pytest.raises(GrammarError):
        GrammarCompiler(sentencepiece).json_schema({"type": "string", "pattern": "(?<=a)b"})


def test_a_refused_token_ends_the_sequence_instead_of_failing(sentencepiece: Tokenizer):
    compiler = GrammarCompiler(sentencepiece)
    constraint = compiler.constraint(compiler.json_schema(SCHEMA))
    constraint.accept(sentencepiece.encode("x")[0])  # JSON cannot start with x
    mask = torch.zeros(sentencepiece.vocab_size, dtype=torch.bool)
    constraint.fill_mask(mask)
    assert constraint.is_done() and mask.nonzero().flatten().tolist() == sentencepiece.stop_token_ids


def test_the_sampler_only_draws_allowed_tokens_and_forks_per_sequence(sentencepiece: Tokenizer):
    compiler = GrammarCompiler(sentencepiece)
    params = SamplingParams(temperature=1.0, constraint=compiler.constraint(compiler.json_schema(SCHEMA)))
    states = [SequenceSamplingState.create(params, [1], seed_offset=i) for i in range(3)]
    assert len({id(s.params.constraint) for s in states}) == 3  # each sequence its own grammar state
    generated: list[list[int]] = [[] for _ in states]
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        live = [i for i, s in enumerate(states) if not s.params.constraint.is_done()]
        if not live:
            break
        logits = torch.randn(len(live), sentencepiece.vocab_size, generator=g) * 5
        for i, token in zip(live, sample_next(logits, [states[i] for i in live]), strict=True):
            generated[i].append(token.token_id)
    for ids in generated:
        jsonschema.validate(json.loads(sentencepiece.decode(ids)), SCHEMA)


def test_engine_generates_valid_json_for_each_of_n(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    tokenizer = loaded.tokenizer
    engine = Engine(loaded.model, EngineConfig(max_batch=4), eos_token_ids=tokenizer.stop_token_ids)
    engine.start()
    try:
        compiler = GrammarCompiler(tokenizer, loaded.config.vocab_size)
        constraint = compiler.constraint(compiler.json_schema(SCHEMA))
        params = SamplingParams(temperature=0.8, max_tokens=200, seed=3, constraint=constraint)
        results = engine.generate(tokenizer.encode("JSON:"), params, n=3)
    finally:
        engine.shutdown()
    for result in results:
        assert result.finish_reason == "stop"
        jsonschema.validate(json.loads(tokenizer.decode(result.token_ids)), SCHEMA)
