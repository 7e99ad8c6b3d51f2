"""The sampler alone: CPU time of one batched draw on the shipped model's real logits.

    python -m benchmarks.bench_sampler [--checkpoint DIR] [--rows 32]

Logits: the model's last-token logits for four prompts (English, Chinese, arithmetic), repeated to
``--rows``; each row's prompt is 300 tokens long. Per parameter set, CPU microseconds per ``sample_next`` call (thread time, one torch thread,
best of 5 x 50): robust to a shared machine.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.sampling import SamplingParams, SequenceSamplingState, sample_next

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"
PROMPTS = ["Once upon a time", "计算：12*(3+4)-10", "The quick brown fox", "一个盒子里有3个红球"]
SETTINGS = {
    "greedy": {"temperature": 0.0},
    "temperature 1.0": {"temperature": 1.0},
    "temperature 0.8, top_p 0.95": {"temperature": 0.8, "top_p": 0.95},
    "temperature 0.7, top_k 40": {"temperature": 0.7, "top_k": 40},
    "temperature 1.0, min_p 0.05": {"temperature": 1.0, "min_p": 0.05},
    "temperature 0.8, presence 0.5, bias": {
        "temperature": 0.8,
        "presence_penalty": 0.5,
        "logit_bias": {5: 2.0},
    },
    "temperature 0.8, repetition 1.1, frequency 0.2": {
        "temperature": 0.8,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.2,
    },
}
PROMPT_IDS = list(range(1, 301))  # a 300-token prompt: the repetition penalty covers prompt and output


def cpu_us(fn, calls: int = 50, repeats: int = 5) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.thread_time() - start) / calls * 1e6)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--rows", type=int, default=32)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    loaded = load_checkpoint(args.checkpoint)
    with torch.inference_mode():
        last = [loaded.model(torch.tensor([loaded.tokenizer.encode(p)]))[0, -1] for p in PROMPTS]
    logits = torch.stack([last[i % len(last)] for i in range(args.rows)])
    print(f"# sampler: {args.rows} rows x {logits.shape[1]} vocabulary, CPU us per call, one thread\n")
    print("| parameters | us |\n|---|---:|")
    for name, values in SETTINGS.items():
        states = [
            SequenceSamplingState.create(SamplingParams(seed=i, **values), PROMPT_IDS)
            for i in range(args.rows)
        ]
        print(f"| {name} | {cpu_us(lambda states=states: sample_next(logits, states)):.0f} |", flush=True)


if __name__ == "__main__":
    main()
