"""Reasoning accuracy of a RUNNING server: greedy vs. self-consistency votes, through the OpenAI SDK.

    tinyllm serve --api-keys sk-local &            # the shipped checkpoint by default
    python -m benchmarks.reasoning_eval --url http://127.0.0.1:8000/v1 --api-key sk-local --problems 100

Problems are the held-out test split of ``training.reasoning_data.generate("test", ...)`` (structures and
one phrasing template that training never sees), with their system prompt, as the training eval uses them.
Each problem is asked once per method, every request in reasoning mode:
* ``greedy``: ``self_consistency.samples = 1`` and no temperature (the server decodes greedily);
* ``sc@k``: ``self_consistency.samples = k`` at the server's vote temperature (or ``--temperature``), the
  plain majority vote over the k chains (recomputed here from ``return_chains``);
* ``checked@k``: the server's answer for the same request, its checked vote (``check_steps``: answers of
  chains whose steps all hold and whose numbers all come from the question rank first).
A problem counts as solved when the normalised voted answer equals the record's answer key
(``reasoning.answers.normalize_answer``, the same rule as the vote and the training eval).

Prints Markdown tables: accuracy by stratum (easy/hard) and language, and for each k the distribution of
the agreement (votes for the answer / k) with the accuracy inside each band: a vote that agrees with itself
is right more often, which is what makes agreement useful as a confidence signal.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import openai

from reasoning.answers import normalize_answer
from reasoning.vote import vote
from training.reasoning_data import generate
from training.vote_margin import paired_margin

BANDS = [
    ("0 - <0.4", 0.0, 0.4),
    ("0.4 - <0.6", 0.4, 0.6),
    ("0.6 - <0.8", 0.6, 0.8),
    ("0.8 - <1", 0.8, 1.0),
    ("1 (unanimous)", 1.0, 1.01),
]


@dataclass
class Outcome:
    record: dict[str, Any]
    method: str
    answer: str | None
    agreement: float
    completion_tokens: int
    seconds: float

    @property
    def correct(self) -> bool:
        return self.answer is not None and normalize_answer(self.answer) == self.record["answer"]


def ask(
    client: openai.OpenAI,
    model: str,
    record: dict[str, Any],
    k: int | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int,
) -> list[Outcome]:
    """One request; for k > 1 two outcomes of the same k chains: the plain majority vote (recomputed here
    from the chains) and the server's checked vote (``check_steps``, its default)."""
    messages = [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["user"]}]
    extra: dict[str, Any] = {}
    if k is not None and temperature is not None:
        extra["temperature"] = temperature
    if max_tokens is not None:  # else the server's default: what the context leaves after the prompt
        extra["max_tokens"] = max_tokens
    start = time.perf_counter()
    options = {"samples": k or 1, "return_chains": bool(k)}
    r = client.chat.completions.create(
        model=model, messages=messages, seed=seed, extra_body={"self_consistency": options}, **extra
    )
    seconds, sc = time.perf_counter() - start, r.model_extra["self_consistency"]
    if not k:
        return [Outcome(record, "greedy", sc["answer"], sc["agreement"], r.usage.completion_tokens, seconds)]
    plain = vote([chain["answer"] for chain in sc["chains"]])
    return [
        Outcome(record, f"sc@{k}", plain.answer, plain.agreement, r.usage.completion_tokens, seconds),
        Outcome(record, f"checked@{k}", sc["answer"], sc["agreement"], r.usage.completion_tokens, seconds),
    ]


def pct(items: list[Outcome]) -> str:
    return f"{100.0 * sum(o.correct for o in items) / len(items):.1f}" if items else "-"


