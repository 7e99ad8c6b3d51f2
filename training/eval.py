"""Evaluate a checkpoint: held-out perplexity and arithmetic reasoning accuracy.

Reasoning accuracy is measured on the *test* split of ``training.reasoning_data`` (structures and some
phrasings never seen in training), through the serving engine exactly as the server would run it:

* greedy: one chain at temperature 0;
* self-consistency@k: k chains sampled at ``temperature``, majority vote over their extracted answers
  (``reasoning.vote.vote``), for k in ``ks``. The k chains of a problem are one request with ``n = max(ks)``
  (the engine prefills the prompt once and forks its KV cache); @k uses the first k of them, so the
  figures for different k are nested, as if the server had been asked for k samples;
* checked@k: the same k chains, but the answers of chains that check out (every arithmetic step holds
  and every number comes from the question, ``reasoning.chain_check``) are ranked first, as the server's
  ``check_steps`` vote does;
* both for the fp32 model and its int8 dynamic quantization (what the server runs by default);
* each vote's paired margin over greedy on the same problems: how many it fixes, how many it breaks, and a
  95% interval (``training.vote_margin``), because on 80 problems one problem is 1.25 points.

Results are split by stratum (easy/hard), language (zh/en), kind, and wording (the question's template
held out from train, or one train uses too). Outputs: ``eval.json`` (all figures),
``eval_samples.jsonl`` (every generated chain, for error analysis) and ``eval.png``.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.inference import prepare_for_serving
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from model.transformer import Transformer
from reasoning.answers import extract_answer, normalize_answer, split_reasoning
from reasoning.chain_check import ChainCheck, check_chain
from reasoning.vote import vote
from training import reasoning_data
from training.batches import IGNORE, PretrainBatches, split_size
from training.reasoning_templates import uses_held_out_template
from training.vote_margin import margin_table

CHAT_PROMPTS = ["你好", "你是谁？", "Who are you?", 'What does "library" mean?']


@dataclass
class EvalConfig:
    n_problems: int = 160  # test problems, spread evenly over strata and languages by the generator
    seed: int = 0
    ks: tuple[int, ...] = (1, 5, 9)
    temperature: float = 0.7
    top_p: float = 1.0
    # Per chain, and never past the model's context: the longest hard chains (four operations with long
    # multiplications in columns, and the expression rewritten after each) run to ~490 tokens.
    max_new_tokens: int = 480
    precisions: tuple[str, ...] = ("fp32", "int8")
    ppl_data: tuple[str, ...] = ()  # prepared pretrain-kind data directories whose val split is scored
    ppl_seq_len: int = 256
    ppl_max_windows: int = 400
    max_batch: int = 32  # engine slots
    threads: int = 0
    sample_seed: int = 1000
    strata: tuple[str, ...] = ("easy", "hard")
    langs: tuple[str, ...] = ("zh", "en")
    progress: bool = True


# --- perplexity ---------------------------------------------------------------------------------------


@torch.no_grad()
def perplexity(
    model: torch.nn.Module,
    data_dir: str | Path,
    seq_len: int = 256,
    max_windows: int = 400,
    batch_size: int = 8,
) -> dict[str, float]:
    """Mean next-token loss and perplexity over (up to ``max_windows``) windows of a val split."""
    val = Path(data_dir) / "val"
    n = split_size(val, seq_len)
    if n == 0:
        return {}
    data = PretrainBatches(val, seq_len, min(batch_size, n))
    loss_sum, count = 0.0, 0
    for index in data.eval_batches(max(1, max_windows // data.batch_size)):
        inputs, targets = data.batch(index)
        logits = model(inputs)
        loss_sum += float(
            F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
        )
        count += int((targets != IGNORE).sum())
    loss = loss_sum / max(1, count)
    return {"loss": round(loss, 5), "ppl": round(math.exp(min(loss, 50.0)), 3), "tokens": count}


# --- reasoning accuracy -------------------------------------------------------------------------------


@dataclass
class ProblemResult:
    record: dict[str, Any]
    greedy_text: str
    greedy_answer: str
    sample_answers: list[str] = field(default_factory=list)
    sample_texts: list[str] = field(default_factory=list)

    def correct(self, method: str) -> bool:
        """``greedy``, ``sc@k`` (plain majority vote over the first k samples) or ``checked@k`` (the vote
        that ranks first the answers of chains that check out, ``reasoning.chain_check``)."""
        gold = self.record["answer"]
        if method == "greedy":
            return self.greedy_answer == gold
        name, k = method.split("@")
        answers = self.sample_answers[: int(k)]
        if name == "checked":
            return vote(answers, eligible=[c.ok for c in self.sample_checks[: int(k)]]).key == gold
        return vote(answers).key == gold

    @cached_property
    def sample_checks(self) -> list[ChainCheck]:
        """Each sample chain's check (false steps, numbers foreign to the question), computed once."""
        return [
            check_chain(self.record["user"], split_reasoning(text)[0] or "", answer)
            for text, answer in zip(self.sample_texts, self.sample_answers, strict=True)
        ]


