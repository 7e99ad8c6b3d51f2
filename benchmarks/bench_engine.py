"""Engine benchmark: decode throughput and time to first token vs. two baselines, fp32 and int8.

    python -m benchmarks.bench_engine [--checkpoint DIR] [--concurrency 1 8 32] [--new-tokens 64]

Rows, all on the same weights and the same torch thread count, in one run:
* ``naive``: the design notes' loop — recompute the whole sequence for every token, one request at a time;
* ``hf-generate``: ``transformers`` ``LlamaForCausalLM.generate`` with its KV cache, all requests in one batch;
* ``engine``: our continuous-batching engine on the copy the server runs (``model.inference.prepare_for_serving``:
  fused projections, fp32 weights stored transposed / int8), all requests submitted at once.
Every request decodes exactly ``--new-tokens`` tokens (EOS ignored) from a ``--prompt-tokens`` prompt.
Ratios are against ``hf-generate`` at the same concurrency and precision; hf-generate and the engine run
``--repeats`` times, alternating, and their medians are reported. The last table is the quality
cost of int8: top-1 agreement with fp32 and perplexity on held-out text, both measured here.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from model.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.quantization import quantize_int8
from model.sampling import SamplingParams
from model.transformer import Transformer

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"


@dataclass
class Row:
    method: str
    precision: str
    concurrency: int
    tokens_per_s: float
    ttft_s: float


def make_prompts(vocab: int, count: int, length: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(10, vocab, (length,), generator=g).tolist() for _ in range(count)]


def bench_naive(model, prompts: list[list[int]], new_tokens: int) -> tuple[float, float]:
    ttfts, generated = [], 0
    start = time.perf_counter()
    with torch.inference_mode():
        for prompt in prompts:
            ids = list(prompt)
            for step in range(new_tokens):
                ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
                if step == 0:
                    ttfts.append(time.perf_counter() - start)
                generated += 1
    return generated / (time.perf_counter() - start), statistics.median(ttfts)


def bench_hf(hf_model, prompts: list[list[int]], new_tokens: int) -> tuple[float, float]:
    ids = torch.tensor(prompts)  # equal lengths: no padding needed
    attention = torch.ones_like(ids)
    kwargs = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.inference_mode():
        t0 = time.perf_counter()
        hf_model.generate(ids, attention_mask=attention, max_new_tokens=1, min_new_tokens=1, **kwargs)
        ttft = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = hf_model.generate(
            ids, attention_mask=attention, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs
        )
        elapsed = time.perf_counter() - t0
    return (out.shape[1] - ids.shape[1]) * len(prompts) / elapsed, ttft


def bench_engine(model, prompts: list[list[int]], new_tokens: int) -> tuple[float, float]:
    engine = Engine(model, EngineConfig(max_batch=max(32, len(prompts)), max_queue=1024), eos_token_ids=[])
    engine.start()
    try:
        params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
        engine.generate(prompts[0], SamplingParams(temperature=0, max_tokens=2))  # warm-up
        start = time.perf_counter()
        handles = [engine.submit(p, params) for p in prompts]
        generated = sum(e.token_id is not None for h in handles for e in h.iter_sync())
        elapsed = time.perf_counter() - start
        # TTFT: a fresh wave of the same requests, timing only the first token of each (max_tokens=1).
        start = time.perf_counter()
        handles = [engine.submit(p, SamplingParams(temperature=0, max_tokens=1)) for p in prompts]
        ttfts = []
        for handle in handles:
            for _ in handle.iter_sync():
                pass
            ttfts.append(time.perf_counter() - start)
        return generated / elapsed, statistics.median(ttfts)
    finally:
        engine.shutdown()


def int8_quality(fp32, int8, vocab: int, loaded: LoadedCheckpoint | None) -> tuple[float, float, float]:
    if loaded is not None:
        text = (
            "我们一起学习计算。计算：12*(3+4)-10。The quick brown fox jumps over the lazy dog. "
            "一个盒子里有3个红球和2个蓝球，随机取一个红球的概率是多少？"
        ) * 3
        ids = torch.tensor([loaded.tokenizer.encode(text)[: fp32.config.max_position_embeddings]])
    else:
        ids = torch.randint(10, vocab, (4, 128), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = fp32(ids)[:, :-1], int8(ids)[:, :-1]
    target = ids[:, 1:]

    def ppl(logits: torch.Tensor) -> float:
        return float(torch.exp(torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())))

    agreement = float((a.argmax(-1) == b.argmax(-1)).float().mean())
    return agreement, ppl(a), ppl(b)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_CHECKPOINT,
        help="checkpoint directory (default: the shipped one; random weights of the default shape "
        "if it does not exist)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow naive baseline")
    parser.add_argument(
        "--repeats", type=int, default=9, help="alternating hf/engine runs; medians are reported"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from transformers import LlamaForCausalLM  # benchmark-only dependency (the dev extra)

    loaded: LoadedCheckpoint | None = None
    tmp = tempfile.TemporaryDirectory()
    if (args.checkpoint / "config.json").exists():
        loaded = load_checkpoint(args.checkpoint)
        fp32, directory, source = loaded.model, args.checkpoint, str(args.checkpoint)
    else:
        torch.manual_seed(0)
        fp32 = Transformer(ModelConfig()).eval()
        from tests.support import make_tokenizer  # a tokenizer is only needed to write the directory

        directory = save_checkpoint(Path(tmp.name) / "ckpt", fp32, make_tokenizer(Path(tmp.name)))
        source = "random weights, default shape"
    int8 = prepare_for_serving(fp32, "int8")
    served = {"fp32": prepare_for_serving(fp32, "fp32"), "int8": int8}
    hf = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    hf_int8 = quantize_int8(hf)
    config = fp32.config
    print(
        f"# TinyLLM engine benchmark\nmachine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}\nmodel: {source}, "
        f"{fp32.num_parameters() / 1e6:.2f}M params, {config.num_hidden_layers} layers, hidden {config.hidden_size}"
        f"\nprompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens per request, greedy; "
        f"hf-generate and engine: median of {args.repeats} alternating runs\n"
    )

    rows: list[Row] = []
    pair_ratios: dict[tuple[str, int], list[float]] = {}
    for precision, ours, theirs in (("fp32", fp32, hf), ("int8", int8, hf_int8)):
        for c in args.concurrency:
            prompts = make_prompts(config.vocab_size, c, args.prompt_tokens)
            if not args.skip_naive:  # once: it is 20-30x slower, no repeat changes that
                rows.append(Row("naive", precision, c, *bench_naive(ours, prompts, args.new_tokens)))
            # hf and engine alternate, --repeats times, and report medians: a shared VM's speed drifts by
            # tens of percent within minutes, so back-to-back pairs are the fair comparison.
            hf_runs, engine_runs = [], []
            for _ in range(args.repeats):
                hf_runs.append(bench_hf(theirs, prompts, args.new_tokens))
                engine_runs.append(bench_engine(served[precision], prompts, args.new_tokens))
            for method, runs in (("hf-generate", hf_runs), ("engine", engine_runs)):
                rows.append(
                    Row(
                        method,
                        precision,
                        c,
                        statistics.median(r[0] for r in runs),
                        statistics.median(r[1] for r in runs),
                    )
                )
            # Each engine run against the hf run just before it: how consistent the lead is, run by run.
            pair_ratios[(precision, c)] = sorted(
                e[0] / h[0] for h, e in zip(hf_runs, engine_runs, strict=True)
            )
            for row in rows[-3 if not args.skip_naive else -2 :]:
                print(
                    f"  measured {row.method:12s} {row.precision} c={row.concurrency}: "
                    f"{row.tokens_per_s:8.1f} tok/s",
                    flush=True,
                )

    baseline = {(r.precision, r.concurrency): r for r in rows if r.method == "hf-generate"}
    print("\n| method | precision | concurrency | decode tok/s | x hf-generate | TTFT p50 ms | TTFT x hf |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        b = baseline[(r.precision, r.concurrency)]
        print(
            f"| {r.method} | {r.precision} | {r.concurrency} | {r.tokens_per_s:.1f} | "
            f"{r.tokens_per_s / b.tokens_per_s:.2f} | {r.ttft_s * 1000:.1f} | {r.ttft_s / b.ttft_s:.2f} |"
        )
    print(
        "\n| precision | concurrency | engine / hf-generate tok/s, per alternating pair (sorted) |\n|---|---:|---|"
    )
    for (precision, c), ratios in pair_ratios.items():
        print(f"| {precision} | {c} | {' '.join(f'{r:.2f}' for r in ratios)} |")
    engine_fp32 = {r.concurrency: r for r in rows if r.method == "engine" and r.precision == "fp32"}
    engine_int8 = {r.concurrency: r for r in rows if r.method == "engine" and r.precision == "int8"}
    print("\n| concurrency | engine int8 / fp32 tok/s |\n|---:|---:|")
    for c in args.concurrency:
        print(f"| {c} | {engine_int8[c].tokens_per_s / engine_fp32[c].tokens_per_s:.2f} |")
    agreement, ppl32, ppl8 = int8_quality(fp32, int8, config.vocab_size, loaded)
    print("\n| int8 quality | value |\n|---|---:|")
    print(
        f"| top-1 agreement with fp32 | {agreement:.3f} |\n| perplexity fp32 | {ppl32:.2f} |\n"
        f"| perplexity int8 | {ppl8:.2f} |\n| perplexity ratio int8/fp32 | {ppl8 / ppl32:.3f} |"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
