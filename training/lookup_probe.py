"""Teacher-forced probe of the step where the easy probability chains used to fail, and the copy score.

An easy probability chain restates the counts, names the asked colour, then checks the colours in turn
("Asked: blue; red 3 is not blue, blue 4 is blue, so favourable 4" / "所求：蓝色；红色3个，不是蓝色；蓝色4个，
蓝色正是所求，所以所求的有4个", ``training.reasoning_probability``). The one step that depends on which
colour is asked is the first verdict. This probe feeds the generator's own verified chain up to it
("... red 3 is" / "...红色3个，") and asks whether the model's greedy next word gives the right verdict ("not"
/ "不" for another colour, the asked colour's name for the asked one), on train-split and test-split
problems, per language, so the verdict is measured alone (chance is 50 %):

    python -m training.lookup_probe --checkpoint checkpoints/tinyllm-default --n 200

It also prints the checkpoint's copy score (``copy_score``): fed a run of random tokens twice, how often
the model predicts the next token of the repeat. A model with induction heads (attend to the token after
the last occurrence of the current one) copies nearly all of it; one without stays at what it gets in the
first run, and then cannot look a count up by its colour, which is why the chain checks colours in turn
instead. A model trained on repeats of one fixed length learns to copy from that distance back instead
(seen here: 90 % at period 20 after 600 steps of such repeats, 0 % at 24), so the score's period should be
one the training data does not fix.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch

from model.checkpoint import load_checkpoint
from model.engine import Engine, EngineConfig
from model.inference import Precision, prepare_for_serving
from model.sampling import SamplingParams
from model.tokenizer import Tokenizer
from reasoning.chain_format import FIRST_CHECK_RE
from training import reasoning_data


def check_prefix(record: dict[str, Any]) -> tuple[str, str, bool]:
    """The chain of an easy probability record cut right before its first verdict, the asked colour, and
    whether the first colour checked is the asked one."""
    m = FIRST_CHECK_RE[record["lang"]].search(record["cot"])
    if m is None:
        raise ValueError("not an easy probability chain with a check of the asked colour")
    return record["cot"][: m.end()], m[1], m[1] == m[2]


def verdict(text: str, asked: str) -> bool | None:
    """What a continuation says of the colour being checked: True (it is the asked one: the verdict starts
    with the asked colour's name), False ("not" / "不是"), None (anything else)."""
    text = text.strip()
    if text.startswith(asked):
        return True
    if text.startswith(("not", "不")):
        return False
    return None


def _prompt(tokenizer: Tokenizer, record: dict[str, Any], prefix: str) -> list[int]:
    """The same tokens as training: the reasoning prompt, then "\n" + the chain so far
    (``Tokenizer.encode_sft_example``)."""
    messages = [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["user"]}]
    return tokenizer.encode_chat(messages, add_generation_prompt=True, reasoning=True) + tokenizer.encode(
        "\n" + prefix
    )


def probe(
    checkpoint: str,
    n: int = 200,
    seed: int = 11,
    splits: Sequence[str] = ("train", "test"),
    precision: Precision = "fp32",
    max_tokens: int = 3,
) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {lang: {"right", "unclear", "n"}}} over ``n`` easy probability problems per split: the greedy
    continuation of each cut chain (all in flight in one engine, as the eval runs them)."""
    loaded = load_checkpoint(checkpoint)
    tokenizer = loaded.tokenizer
    cases = [
        (split, record, *check_prefix(record))
        for split in splits
        for record in reasoning_data.generate(split, n, seed, strata=("easy",), kinds=("probability",))
    ]
    engine = Engine(
        prepare_for_serving(loaded.model, precision),
        EngineConfig(max_queue=len(cases) + 1),
        tokenizer.stop_token_ids,
    )
    engine.start()
    try:
        greedy = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        handles = [
            engine.submit(_prompt(tokenizer, record, prefix), greedy) for _, record, prefix, _, _ in cases
        ]
        written = [
            tokenizer.decode([e.token_id for e in h.iter_sync() if e.token_id is not None]) for h in handles
        ]
    finally:
        engine.shutdown(timeout=5.0)
    report: dict[str, dict[str, dict[str, int]]] = {}
    for (split, record, _, asked, first_is_asked), text in zip(cases, written, strict=True):
        said = verdict(text, asked)
        row = report.setdefault(split, {}).setdefault(record["lang"], {"right": 0, "unclear": 0, "n": 0})
        row["n"] += 1
        row["right"] += said == first_is_asked
        row["unclear"] += said is None
    return report


def copy_score(
    model: torch.nn.Module, vocab: int, length: int = 24, rows: int = 32, seed: int = 0
) -> tuple[float, float]:
    """(accuracy of next-token prediction in the first run, in the repeat) for ``rows`` runs of ``length``
    random tokens (ids past the special and byte tokens) written twice; ``model`` maps [B, T] ids to logits."""
    runs = torch.randint(vocab // 10, vocab, (rows, length), generator=torch.Generator().manual_seed(seed))
    tokens = torch.cat([runs, runs], dim=1)
    with torch.no_grad():
        predicted = model(tokens).argmax(-1)
    right = predicted[:, :-1] == tokens[:, 1:]
    return right[:, : length - 1].float().mean().item(), right[:, length:].float().mean().item()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.lookup_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (the server's format)")
    p.add_argument("--n", type=int, default=200, help="problems per split (half Chinese, half English)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="the served copy to probe")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = probe(args.checkpoint, args.n, args.seed, precision=args.precision)
    print("| split | lang | n | right verdict | neither verdict |\n|---|---|---:|---:|---:|")
    for split, langs in report.items():
        for lang, r in sorted(langs.items()):
            print(
                f"| {split} | {lang} | {r['n']} | {100 * r['right'] / r['n']:.0f} % | "
                f"{100 * r['unclear'] / r['n']:.0f} % |"
            )
    model = load_checkpoint(args.checkpoint).model
    first, repeat = copy_score(model, model.config.vocab_size)
    print(
        f"\ncopy score (random tokens written twice): next token right {100 * repeat:.0f} % in the repeat, "
        f"{100 * first:.0f} % in the first run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