def answer_key(tokenizer: Tokenizer, token_ids: Sequence[int]) -> tuple[str, str]:
    """(text, normalised answer) of a generated reasoning continuation; "" when it has no answer."""
    # Keep the special tokens: "</think>" separates the chain from the final answer.
    text = tokenizer.decode(list(token_ids), skip_special=False)
    _, final = split_reasoning(text)
    return text, normalize_answer(extract_answer(final))


def run_problems(
    model: Transformer,
    tokenizer: Tokenizer,
    records: list[dict[str, Any]],
    cfg: EvalConfig,
    label: str = "",
    progress: bool = True,
) -> list[ProblemResult]:
    """Greedy and sampled chains for every problem, all in flight in one engine (batched decoding)."""
    engine = Engine(
        model,
        EngineConfig(
            max_batch=max(cfg.max_batch, max(cfg.ks)), max_queue=10_000, num_threads=cfg.threads or None
        ),
        tokenizer.stop_token_ids,
    )
    engine.start()
    try:
        handles = []
        kmax = max(cfg.ks)
        for i, r in enumerate(records):
            messages = [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["user"]}]
            prompt = tokenizer.encode_chat(messages, add_generation_prompt=True, reasoning=True)
            budget = min(cfg.max_new_tokens, engine.max_seq_len - len(prompt))
            greedy = SamplingParams(temperature=0.0, max_tokens=budget)
            sampled = SamplingParams(
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=budget,
                seed=cfg.sample_seed + i * kmax,
            )
            handles.append((engine.submit(prompt, greedy, n=1), engine.submit(prompt, sampled, n=kmax)))
        results = []
        bar = tqdm(
            total=len(records), desc=f"eval {label}", unit="problem", disable=not progress, mininterval=2.0
        )
        for r, (h_greedy, h_sampled) in zip(records, handles, strict=True):
            greedy_ids = [e.token_id for e in h_greedy.iter_sync() if e.token_id is not None]
            text, key = answer_key(tokenizer, greedy_ids)
            per_seq: dict[int, list[int]] = defaultdict(list)
            for e in h_sampled.iter_sync():
                if e.token_id is not None:
                    per_seq[e.index].append(e.token_id)
            samples = [answer_key(tokenizer, per_seq[j]) for j in range(kmax)]
            results.append(ProblemResult(r, text, key, [k for _, k in samples], [t for t, _ in samples]))
            bar.update(1)
        bar.close()
        return results
    finally:
        engine.shutdown(timeout=5.0)


def wording_of(record: dict) -> str:
    """ "held-out" when the question could have been written by a test-only template, else "train"."""
    return "held-out" if uses_held_out_template(record["user"], record["lang"]) else "train"


