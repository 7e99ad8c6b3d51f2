"""Arithmetic reasoning problems with verified step-by-step solutions, for chain-of-thought SFT and eval.

Records (JSONL): {"system", "user", "cot", "final", "answer", "lang", "stratum", "kind"}. ``cot`` has 3-8
short sentences, each operation in its own sentence as "a op b=c" ("先算括号里的加法：3+4=7。"); ``final``
is "答案：74。" / "The answer is 74."; ``answer`` is the ``normalize_answer`` key ("74", "3/5", "5", "8x").
A multi-digit operation is worked in columns before its result ("84-17：14-7=7，8-1-1=6，所以84-17=67"), a
two-digit multiplier as long multiplication; every column is checked too.

Kinds: ``expression`` (bare arithmetic), ``word`` (shopping, collecting, sharing, travel, ages,
production), ``probability`` (drawing from a box; the chain restates each colour's count and reduces by
the gcd explicitly, or says the fraction is in lowest terms), ``algebra`` (solve a linear equation,
or write an expression like 8x). Strata: ``easy`` (one or two operations, operands up to about 20) and
``hard`` (three or four operations, two-digit operands, multi-sentence problems). Intermediate results are
non-negative integers; division only when exact.

Train and test are disjoint by construction:
  1. Structure split. A problem's structure key is the set of equations in its chain, with the operands of
     + and * sorted ("3+4=7;7*12=84;84-10=74"): its operator pattern and operand tuple, whatever the
     wording or kind. ``split_of(key)`` puts a key in test when sha256(key) mod 100 < TEST_PERCENT, else in
     train, and ``generate`` only keeps problems whose key belongs to the requested split. So no
     computation (not even "3+4" as apples vs. as a bare sum) is in both splits. ``structure_key`` reads
     the key back from the cot text, so anyone can re-check a finished file.
  2. Held-out phrasing. The last template of every template list is test-only: train never uses it, test
     uses all templates, so the eval also measures generalisation to unseen wording. Train also draws
     train-only templates (other sentence structures, ``template_lists.train_options``) and
     paraphrases questions at random (``training.reasoning_paraphrase``); a prompt that happens to match a
     held-out template is drawn again.
``disjointness_report`` / ``assert_disjoint`` check both on generated records.

Layout: this module has the record format, the split rule, verification and the CLI;
``training.reasoning_problems`` draws parameters and writes the chains (probability in
``training.reasoning_probability``, word problems in ``training.reasoning_word``);
``training.reasoning_templates`` holds the wording (names, objects, system prompts, templates; the word problems' in
``training.word_templates``; ``training.template_lists`` builds the lists and says which ones train draws).

Every answer is computed twice: by the step chain, and independently by ``reasoning.calculator`` on an
expression built from the problem's parameters (or, for bare expressions, parsed from the question text;
for equations, by substituting the solution). ``verify_record`` re-checks a finished record.

    python -m training.reasoning_data --split train --n 20000 --seed 0 --out data/reasoning_train.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reasoning import chain_format
from reasoning.answers import extract_answer, normalize_answer, parse_number
from reasoning.calculator import check_answer
from reasoning.step_check import chain_equations, false_steps
from training import reasoning_templates as wording
from training.reasoning_paraphrase import paraphrase
from training.reasoning_probability import probability, reduction_errors
from training.reasoning_problems import (
    SPOKEN_SHARE,
    Chain,
    Context,
    Reject,
    algebra,
    expression,
    substitute,
)
from training.reasoning_verbal import numbers_said
from training.reasoning_word import word

SPLITS = ("train", "test")
BUILDERS = {"expression": expression, "word": word, "probability": probability, "algebra": algebra}
STRATA = ("easy", "hard")
LANGS = ("zh", "en")
KINDS = ("expression", "word", "probability", "algebra")
KIND_WEIGHTS = {"expression": 3.0, "word": 4.0, "probability": 1.5, "algebra": 1.5}
TEST_PERCENT = 20
MAX_ATTEMPTS = 2000

_SENTENCE_RE = re.compile(r"[^。.!?]+[。.!?]")
# An arithmetic operator written in a question (a question in words has none; "-" only between operands).
_OPERATOR_IN_TEXT_RE = re.compile(r"[+*/×÷＋－＊／]|\d\s*[-−]\s*[\d(]")
# An equation inside a question: digits, operators and one-letter variables, not letters of words.
_EQUATION_IN_TEXT_RE = re.compile(r"(?:[\d()+\-*/=\s]|(?<![A-Za-z])[a-z](?![A-Za-z]))+")


# ---------------------------------------------------------------- chains, keys and the split rule


def structure_key(cot: str) -> str:
    """The problem's computation, independent of wording: its sorted set of chain equations."""
    equations = set()
    for a, op, b, c in chain_equations(cot):
        if op in "+*":
            a, b = sorted((a, b))
        equations.add(f"{a}{op}{b}={c}")
    return ";".join(sorted(equations))


