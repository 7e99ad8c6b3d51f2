"""Lookup drills and repeated runs: training text for copying from the context. Not in the default recipe.

An easy probability chain has to copy the asked colour's count from its restatement ("Counts: green 8,
blue 4. ... Favourable: blue 4"). The shipped model does not: its misses are always the other colour's
count. Measured (README, "The shipped checkpoint"): fed a run of random tokens twice, it predicts 0 % of
the repeat (``training.lookup_probe.copy_score``); it has no induction head, no general copy from its
context, so a lookup cannot be learnt on top of one. Two kinds of training text aim at that:

1. A *drill* asks for one colour's count among two to four colours, counts 2-99, any colour asked, in the
   probability chain's own two sentences, so nothing but the colour decides the answer:

       Q: A bag contains 23 purple balls, 7 red balls and 41 green balls. How many balls are red?
       A: Counts: purple 23, red 7, green 41. Favourable: red 7.  The answer is 7.

   A drill has no arithmetic, so no computation of the test split is in it.
2. A *repeated run* is a pretraining document of words drawn from the corpora written three times, so
   the repeats can only be predicted by copying.

Neither is in the default recipe. Mixed into it, they did not make the default model copy: with 16,000
drills in reasoning SFT the lookup was still at chance at step 2100 of 4600 (run stopped), and with 30,000
repeated runs as a third of the pretraining text the copy score was 0 % after pretraining. They are here
for the experiments that go on from there.

    python -m training.lookup_drills --n 5000 --seed 0 --out data/lookup_drills.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from training import reasoning_templates as wording
from training.reasoning_probability import restate, say_favourable
from training.reasoning_problems import Chain, Context

QUESTIONS = {
    "zh": ["{container}里有{items}，{ask}{item}有几{u}？",
           "一个{container}里装着{items}。其中{ask}{item}有多少{u}？",
           "{name}的{container}里放着{items}，{ask}{item}一共有几{u}？",
           "{ask}{item}有几{u}？{container}里有{items}。",
           "数一数：{container}中有{items}，{ask}的有几{u}？"],
    "en": ["A {container} contains {items}. How many {plural} are {ask}?",
           "There are {items} in a {container}. How many of them are {ask}?",
           "{name} has a {container} with {items}. How many {ask} {plural} are there?",
           "How many {ask} {plural} are in a {container} that holds {items}?",
           "Count the {ask} ones: a {container} holds {items}."],
}


def _join(parts: list[str], lang: str) -> str:
    if lang == "zh":
        return "、".join(parts[:-1]) + "和" + parts[-1]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def drill(rng: random.Random, lang: str) -> dict[str, str]:
    """One drill record in the reasoning format ({"system","user","cot","final","answer","lang","kind"})."""
    obj = rng.choice(wording.DRAW_OBJECTS)
    colours = [c[0] if lang == "zh" else c[1] for c in rng.sample(wording.COLOURS, rng.choice((2, 2, 3, 4)))]
    counts = [rng.randint(2, 99) for _ in colours]
    place = rng.randrange(len(colours))
    ctx = Context(rng, lang, "train", hard=False)
    count = ctx.qty  # digits, or a number word up to ten now and then
    if lang == "zh" and rng.random() < 0.3:  # "绿色球8个" as well as "8个绿色球", as the questions vary it
        items = [f"{c}{obj[0]}{count(n)}{obj[1]}" for c, n in zip(colours, counts, strict=True)]
    elif lang == "zh":
        items = [f"{count(n)}{obj[1]}{c}{obj[0]}" for c, n in zip(colours, counts, strict=True)]
    else:
        items = [f"{count(n)} {c} {obj[3]}" for c, n in zip(colours, counts, strict=True)]
    user = rng.choice(QUESTIONS[lang]).format(
        container=rng.choice(wording.CONTAINERS[lang]), items=_join(items, lang), ask=colours[place],
        item=obj[0], u=obj[1], plural=obj[3], name=ctx.name())
    ch = Chain(lang)
    restate(ch, obj, colours, counts)
    say_favourable(ch, obj, colours[place], counts[place])
    final = f"答案：{counts[place]}。" if lang == "zh" else f"The answer is {counts[place]}."
    return {"system": rng.choice(wording.SYSTEMS[lang]), "user": user[:1].upper() + user[1:], "cot": ch.text(),
            "final": final, "answer": str(counts[place]), "lang": lang, "kind": "lookup"}


def generate(n: int, seed: int) -> list[dict[str, str]]:
    """``n`` drills, alternating Chinese and English, deterministic for ``seed``."""
    rng = random.Random(f"tinyllm-lookup-drills:{seed}")
    return [drill(rng, ("zh", "en")[i % 2]) for i in range(n)]


def repeat_documents(texts: Sequence[str], n: int, seed: int) -> list[dict[str, str]]:
    """``n`` pretraining documents ``{"text"}``: a run of 8-32 words drawn at random from ``texts`` (as often
    as they occur there, so mostly common ones; Chinese characters count as words) with numbers mixed in,
    written three times on three lines (two repeats to predict by copying, one run that cannot be)."""
    rng = random.Random(f"tinyllm-repeats:{seed}")
    words = [w for t in texts for w in re.findall(r"[A-Za-z']+|[\u4e00-\u9fff]", t)]
    if not words:
        raise ValueError("no words to draw from")
    docs = []
    for _ in range(n):
        run = [str(rng.randint(0, 999)) if rng.random() < 0.15 else rng.choice(words)
               for _ in range(rng.randint(8, 32))]
        line = "".join(w if _is_han(w) and i and _is_han(run[i - 1]) else f" {w}" if i else w
                       for i, w in enumerate(run))
        docs.append({"text": "\n".join([line] * 3)})
    return docs


def _is_han(word: str) -> bool:
    return "\u4e00" <= word[0] <= "\u9fff"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.lookup_drills", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="JSONL file (default: standard output)")
    args = p.parse_args(argv)
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in generate(args.n, args.seed))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(lines), encoding="utf-8")
    else:
        sys.stdout.writelines(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
