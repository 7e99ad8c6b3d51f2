"""Accuracy on the independent held-out set (``evals/heldout-v1.jsonl``) through a RUNNING server.

    python -m server --api-keys sk-local --port 8000 &        # or any OpenAI-compatible server
    python -m benchmarks.heldout_eval --url http://127.0.0.1:8000/v1 --api-key sk-local

Or let the script start the server on a free loopback port (the shipped checkpoint by default):

    python -m benchmarks.heldout_eval --serve checkpoints/tinyllm-default

The problems were written apart from the training generator (see ``evals/write_heldout.py``), so this is
the figure to quote for "does it read questions it never saw". Each problem is asked the way a user asks:
the question as the only message, no system prompt. Methods:
* ``default``: nothing but the question: the server's and the checkpoint's defaults (a reasoning
  checkpoint thinks by default: one greedy chain, the answer in ``content``);
* ``plain``: ``reasoning_effort: "none"``, temperature 0: the answer alone, greedy;
* ``medium``: ``reasoning_effort: "medium"`` (OpenAI's default effort; here a checked vote of 5 samples);
* ``vote``: ``reasoning_effort: "high"`` (the server's k-sample checked vote).
The answer is the server's voted answer where it reports one, else the one extracted from ``content``.
Answers are compared after the same normalisation the vote uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai

from benchmarks.processes import free_port, running
from reasoning.answers import extract_answer, normalize_answer

HELDOUT = Path(__file__).resolve().parents[1] / "evals" / "heldout-v1.jsonl"
METHODS: dict[str, dict[str, Any]] = {
    "default": {},
    "plain": {"reasoning_effort": "none", "temperature": 0.0},
    "medium": {"reasoning_effort": "medium"},
    "vote": {"reasoning_effort": "high"},
}
GROUPS = ("all", "easy", "hard", "easy/zh", "easy/en", "hard/zh", "hard/en")


def load_problems(path: Path = HELDOUT, limit: int | None = None) -> list[dict[str, Any]]:
    """The set, or an evenly spread slice of it (every cell of language x stratum x kind represented)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if limit is None or limit >= len(records):
        return records
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        cells[(r["lang"], r["stratum"], r["kind"])].append(r)
    per_cell = max(1, limit // len(cells))
    return [r for cell in cells.values() for r in cell[:per_cell]]


def ask(client: openai.OpenAI, model: str, record: dict[str, Any], method: str) -> str | None:
    """The normalised answer the server gives to one problem with one method (None if it gives none)."""
    try:
        r = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": record["user"]}], seed=0, **METHODS[method]
        )
    except openai.APIError as e:  # counted as unanswered, and said
        print(f"{record['id']} {method}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return None
    sc = (r.model_extra or {}).get("self_consistency")
    answer = sc["answer"] if sc else extract_answer(r.choices[0].message.content)
    return normalize_answer(answer) if answer else None


def score(
    client: openai.OpenAI, model: str, records: list[dict[str, Any]], methods: list[str], workers: int
) -> dict[str, list[bool]]:
    """method -> per-problem correctness, in the order of ``records``."""
    results: dict[str, list[bool]] = {}
    with ThreadPoolExecutor(workers) as pool:
        for method in methods:
            answers = list(pool.map(lambda r, m=method: ask(client, model, r, m), records))
            results[method] = [a == r["answer"] for a, r in zip(answers, records, strict=True)]
            print(f"{method}: {sum(results[method])}/{len(records)}", file=sys.stderr, flush=True)
    return results


def _members(records: list[dict[str, Any]], group: str) -> list[int]:
    return [i for i, r in enumerate(records) if group in ("all", r["stratum"], f"{r['stratum']}/{r['lang']}")]


def accuracy(records: list[dict[str, Any]], correct: list[bool], group: str) -> float:
    """Percent right of ``group`` ("all", "easy", "hard/zh", ...)."""
    idx = _members(records, group)
    return 100.0 * sum(correct[i] for i in idx) / len(idx)


def table(records: list[dict[str, Any]], results: dict[str, list[bool]]) -> str:
    methods = list(results)
    lines = ["| group | problems | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
    for group in GROUPS:
        if idx := _members(records, group):
            cells = [f"{accuracy(records, results[m], group):.1f}" for m in methods]
            lines.append(f"| {group} | {len(idx)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(records: list[dict[str, Any]], results: dict[str, list[bool]], targets: dict[str, float]) -> str:
    """One sentence saying, for each target, the figure reached and whether it is met: ``{"easy": 95}`` is
    ``default`` right on ≥ 95 % of easy problems; ``{"vote_gain": 5}``, the vote ≥ 5 points above ``default``
    on hard ones."""
    parts = []
    for name, goal in targets.items():
        if name == "vote_gain":
            wanted = f"vote on hard ≥ default + {goal:g} points"
            if not {"vote", "default"} <= results.keys():
                parts.append(f"{wanted}: not measured")
                continue
            got = accuracy(records, results["vote"], "hard") - accuracy(records, results["default"], "hard")
            shown = f"{got:+.1f}"
        else:
            wanted = f"{name} ≥ {goal:g} %"
            if "default" not in results:
                parts.append(f"{wanted}: not measured")
                continue
            got = accuracy(records, results["default"], name)
            shown = f"{got:.1f}"
        parts.append(f"{wanted}: {shown}, {'met' if got >= goal else '**not met**'}")
    return "Targets (greedy with `default` unless said): " + "; ".join(parts) + "."


CARD_START = "<!-- independent-set: written by python -m benchmarks.heldout_eval --card -->"
CARD_END = "<!-- /independent-set -->"


def write_card_section(card: Path, body: str) -> None:
    """Put ``body`` in the model card ``card`` as its first section (after the title and intro paragraph),
    replacing the one a previous run wrote: the card leads with the independent set's figures."""
    text = card.read_text(encoding="utf-8")
    section = f"{CARD_START}\n{body.strip()}\n{CARD_END}\n\n"
    if CARD_START in text and CARD_END in text:
        head, rest = text.split(CARD_START, 1)
        text = head + section + rest.split(CARD_END, 1)[1].lstrip("\n")
    else:
        at = text.find("\n## ")
        at = len(text) if at < 0 else at + 1
        text = text[:at] + section + text[at:]
    card.write_text(text, encoding="utf-8")


def card_body(
    records: list[dict[str, Any]],
    results: dict[str, list[bool]],
    command: str,
    targets: dict[str, float] | None = None,
) -> str:
    return "\n".join(
        [
            "## Evaluation: the independent held-out set",
            "",
            f"`evals/{HELDOUT.name}`: {len(records)} problems in Chinese and English, easy and hard, bare "
            "expressions and word problems, written by a grammar of its own that shares no sentence frame "
            "with the training generator. Asked through the server as a user asks (the question as the only "
            "message); accuracy in %. Methods: `default` = no parameters (the checkpoint's defaults), `plain` "
            '= `reasoning_effort: "none"`, `medium` / `vote` = `reasoning_effort: "medium"` / `"high"` '
            "(checked votes of 5 / 9 chains).",
            "",
            table(records, results),
            "",
            *([verdicts(records, results, targets), ""] if targets else []),
            f"Reproduce: `{command}`",
        ]
    )


@contextmanager
def served(
    checkpoint: str, api_key: str, quantize: str | None, arithmetic: str | None = None
) -> Iterator[str]:
    """``python -m server`` on a free loopback port until the block ends; yields the /v1 base URL."""
    port = free_port()
    env = {**os.environ, "TINYLLM_MODEL": checkpoint, "TINYLLM_API_KEYS": api_key}
    if quantize:
        env["TINYLLM_QUANTIZE"] = quantize
    if arithmetic:
        env["TINYLLM_REASONING_ARITHMETIC"] = arithmetic
    with running([sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)], env) as server:
        base = f"http://127.0.0.1:{port}"
        server.wait_ready(f"{base}/ready")
        yield f"{base}/v1"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="base URL of a running server's /v1")
    p.add_argument(
        "--serve", metavar="CHECKPOINT", help="start `python -m server` on this checkpoint instead"
    )
    p.add_argument("--quantize", choices=["none", "int8"], help="with --serve: TINYLLM_QUANTIZE")
    p.add_argument(
        "--arithmetic",
        choices=["calculator", "model"],
        help="with --serve: TINYLLM_REASONING_ARITHMETIC (who writes the chains' arithmetic results)",
    )
    p.add_argument("--api-key", default="sk-heldout-eval")
    p.add_argument("--model", help="model name to send (default: the server's first model)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--limit", type=int, help="an evenly spread slice of this many problems")
    p.add_argument("--workers", type=int, default=8, help="concurrent requests")
    p.add_argument("--json", type=Path, help="also write per-problem results here")
    p.add_argument(
        "--card",
        type=Path,
        metavar="README",
        help="write the table as the first section of this model card (replacing an earlier one)",
    )
    p.add_argument(
        "--targets",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="with --card: goals the card says are met or not, e.g. easy=95 hard=60 vote_gain=5 "
        "(a group's %% right with `default`; vote_gain: points the vote adds on hard)",
    )
    args = p.parse_args(argv)
    try:
        targets = {k: float(v) for k, v in (t.split("=", 1) for t in args.targets)}
    except ValueError:
        p.error(f"--targets takes NAME=NUMBER pairs, got {args.targets}")
    if set(targets) - {*GROUPS, "vote_gain"}:
        p.error(f"--targets names one of {', '.join(GROUPS)} or vote_gain")
    if bool(args.url) == bool(args.serve):
        p.error("give exactly one of --url and --serve")
    records = load_problems(limit=args.limit)
    start = time.perf_counter()
    serving = served(args.serve, args.api_key, args.quantize, args.arithmetic) if args.serve else None
    with serving or _given(args.url) as url:
        client = openai.OpenAI(base_url=url, api_key=args.api_key, max_retries=0, timeout=600)
        model = args.model or client.models.list().data[0].id
        results = score(client, model, records, args.methods, args.workers)
    print(f"## Held-out set ({HELDOUT.name}), {len(records)} problems, model {model}\n")
    print(table(records, results))
    print(f"\nwall time: {time.perf_counter() - start:.1f} s")
    if args.card:
        if args.limit is not None:
            p.error("--card takes the whole set, not --limit")
        command = "python -m benchmarks.heldout_eval " + " ".join(argv if argv is not None else sys.argv[1:])
        write_card_section(args.card, card_body(records, results, command, targets))
    if args.json:
        rows = [{"id": r["id"], **{m: results[m][i] for m in results}} for i, r in enumerate(records)]
        args.json.write_text(json.dumps(rows, indent=1))


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
