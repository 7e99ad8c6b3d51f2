"""Constrained vs unconstrained decoding throughput through the engine, at 1 and 32 concurrent sequences.

Each sequence writes ``--tokens`` tokens (stop tokens suppressed where the output is free; under a grammar,
a sequence ends when its document is complete, so throughput is counted in generated tokens per second).
Constrained rows follow a JSON schema with long strings and arrays, so the grammar is in play at every step.
Throughput on a shared machine is noisy, so the table also gives the share of the constrained runs' step
time spent on the grammar (masks filled and applied, tokens accepted), measured inside the same steps.

    python -m benchmarks.bench_constrained [--checkpoint checkpoints/tinyllm-default] [--tokens 96] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import torch

import model.sampling
from model.checkpoint import load_checkpoint
from model.constraint import GrammarCompiler, GrammarConstraint
from model.engine import Engine, EngineConfig
from model.sampling import SamplingParams

_grammar_seconds = [0.0]


def _timed(function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _grammar_seconds[0] += time.perf_counter() - started

    return wrapper


# The grammar's share of a step, measured where the engine spends it (the mask filled, the token accepted).
model.sampling.constraint_mask = _timed(model.sampling.constraint_mask)
GrammarConstraint.accept = _timed(GrammarConstraint.accept)

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 200},
        "items": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20},
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
    },
    "required": ["title", "items", "score"],
    "additionalProperties": False,
}


def run(engine: Engine, prompt: list[int], concurrency: int, tokens: int, compiler: GrammarCompiler | None):
    compiled = compiler.json_schema(SCHEMA) if compiler else None
    handles = []
    started = time.perf_counter()
    for i in range(concurrency):
        constraint = compiler.constraint(compiled) if compiler else None
        params = SamplingParams(
            temperature=0.8, max_tokens=tokens, seed=i, ignore_eos=constraint is None, constraint=constraint
        )
        handles.append(engine.submit(prompt, params))
    generated = 0
    for handle in handles:
        for event in handle.iter_sync():
            generated += event.token_id is not None
    return generated, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/tinyllm-default")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint)
    tokenizer = loaded.tokenizer
    engine = Engine(loaded.model, EngineConfig(max_batch=32), eos_token_ids=tokenizer.stop_token_ids)
    step_seconds = [0.0]
    engine.add_step_listener(lambda batch, seconds: step_seconds.__setitem__(0, step_seconds[0] + seconds))
    engine.start()
    compiler = GrammarCompiler(tokenizer, loaded.config.vocab_size)
    prompt = tokenizer.encode_chat([{"role": "user", "content": "Describe a book as JSON."}])
    try:
        run(engine, prompt, 4, 8, compiler)  # warm-up: threads, allocator, the schema's compiled masks
        print(
            "| concurrency | unconstrained (tok/s) | JSON schema (tok/s) | ratio | grammar share of step time |"
        )
        print("|---:|---:|---:|---:|---:|")
        for concurrency in (1, 32):
            # Interleaved, best of --repeat: on a shared machine the slowest runs measure the neighbours.
            free = constrained = 0.0
            grammar = steps = 0.0
            for _ in range(args.repeat):
                free_tokens, free_s = run(engine, prompt, concurrency, args.tokens, None)
                _grammar_seconds[0] = step_seconds[0] = 0.0
                json_tokens, json_s = run(engine, prompt, concurrency, args.tokens, compiler)
                grammar, steps = grammar + _grammar_seconds[0], steps + step_seconds[0]
                free, constrained = max(free, free_tokens / free_s), max(constrained, json_tokens / json_s)
            print(
                f"| {concurrency} | {free:.0f} | {constrained:.0f} | {constrained / free:.2f} "
                f"| {100 * grammar / steps:.1f}% |",
                flush=True,
            )
    finally:
        engine.shutdown()


if __name__ == "__main__":
    main()
