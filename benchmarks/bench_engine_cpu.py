"""The engine's CPU cost per generated token, in-process: a comparison that a shared machine barely moves.

    python -m benchmarks.bench_engine_cpu [--checkpoint DIR]

For fp32 and int8 serving copies, c = 1 and 32, greedy and sampled (temperature 0.8, top_p 0.95): c
requests submitted at once, each decoding a fixed number of tokens (EOS ignored), one torch thread;
reported as tokens per CPU-second of the whole process (best of 3 at c=1). Wall-clock throughput on a busy
2-core VM swings by several times; CPU time does not (much).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.sampling import SamplingParams

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"
MODES = {"greedy": {"temperature": 0.0}, "sampled": {"temperature": 0.8, "top_p": 0.95}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    loaded = load_checkpoint(args.checkpoint)
    prompt = loaded.tokenizer.encode("Once upon a time, in a small village by the sea")
    print("| precision | c | mode | tokens per CPU-second |\n|---|---:|---|---:|")
    for precision in ("fp32", "int8"):
        served = prepare_for_serving(loaded.model, precision)
        for c in (1, 32):
            for mode, values in MODES.items():
                engine = Engine(served, EngineConfig(max_batch=32), eos_token_ids=[])
                engine.start()
                try:
                    engine.generate(prompt, SamplingParams(max_tokens=4, **values))
                    new_tokens, repeats = (96, 3) if c == 1 else (48, 1)
                    best = float("inf")
                    for _ in range(repeats):
                        start = time.process_time()
                        handles = [
                            engine.submit(
                                prompt,
                                SamplingParams(max_tokens=new_tokens, ignore_eos=True, seed=i, **values),
                            )
                            for i in range(c)
                        ]
                        count = sum(e.token_id is not None for h in handles for e in h.iter_sync())
                        best = min(best, (time.process_time() - start) / count)
                finally:
                    engine.shutdown()
                print(f"| {precision} | {c} | {mode} | {1 / best:.0f} |", flush=True)


if __name__ == "__main__":
    main()