def split_of(key: str) -> str:
    """ "test" for TEST_PERCENT% of structure keys (by hash, so stable across runs and machines)."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if bucket < TEST_PERCENT else "train"


# ---------------------------------------------------------------- records


def _make_record(
    rng: random.Random,
    split: str,
    stratum: str,
    lang: str,
    kind: str,
    spoken_share: float = SPOKEN_SHARE,
    story_share: float = 0.0,
) -> dict:
    ctx, ch = Context(rng, lang, split, stratum == "hard", spoken_share, story_share), Chain(lang)
    problem = BUILDERS[kind](ctx, ch)
    user = problem.user
    if split == "train":
        user = paraphrase(user, lang, rng)
        if wording.uses_held_out_template(user, lang):
            raise Reject("a paraphrase matched a held-out template")
    final = chain_format.final(lang, problem.display)
    return {
        "system": ctx.choice(wording.SYSTEMS[lang]),
        "user": user,
        "cot": ch.text(),
        "final": final,
        "answer": problem.answer,
        "lang": lang,
        "stratum": stratum,
        "kind": kind,
    }


def verify_record(record: dict) -> list[str]:
    """Problems found in a record ([] when it is sound), checked from the record's text alone."""
    errors = []
    cot, answer = record["cot"], record["answer"]
    sentences = _SENTENCE_RE.findall(cot)
    if not 3 <= len(sentences) <= 8:
        errors.append(f"cot has {len(sentences)} sentences, expected 3-8")
    equations = chain_equations(cot)
    if not equations:
        errors.append("cot has no equation")
    errors += [f"false step {step}" for step in false_steps(cot)]
    if normalize_answer(extract_answer(record["final"])) != answer:
        errors.append(f"final {record['final']!r} does not give answer {answer!r}")
    kind = record["kind"]
    if kind == "expression":
        errors += _expression_errors(record)
    elif kind == "word":
        if equations and normalize_answer(equations[-1][3]) != answer:
            errors.append("last step does not give the answer")
        if chain_format.EXPRESSION_COPY_RE.search(cot):  # composed stories translate into a formula
            errors += _copied_formula_errors(record)
    elif kind == "probability":
        if not 0 < (parse_number(answer) or 0) < 1:
            errors.append("probability outside (0, 1)")
        errors += reduction_errors(cot, answer)
    elif kind == "algebra":
        found = [m.strip() for m in _EQUATION_IN_TEXT_RE.findall(record["user"]) if "=" in m]
        if found:  # solve-for-x: substitute the answer back
            equation, value = max(found, key=len), parse_number(answer)
            var = re.search(r"[a-z]", equation).group()
            if value is None or len(set(substitute(equation, var, value))) != 1:
                errors.append(f"{answer} does not solve {equation}")
        elif equations and normalize_answer(equations[-1][3]) != answer:
            errors.append("last step does not give the answer")
    return errors


def _expression_errors(record: dict) -> list[str]:
    """A question in symbols is checked by the calculator on its own text. One in words (no operator in it,
    see ``training.reasoning_verbal``) on the formula the chain copied, which must hold the question's
    numbers, written or implied ("double 18"), no more, no fewer."""
    user, answer = record["user"], record["answer"]
    if _OPERATOR_IN_TEXT_RE.search(user):
        check = check_answer(user, answer)
        return [] if check is not None and check.agrees else [f"calculator disagrees: {check}"]
    return _copied_formula_errors(record)


def _copied_formula_errors(record: dict) -> list[str]:
    """A question in words (a spoken expression, a composed story): the formula its chain copied must hold the
    question's numbers, no more, no fewer, and give the answer."""
    user, answer = record["user"], record["answer"]
    copied = chain_format.EXPRESSION_COPY_RE.search(record["cot"])
    if copied is None:
        return ["a question in words, and no formula copied in the chain"]
    errors = []
    if numbers_said(user) != sorted(re.findall(r"\d+", copied.group(1))):
        errors.append(f"the copied formula {copied.group(1)!r} has other numbers than the question")
    check = check_answer(copied.group(1), answer)
    if check is None or not check.agrees:
        errors.append(f"calculator disagrees with the copied formula: {check}")
    return errors