def accuracy_table(results: list[ProblemResult], ks: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Accuracy per group ("all", "easy", "hard", "zh", "en", "easy/zh", "kind:word", "wording:held-out",
    "easy/wording:train", ...) and method. Wording "held-out" is a question written with a template that
    train never uses; "train" one written with a template train also uses (on other problems)."""
    methods = ["greedy"] + vote_methods(ks)
    table = {}
    for g, items in sorted(_groups(results).items()):
        row: dict[str, Any] = {"n": len(items)}
        for m in methods:
            row[m] = round(100.0 * sum(res.correct(m) for res in items) / len(items), 1)
        row["answered_greedy"] = round(100.0 * sum(bool(res.greedy_answer) for res in items) / len(items), 1)
        row["agreement@max"] = round(sum(vote(res.sample_answers).agreement for res in items) / len(items), 3)
        table[g] = row
    return table


def vote_methods(ks: Sequence[int]) -> list[str]:
    return [f"sc@{k}" for k in ks] + [f"checked@{k}" for k in ks if k > 1]


def _groups(results: list[ProblemResult]) -> dict[str, list[ProblemResult]]:
    groups: dict[str, list[ProblemResult]] = defaultdict(list)
    for res in results:
        r = res.record
        wording = f"wording:{wording_of(r)}"
        for g in (
            "all",
            r["stratum"],
            r["lang"],
            f"{r['stratum']}/{r['lang']}",
            f"kind:{r['kind']}",
            wording,
            f"{r['stratum']}/{wording}",
        ):
            groups[g].append(res)
    return groups


MARGIN_GROUPS = ("all", "easy", "hard", "zh", "en")


def vote_margins(results: list[ProblemResult], ks: Sequence[int]) -> dict[str, Any]:
    """Per stratum and language, each vote's paired margin over greedy on the same problems
    (``training.vote_margin``); the finer groups hold too few problems for an interval to say much."""
    methods = [m for m in vote_methods(ks) if not m.endswith("@1")]
    groups = _groups(results)
    flags = {
        g: {m: [res.correct(m) for res in groups[g]] for m in ["greedy", *methods]}
        for g in MARGIN_GROUPS
        if g in groups
    }
    return margin_table(flags, methods)


def chat_samples(model: Transformer, tokenizer: Tokenizer, max_tokens: int = 60) -> list[dict[str, str]]:
    """Greedy replies to a few everyday prompts, shown in the model card."""
    engine = Engine(model, EngineConfig(max_batch=4), tokenizer.stop_token_ids)
    engine.start()
    try:
        out = []
        for p in CHAT_PROMPTS:
            ids = tokenizer.encode_chat([{"role": "user", "content": p}])
            res = engine.generate(ids, SamplingParams(temperature=0.0, max_tokens=max_tokens))[0]
            out.append({"prompt": p, "reply": tokenizer.decode(res.token_ids)})
        return out
    finally:
        engine.shutdown(timeout=5.0)


def evaluate(checkpoint: str | Path, out_dir: str | Path, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Run the whole evaluation of an exported checkpoint directory; writes and returns the report."""
    cfg = cfg or EvalConfig()
    started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    loaded = load_checkpoint(checkpoint)
    tokenizer = loaded.tokenizer
    records = reasoning_data.generate("test", cfg.n_problems, cfg.seed, strata=cfg.strata, langs=cfg.langs)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "config": asdict(cfg),
        "perplexity": {},
        "reasoning": {},
        "vote_margin": {},
        "timing_s": {},
    }
    samples_path = out / "eval_samples.jsonl"
    samples_path.write_text("", encoding="utf-8")
    for precision in cfg.precisions:
        t0 = time.time()
        model = prepare_for_serving(loaded.model, precision)  # what the server runs
        for data_dir in cfg.ppl_data:
            ppl = perplexity(model, data_dir, cfg.ppl_seq_len, cfg.ppl_max_windows)
            if ppl:
                report["perplexity"].setdefault(precision, {})[Path(data_dir).name] = ppl
        results = run_problems(model, tokenizer, records, cfg, label=precision, progress=cfg.progress)
        report["reasoning"][precision] = accuracy_table(results, cfg.ks)
        report["vote_margin"][precision] = vote_margins(results, cfg.ks)
        report["timing_s"][precision] = round(time.time() - t0, 1)
        with open(samples_path, "a", encoding="utf-8") as f:
            for res in results:
                f.write(
                    json.dumps(
                        {
                            "precision": precision,
                            "user": res.record["user"],
                            "gold": res.record["answer"],
                            "stratum": res.record["stratum"],
                            "lang": res.record["lang"],
                            "kind": res.record["kind"],
                            "wording": wording_of(res.record),
                            "greedy": res.greedy_text,
                            "greedy_answer": res.greedy_answer,
                            "sample_answers": res.sample_answers,
                            "sample_texts": res.sample_texts,
                            "sample_false_steps": [c.false_steps for c in res.sample_checks],
                            "sample_ungrounded": [c.ungrounded for c in res.sample_checks],
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        if precision == "fp32":
            report["chat_samples"] = chat_samples(model, tokenizer)
    report["seconds"] = round(time.time() - started, 1)
    (out / "eval.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plot_eval(report, out / "eval.png")
    return report


TABLE_GROUPS = ("all", "easy", "hard", "zh", "en", "wording:train", "wording:held-out")


def format_table(report: dict[str, Any], groups: Sequence[str] = TABLE_GROUPS) -> str:
    """A Markdown table of the accuracies (used by the CLI and the model card)."""
    lines = []
    for precision, table in report.get("reasoning", {}).items():
        methods = [
            k for k in next(iter(table.values())) if k == "greedy" or "@" in k and "agreement" not in k
        ]
        if not lines:
            lines += [
                "| precision | group | n | " + " | ".join(methods) + " |",
                "|---|---|---|" + "---|" * len(methods),
            ]
        for g in groups:
            if g in table:
                row = table[g]
                lines.append(
                    f"| {precision} | {g} | {row['n']} | "
                    + " | ".join(f"{row[m]:.1f}" for m in methods)
                    + " |"
                )
    return "\n".join(lines)


def plot_eval(report: dict[str, Any], out_png: str | Path) -> Path | None:
    """Grouped bars: accuracy per group, one bar per method, fp32 solid and int8 hatched."""
    tables = report.get("reasoning", {})
    if not tables:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        g
        for g in ("all", "easy", "hard", "easy/zh", "easy/en", "hard/zh", "hard/en")
        if g in next(iter(tables.values()))
    ]
    methods = [k for k in next(iter(tables.values()))["all"] if k == "greedy" or k.startswith("sc@")]
    bars = [(p, m) for p in tables for m in methods]
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(groups) + 2), 4.2), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (precision, method) in enumerate(bars):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(
            xs,
            [tables[precision][g][method] for g in groups],
            width,
            color=colors[methods.index(method)],
            hatch="//" if precision != "fp32" else None,
            edgecolor="white",
            label=f"{method} ({precision})",
        )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("held-out arithmetic reasoning: greedy vs self-consistency")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)
