"""Self-consistency cost: wall time of k = 1, 5, 9 samples for the same question, as ratios to k = 1.

    python -m benchmarks.bench_self_consistency [--checkpoint DIR] [--ks 1 5 9] [--new-tokens 128]
    python -m benchmarks.bench_self_consistency --url http://127.0.0.1:8000/v1 --api-key sk-...

The k samples of a reasoning request are ONE engine request with n=k: the prompt is prefilled once, its KV
rows are copied into k slots and the k samples decode together, one batched forward per token. So k=9 costs
one decode step per token like k=1, only with 9 rows (goal: k=9 under 2.5x k=1), against 9x for nine
sequential requests.

Rows (median of ``--repeats`` runs; each sample decodes exactly ``--new-tokens`` tokens, EOS ignored, so
every k pays for k full chains):
* ``engine, n=k``: in-process engine, the reasoning request's shape (one submit with n=k);
* ``engine, k requests``: k separate n=1 requests submitted at once (k prefills, batched decoding);
* ``sequential estimate``: k x the k=1 time, what k one-at-a-time requests cost;
* ``server``: with ``--url``, the same question through a running server's chat completions and
  ``self_consistency.samples = k`` (tokenization, HTTP, parsing and the vote included).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from model.transformer import Transformer

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "tinyllm-default"
QUESTION = "计算：12*(3+4)-10"  # the default --question


def median_time(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Median wall seconds of ``fn`` over ``repeats`` runs, and the tokens one run generated."""
    times, tokens = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), tokens


def load(checkpoint: Path, tmp: str) -> tuple[Transformer, Tokenizer, str]:
    if (checkpoint / "config.json").exists():
        loaded = load_checkpoint(checkpoint)
        return loaded.model, loaded.tokenizer, str(checkpoint)
    from tests.support import make_tokenizer  # a tokenizer for the random model (needs the repo)

    tokenizer_path = make_tokenizer(Path(tmp))
    vocab = Tokenizer(tokenizer_path).vocab_size  # sampled ids must be the tokenizer's
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=vocab)).eval()
    loaded = load_checkpoint(save_checkpoint(Path(tmp) / "ckpt", model, tokenizer_path))
    return (
        loaded.model,
        loaded.tokenizer,
        (f"random weights, default shape but a {vocab}-token vocabulary (no shipped checkpoint yet)"),
    )


def engine_rows(
    model: Transformer, prompt: list[int], ks: list[int], new_tokens: int, repeats: int, max_batch: int
) -> list[tuple[str, int, float, int]]:
    engine = Engine(model, EngineConfig(max_batch=max_batch, max_queue=1024), eos_token_ids=[])
    engine.start()
    params = SamplingParams(temperature=0.7, seed=0, max_tokens=new_tokens, ignore_eos=True)
    rows = []
    try:
        engine.generate(prompt, SamplingParams(temperature=0, max_tokens=4))  # warm-up

        def fork(k: int) -> int:
            return sum(len(r.token_ids) for r in engine.generate(prompt, params, n=k))

        def separate(k: int) -> int:
            handles = [engine.submit(prompt, params) for _ in range(k)]
            return sum(e.token_id is not None for h in handles for e in h.iter_sync())

        for k in ks:
            rows.append(("engine, n=k", k, *median_time(lambda k=k: fork(k), repeats)))
        for k in ks:
            if k > 1:
                rows.append(("engine, k requests", k, *median_time(lambda k=k: separate(k), repeats)))
    finally:
        engine.shutdown()
    return rows


def server_rows(
    url: str, api_key: str, model: str, question: str, ks: list[int], new_tokens: int, repeats: int
) -> list[tuple[str, int, float, int]]:
    import openai  # the official SDK: the same path a client takes

    client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=0, timeout=600)

    def ask(k: int) -> int:
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": question}],
            max_tokens=new_tokens,
            temperature=0.7,
            seed=0,
            extra_body={"self_consistency": {"samples": k}, "ignore_eos": True},
        )
        return r.usage.completion_tokens

    ask(1)  # warm-up
    return [("server", k, *median_time(lambda k=k: ask(k), repeats)) for k in ks]


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
    parser.add_argument(
        "--question",
        default=QUESTION,
        help="the user message (a longer one shows what the shared prefill saves)",
    )
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 9])
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens each sample decodes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quantize", choices=["int8", "none"], default="int8", help="as the server's default"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--url", help="also measure a running server (its /v1 base URL)")
    parser.add_argument("--api-key", default="sk-local")
    parser.add_argument("--model", default="tinyllm", help="served model name (with --url)")
    parser.add_argument("--skip-engine", action="store_true", help="only the server rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ks = sorted(set(args.ks) | {1})

    rows: list[tuple[str, int, float, int]] = []
    header = f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    if not args.skip_engine:
        with tempfile.TemporaryDirectory() as tmp:
            model, tokenizer, source = load(args.checkpoint, tmp)
            params = model.num_parameters()
            model = prepare_for_serving(model, "int8" if args.quantize == "int8" else "fp32")  # as served
            prompt = tokenizer.encode_chat([{"role": "user", "content": args.question}], reasoning=True)
            header += (
                f"\nmodel: {source}, {params / 1e6:.2f}M params, {args.quantize}"
                f"\nprompt: {args.question[:60]!r} in reasoning format ({len(prompt)} tokens)"
            )
            rows += engine_rows(model, prompt, ks, args.new_tokens, args.repeats, max(16, max(ks)))
    if args.url:
        header += f"\nserver: {args.url}"
        rows += server_rows(
            args.url, args.api_key, args.model, args.question, ks, args.new_tokens, args.repeats
        )

    print(
        f"# Self-consistency cost\n{header}\n{args.new_tokens} tokens per sample (EOS ignored), temperature 0.7, "
        f"median of {args.repeats}\n"
    )
    base = {mode: t for mode, k, t, _ in rows if k == 1}
    base["engine, k requests"] = base.get("engine, n=k", 0.0)
    print(
        "| mode | k | wall s | x k=1 | tokens | tok/s | sequential estimate s (k x k=1) | speed-up vs sequential |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, k, seconds, tokens in rows:
        one = base[mode]
        print(
            f"| {mode} | {k} | {seconds:.3f} | {seconds / one:.2f} | {tokens} | {tokens / seconds:.0f} | "
            f"{k * one:.3f} | {k * one / seconds:.2f} |"
        )
    for mode in ("engine, n=k", "server"):
        nine = [t for m, k, t, _ in rows if m == mode and k == max(ks)]
        if nine and mode in base:
            ratio = nine[0] / base[mode]
            print(
                f"\n{mode}: k={max(ks)} costs {ratio:.2f}x k=1 (goal: < 2.5x) -> "
                f"{'met' if ratio < 2.5 else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