def generate(
    split: str,
    n: int,
    seed: int,
    strata: Sequence[str] = STRATA,
    langs: Sequence[str] = LANGS,
    kinds: Sequence[str] = KINDS,
    spoken_share: float = SPOKEN_SHARE,
    story_share: float = 0.0,
) -> list[dict]:
    """``n`` verified records of one split, deterministic for (split, seed); strata and languages
    alternate evenly, kinds are drawn by KIND_WEIGHTS. Prompts are unique within the result.
    ``spoken_share``: of the train split's bare expressions, the share asked in words; ``story_share``: of its
    word problems, the share composed by ``training.reasoning_story`` (0 keeps the recipes' data as it was)."""
    if (
        split not in SPLITS
        or not set(strata) <= set(STRATA)
        or not set(langs) <= set(LANGS)
        or not set(kinds) <= set(KINDS)
        or not (strata and langs and kinds)
    ):
        raise ValueError(f"bad split/strata/langs/kinds: {split!r} {strata!r} {langs!r} {kinds!r}")
    rng = random.Random(f"tinyllm-reasoning:{split}:{seed}")  # str seeds hash the same on every run
    weights = [KIND_WEIGHTS[k] for k in kinds]
    records: list[dict] = []
    seen: set[str] = set()
    for i in range(n):
        stratum, lang = strata[i % len(strata)], langs[(i // len(strata)) % len(langs)]
        for _ in range(MAX_ATTEMPTS):
            try:
                kind = rng.choices(kinds, weights)[0]
                record = _make_record(rng, split, stratum, lang, kind, spoken_share, story_share)
            except Reject:
                continue
            if record["user"] not in seen and split_of(structure_key(record["cot"])) == split:
                break
        else:
            raise RuntimeError(f"no new {stratum}/{lang} problem after {MAX_ATTEMPTS} attempts; n too large?")
        errors = verify_record(record)
        if errors:
            raise RuntimeError(f"generator bug: {errors} in {record}")
        seen.add(record["user"])
        records.append(record)
    return records


# ---------------------------------------------------------------- disjointness


@dataclass(frozen=True)
class DisjointReport:
    train_records: int
    test_records: int
    shared_prompts: int  # identical user texts in both
    shared_structures: int  # structure keys in both
    misplaced: int  # records whose structure key hashes to the other split
    train_held_out_templates: int  # train prompts written with a test-only template

    @property
    def ok(self) -> bool:
        return not (
            self.shared_prompts or self.shared_structures or self.misplaced or self.train_held_out_templates
        )


def disjointness_report(train: Sequence[dict], test: Sequence[dict]) -> DisjointReport:
    train_keys = {structure_key(r["cot"]) for r in train}
    test_keys = {structure_key(r["cot"]) for r in test}
    misplaced = sum(split_of(k) != "train" for k in train_keys) + sum(
        split_of(k) != "test" for k in test_keys
    )
    return DisjointReport(
        train_records=len(train),
        test_records=len(test),
        shared_prompts=len({r["user"] for r in train} & {r["user"] for r in test}),
        shared_structures=len(train_keys & test_keys),
        misplaced=misplaced,
        train_held_out_templates=sum(wording.uses_held_out_template(r["user"], r["lang"]) for r in train),
    )


def assert_disjoint(train: Sequence[dict], test: Sequence[dict]) -> DisjointReport:
    report = disjointness_report(train, test)
    if not report.ok:
        raise AssertionError(f"train and test overlap: {report}")
    return report


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.reasoning_data", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--split", choices=SPLITS, required=True)
    parser.add_argument("--n", type=int, required=True, help="number of records")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSONL output (default data/reasoning_{split}.jsonl)")
    parser.add_argument("--strata", default=",".join(STRATA), help="comma-separated subset of easy,hard")
    parser.add_argument("--langs", default=",".join(LANGS), help="comma-separated subset of zh,en")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS)
    )
    args = parser.parse_args(argv)
    try:
        records = generate(
            args.split,
            args.n,
            args.seed,
            args.strata.split(","),
            args.langs.split(","),
            args.kinds.split(","),
        )
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or Path(f"data/reasoning_{args.split}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts = Counter((r["stratum"], r["lang"], r["kind"]) for r in records)
    print(f"wrote {len(records)} records to {out}", file=sys.stderr)
    for (stratum, lang, kind), count in sorted(counts.items()):
        print(f"  {stratum:4} {lang} {kind:11} {count}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