def report(outcomes: list[Outcome], methods: list[str], wall: float) -> str:
    by: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        r = o.record
        for group in ("all", r["stratum"], r["lang"], f"{r['stratum']}/{r['lang']}"):
            by[(group, o.method)].append(o)
    groups = [
        g
        for g in ("all", "easy", "hard", "zh", "en", "easy/zh", "easy/en", "hard/zh", "hard/en")
        if (g, methods[0]) in by
    ]
    lines = [
        "## Accuracy (%) on held-out problems",
        "",
        "| group | problems | " + " | ".join(methods) + " |",
        "|---|---:|" + "---:|" * len(methods),
    ]
    for g in groups:
        lines.append(
            f"| {g} | {len(by[(g, methods[0])])} | " + " | ".join(pct(by[(g, m)]) for m in methods) + " |"
        )
    lines += [
        "",
        "## Paired margin over greedy (the same problems: fixed, broken, 95% interval)",
        "",
        "| group | method | margin (points) | fixed | broken | 95% CI |",
        "|---|---|---:|---:|---:|---|",
    ]
    for g in ("all", "easy", "hard"):
        greedy = {id(o.record): o.correct for o in by[(g, methods[0])]}
        for m in methods[1:]:
            items = by[(g, m)]
            if not items:
                continue
            pm = paired_margin([greedy[id(o.record)] for o in items], [o.correct for o in items])
            lines.append(
                f"| {g} | {m} | {pm.margin:+.1f} | {pm.gains} | {pm.losses} | "
                f"{pm.ci95[0]:+.1f} to {pm.ci95[1]:+.1f} |"
            )
    lines += [
        "",
        "| method | answered % | mean agreement | completion tokens / problem | s / problem (concurrent) |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in methods:
        items = by[("all", m)]
        lines.append(
            f"| {m} | {100.0 * sum(o.answer is not None for o in items) / len(items):.1f} | "
            f"{sum(o.agreement for o in items) / len(items):.2f} | "
            f"{sum(o.completion_tokens for o in items) / len(items):.0f} | "
            f"{sum(o.seconds for o in items) / len(items):.2f} |"
        )
    for m in methods[1:]:
        items = by[("all", m)]
        lines += [
            "",
            f"## Agreement distribution, {m}",
            "",
            "| agreement | problems | share % | accuracy % |",
            "|---|---:|---:|---:|",
        ]
        for name, lo, hi in BANDS:
            band = [o for o in items if lo <= o.agreement < hi]
            lines.append(f"| {name} | {len(band)} | {100.0 * len(band) / len(items):.1f} | {pct(band)} |")
    lines += ["", f"wall time: {wall:.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000/v1", help="the server's /v1 base URL")
    parser.add_argument("--api-key", default="sk-local")
    parser.add_argument("--model", default="tinyllm", help="served model name")
    parser.add_argument("--problems", type=int, default=100, help="held-out problems (strata alternate)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the problem set (and of the sampling)")
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 9], help="vote sizes besides greedy")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="per sample (default: what the context leaves; hard chains run to ~490 tokens)",
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="vote temperature (default: server's)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight (the server batches them)"
    )
    parser.add_argument("--out", help="also write every outcome as JSON lines here")
    args = parser.parse_args(argv)

    records = generate("test", args.problems, args.seed)
    client = openai.OpenAI(base_url=args.url, api_key=args.api_key, max_retries=2, timeout=1800)
    methods = ["greedy"] + [f"sc@{k}" for k in args.ks] + [f"checked@{k}" for k in args.ks]
    jobs = [(r, k) for k in [None, *args.ks] for r in records]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        outcomes = [
            o
            for pair in pool.map(
                lambda job: ask(
                    client, args.model, job[0], job[1], args.max_tokens, args.temperature, args.seed
                ),
                jobs,
            )
            for o in pair
        ]
    wall = time.perf_counter() - start
    print(
        f"# Reasoning eval: {args.url}, model {args.model}\n{len(records)} held-out problems "
        f"(training.reasoning_data test split, seed {args.seed}), max_tokens {args.max_tokens} per sample, "
        f"vote temperature {args.temperature if args.temperature is not None else 'server default'}\n"
    )
    print(report(outcomes, methods, wall))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for o in outcomes:
                f.write(
                    json.dumps(
                        {
                            "user": o.record["user"],
                            "gold": o.record["answer"],
                            "method": o.method,
                            "answer": o.answer,
                            "correct": o.correct,
                            "agreement": o.agreement,
                            "stratum": o.record["stratum"],
                            "lang": o.record["lang"],
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )


if __name__ == "__main__":
    main()
