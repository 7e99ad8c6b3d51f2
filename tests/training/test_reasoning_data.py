"""training.reasoning_data: verified chains, both strata and languages, train/test disjoint by construction."""

import json
import math
import re
from fractions import Fraction

import pytest

from reasoning import chain_format as cf
from reasoning.answers import extract_answer, normalize_answer
from reasoning.calculator import evaluate
from training import reasoning_data as rd
from training import reasoning_templates as wording
from training import word_templates
from training.reasoning_problems import Chain
from training.reasoning_templates import uses_held_out_template
from training.template_lists import train_options

# Our own reading of "a op b=c" steps, independent of the module's parser: any digits-op-digits=result
# that is not the tail of a longer expression.
STEP_RE = re.compile(r"(?<![\d)+\-*/.])(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+(?:/\d+)?)")
FIELDS = {"system", "user", "cot", "final", "answer", "lang", "stratum", "kind"}


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return rd.generate("train", 600, seed=0)


@pytest.fixture(scope="module")
def test_split() -> list[dict]:
    return rd.generate("test", 300, seed=0)


def test_every_record_verifies(train: list[dict], test_split: list[dict]) -> None:
    for record in train + test_split:
        assert set(record) == FIELDS
        assert rd.verify_record(record) == [], record
        assert normalize_answer(extract_answer(record["final"])) == record["answer"]
        assert record["answer"] == normalize_answer(record["answer"])  # answers are canonical keys


def test_verify_record_catches_broken_records(train: list[dict]) -> None:
    record = next(r for r in train if r["kind"] == "expression" and r["lang"] == "zh")
    wrong_answer = {**record, "answer": str(int(record["answer"]) + 1)}
    assert any("final" in e for e in rd.verify_record(wrong_answer))
    a, op, b, c = STEP_RE.findall(record["cot"])[0]
    false_step = {**record, "cot": record["cot"].replace(f"{a}{op}{b}={c}", f"{a}{op}{b}={int(c) + 1}", 1)}
    assert any("false step" in e for e in rd.verify_record(false_step))
    wrong_final = {**record, "final": "答案：0。"}
    assert rd.verify_record(wrong_final)
    equation = next(r for r in train if r["kind"] == "algebra" and "=" in r["user"])
    assert any("does not solve" in e for e in rd.verify_record({**equation, "answer": "1000"}))


# Worked operations: "48+154: 8+4=12, 4+5+1=10, 0+1+1=2, so 48+154=202" (columns) and long multiplication
# "44*91: 91*4: ..., so 91*4=364, 364*10=3640, ..., so 44*91=4004". Everything between the header and its
# own "so" is partial work: one operation of the problem, however many equations it writes. The phrases are
# read with the format module's patterns (``cf.WORKED_PARTS_RE``), so the test and the writers share them.
# A column with a carry or borrow: "4+5+1=10", "8-1-1=6", "2*7+2=16".
COLUMN_RE = re.compile(r"(?<![\d)+\-*/.])(\d+)([-+*])(\d+)([-+])(\d+)=(\d+)(?!\d)")

# A probability chain's reduction is one operation with its partial work too (``cf.REDUCTION_PARTS_RE``).


def main_steps(cot: str) -> list[tuple[str, str, str, str]]:
    return STEP_RE.findall(cf.REDUCTION_PARTS_RE.sub("", cf.WORKED_PARTS_RE.sub("", cot)))


def test_chain_steps_are_true_and_short(train: list[dict], test_split: list[dict]) -> None:
    for record in train + test_split:
        steps = STEP_RE.findall(record["cot"])
        symbolic = re.findall(r"(\d+)\*([a-z])=(\d+)([a-z])", record["cot"])
        assert steps or symbolic, record["cot"]
        for a, op, b, c in steps:
            assert evaluate(f"{a}{op}{b}") == Fraction(c), (a, op, b, c, record["cot"])
        for a, op, b, op2, d, c in COLUMN_RE.findall(record["cot"]):
            assert evaluate(f"{a}{op}{b}{op2}{d}") == Fraction(c), (a, op, b, op2, d, c, record["cot"])
        for a, var, coefficient, var2 in symbolic:
            assert (a, var) == (coefficient, var2)
        sentences = [s for s in re.split(r"(?<=[。.])\s*", record["cot"]) if s]
        assert 3 <= len(sentences) <= 8, record["cot"]
        assert len(main_steps(record["cot"])) + len(symbolic) <= 5


def test_expression_chains_rewrite_what_is_left_after_each_operation(
    train: list[dict], test_split: list[dict]
) -> None:
    rewritten = 0
    for record in train + test_split:
        if record["kind"] != "expression":
            continue
        copied = cf.EXPRESSION_COPY_RE.search(record["cot"])[1]
        rewrites = cf.REWRITE_RE.findall(record["cot"])
        n_ops = len(re.findall(r"[+\-*/]", copied))
        assert len(rewrites) == n_ops - 1, record["cot"]  # after every operation but the last
        for before, after in zip([copied, *rewrites], rewrites, strict=False):
            # one operation fewer each time, and the same value: the rewrite is the expression, partly done
            assert len(re.findall(r"[+\-*/]", after)) == len(re.findall(r"[+\-*/]", before)) - 1
            assert evaluate(after) == evaluate(before) == Fraction(record["answer"]), record["cot"]
        rewritten += bool(rewrites)
    assert rewritten >= 20


def test_strata_languages_and_kinds_present(train: list[dict], test_split: list[dict]) -> None:
    for records in (train, test_split):
        combos = {(r["stratum"], r["lang"], r["kind"]) for r in records}
        assert combos == {(s, lang, k) for s in rd.STRATA for lang in rd.LANGS for k in rd.KINDS}
    assert all(re.search(r"[\u4e00-\u9fff]", r["cot"] + r["final"]) for r in train if r["lang"] == "zh")
    assert not any(re.search(r"[\u4e00-\u9fff]", r["user"] + r["cot"]) for r in train if r["lang"] == "en")


def test_strata_differ_in_size(train: list[dict]) -> None:
    for record in train:
        operations = len(main_steps(record["cot"])) + record["cot"].count("*x=") + record["cot"].count("*y=")
        if record["kind"] == "expression":
            operands = [int(n) for n in re.findall(r"\d+", record["user"])]
            if record["stratum"] == "easy":
                assert 1 <= operations <= 2 and max(operands) <= 100
            else:
                assert 3 <= operations <= 4
        if record["kind"] != "probability":
            assert "/" not in record["answer"]  # integer results, division only when exact
        if record["kind"] == "probability":
            value = Fraction(record["answer"])
            assert 0 < value < 1 and record["answer"] == f"{value.numerator}/{value.denominator}"


def test_train_and_test_disjoint(train: list[dict], test_split: list[dict]) -> None:
    report = rd.assert_disjoint(train, test_split)
    assert report.ok and (report.train_records, report.test_records) == (600, 300)
    assert not {r["user"] for r in train} & {r["user"] for r in test_split}

    # Our own structure fingerprint: the set of steps, with + and * operands sorted.
    def fingerprint(cot: str) -> frozenset:
        steps = STEP_RE.findall(cot) + [
            (a, "*", v, c + w) for a, v, c, w in re.findall(r"(\d+)\*([a-z])=(\d+)([a-z])", cot)
        ]
        return frozenset((*sorted((a, b)), op, c) if op in "+*" else (a, b, op, c) for a, op, b, c in steps)

    assert not {fingerprint(r["cot"]) for r in train} & {fingerprint(r["cot"]) for r in test_split}
    assert all(rd.split_of(rd.structure_key(r["cot"])) == "train" for r in train)
    assert all(rd.split_of(rd.structure_key(r["cot"])) == "test" for r in test_split)


def test_held_out_templates_only_in_test(train: list[dict], test_split: list[dict]) -> None:
    assert not any(uses_held_out_template(r["user"], r["lang"]) for r in train)
    held_out = sum(uses_held_out_template(r["user"], r["lang"]) for r in test_split)
    assert 0.05 * len(test_split) < held_out < 0.6 * len(test_split)


def test_disjointness_report_detects_overlap(train: list[dict]) -> None:
    report = rd.disjointness_report(train[:50], train[40:60])
    assert not report.ok and report.shared_prompts == 10 and report.misplaced > 0
    with pytest.raises(AssertionError):
        rd.assert_disjoint(train[:50], train[40:60])


def test_split_rule_is_a_stable_hash_partition() -> None:
    keys = [f"{a}+{b}={a + b}" for a in range(60) for b in range(a, 60)]
    in_test = sum(rd.split_of(k) == "test" for k in keys)
    assert 0.15 < in_test / len(keys) < 0.25
    assert [rd.split_of(k) for k in keys[:50]] == [rd.split_of(k) for k in keys[:50]]
    assert rd.structure_key("先算：3+4=7。再算：7*12=84。") == rd.structure_key(
        "First: 4+3=7. Then: 12*7=84."
    )


def test_deterministic_by_seed() -> None:
    first = rd.generate("train", 40, seed=7, strata=("hard",), langs=("en",))
    assert first == rd.generate("train", 40, seed=7, strata=("hard",), langs=("en",))
    assert first != rd.generate("train", 40, seed=8, strata=("hard",), langs=("en",))
    assert {(r["stratum"], r["lang"]) for r in first} == {("hard", "en")}


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        rd.generate("validation", 1, seed=0)
    with pytest.raises(ValueError):
        rd.generate("train", 1, seed=0, langs=("fr",))


def test_cli_writes_jsonl(tmp_path) -> None:
    out = tmp_path / "data" / "reasoning_test.jsonl"
    assert rd.main(["--split", "test", "--n", "12", "--seed", "3", "--out", str(out), "--langs", "zh"]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records == rd.generate("test", 12, seed=3, langs=("zh",))
    with pytest.raises(SystemExit) as exc:
        rd.main(["--help"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        rd.main(["--split", "train", "--n", "1", "--strata", "medium"])
    assert exc.value.code == 2


def test_columns_spell_the_result_digit_by_digit() -> None:
    """Read back as on paper: the last column's value, then each earlier column's units digit."""
    from training.reasoning_problems import column_steps

    rng = __import__("random").Random(0)
    cases = [(48, "+", 154), (100, "-", 37), (154, "-", 148), (23, "*", 7), (7, "*", 99), (9999, "+", 1)]
    cases += [(rng.randint(10, 5000), rng.choice("+-"), rng.randint(0, 5000)) for _ in range(300)]
    cases += [(rng.randint(10, 999), "*", rng.randint(2, 9)) for _ in range(100)]
    for a, op, b in cases:
        if op == "-" and b > a:
            a, b = b, a
        values = [int(step.split("=")[1]) for step in column_steps(a, op, b)]
        for step in column_steps(a, op, b):
            left, right = step.split("=")
            assert evaluate(left) == int(right), (a, op, b, step)
        digits = str(values[-1]) + "".join(str(v % 10) for v in reversed(values[:-1]))
        assert int(digits) == evaluate(f"{a}{op}{b}"), (a, op, b, column_steps(a, op, b))


def test_verify_record_catches_a_false_column(train: list[dict]) -> None:
    record = next(r for r in train if COLUMN_RE.search(r["cot"]))
    a, op, b, op2, d, c = COLUMN_RE.findall(record["cot"])[0]
    broken = record["cot"].replace(f"{a}{op}{b}{op2}{d}={c}", f"{a}{op}{b}{op2}{d}={int(c) + 1}", 1)
    assert f"false step {a}{op}{b}{op2}{d}={int(c) + 1}" in rd.verify_record({**record, "cot": broken})


# ---------------------------------------------------------------- probability chains


@pytest.fixture(scope="module")
def probability_records() -> list[dict]:
    return rd.generate("train", 300, seed=5, kinds=("probability",)) + rd.generate(
        "test", 100, seed=5, kinds=("probability",)
    )


def _restated(record: dict) -> list[tuple[str, int, tuple[str, str, str, str] | None]]:
    """The first sentence's (colour, count, object): "红色球3个，蓝色球2个" / "Counts: red 3, blue 2"."""
    first = re.split(r"(?<=[。.])\s*", record["cot"])[0]
    if record["lang"] == "en":
        assert first.startswith(cf.COUNTS["en"] + " "), first
        return [(c, int(n), None) for c, n in re.findall(r"([a-z]+) (\d+)", first)]
    found = []
    for part in first.rstrip("。").split("，"):
        colour, obj = next(
            (c[0], o)
            for c in wording.COLOURS
            for o in wording.DRAW_OBJECTS
            if re.fullmatch(rf"{c[0]}{o[0]}\d+{o[1]}", part)
        )
        found.append((colour, int(re.search(r"\d+", part)[0]), obj))
    return found


def _count_in_question(user: str, lang: str, colour: str, n: int, obj: tuple | None) -> int:
    """Where the question gives ``n`` (digits or a number word) next to ``colour``; -1 when it does not."""
    if lang == "en":
        m = re.search(rf"(?<![\w])(?:{n}|{wording.EN_NUMBERS[n] if n <= 10 else n}) {colour}\b", user)
    else:
        number = rf"(?<!\d)(?:{n}|{wording.ZH_NUMBERS[n] if n <= 10 else n})(?!\d)"
        m = re.search(rf"{number}{obj[1]}{colour}{obj[0]}|{colour}{obj[0]}有?{number}{obj[1]}", user)
    return m.start() if m else -1


def _assert_checks_colours_in_turn(record: dict, restated: list) -> None:
    """An easy chain names the asked colour (the one the question asks about: it names it twice), then
    checks the restated colours in order, each with its own count, until the asked one, whose count is
    the favourable count; no colour's count is looked up out of order."""
    cot, lang = record["cot"], record["lang"]
    asked, items = cf.COLOUR_CHECKS_RE[lang].search(cot).groups()
    names = [c for c, _, _ in restated]
    question_words = re.findall(r"[a-z]+", record["user"]) if lang == "en" else None
    for colour in names:
        times = question_words.count(colour) if lang == "en" else record["user"].count(colour)
        assert times == (2 if colour == asked else 1), (record["user"], asked)
    checked = cf.COLOUR_CHECK_RE[lang].findall(items)
    assert len(checked) == names.index(asked) + 1, cot
    for (colour, count, other, same, favourable), (want_colour, want_count, _) in zip(
        checked, restated[: len(checked)], strict=True
    ):
        assert (colour, int(count)) == (want_colour, want_count), cot
        if colour == asked:
            assert (other, same, int(favourable)) == ("", asked, want_count), cot
        else:
            assert (other, same, favourable) == (asked, "", ""), cot
    fraction = cf.PROBABILITY_RE.search(cot)[1]
    assert int(fraction) == dict((c, n) for c, n, _ in restated)[asked]


def test_probability_chains_restate_every_colour_and_reduce_by_gcd(probability_records: list[dict]) -> None:
    reduced = irreducible = 0
    for record in probability_records:
        cot, lang = record["cot"], record["lang"]
        restated = _restated(record)
        assert len(restated) == (2 if record["stratum"] == "easy" else 3), cot
        # Every colour with the count the question gives it, in the question's order.
        positions = [_count_in_question(record["user"], lang, c, n, obj) for c, n, obj in restated]
        assert -1 not in positions and positions == sorted(positions), (record["user"], cot)
        # The total adds exactly the restated counts.
        counts = [n for _, n, _ in restated]
        steps = main_steps(cot)
        assert steps[0][:3] == (str(counts[0]), "+", str(counts[1])), cot
        if len(counts) == 3:
            assert steps[1][:3] == (steps[0][3], "+", str(counts[2])), cot
        else:
            _assert_checks_colours_in_turn(record, restated)
        f, t = map(int, cf.PROBABILITY_RE.search(cot).groups())
        g = math.gcd(f, t)
        assert record["answer"] == f"{f // g}/{t // g}" and t == sum(counts)
        a, b = f // g, t // g
        if g > 1:
            reduced += 1
            sentence = cf.reduction(lang, f, t, g, f"{f}/{g}={a}", f"{t}/{g}={b}", f"{a}/{b}")
            assert sentence + ("。" if lang == "zh" else ".") in cot, cot
        else:
            irreducible += 1
            assert cf.irreducible(lang, f, t) + ("。" if lang == "zh" else ".") in cot, cot
        assert rd.verify_record(record) == []
    assert reduced > 50 and irreducible > 50
    assert {(r["stratum"], r["lang"]) for r in probability_records} == {
        (s, lang) for s in rd.STRATA for lang in rd.LANGS
    }


def _probability_record(lang: str, reduction: str, answer: str) -> dict:
    """Seven red and five blue: 7/12, which cannot be reduced; ``reduction`` is the chain's last sentence
    (written through the format module; "" for none)."""
    ch = Chain(lang)
    red, blue = ("红色", "蓝色") if lang == "zh" else ("red", "blue")
    ch.write(cf.counts(lang, [red, blue], [7, 5], "球", "个"))
    eq = ch.op(7, "+", 5)[1]
    ch.say(f"总数：{eq}", f"Total: {eq}")
    ch.write(cf.colour_checks(lang, red, [red], [7], "个"))
    ch.write(cf.probability(lang, "个", "ball", 7, 12))
    if reduction:
        ch.write(reduction)
    user = (
        "盒子里有7个红色球和5个蓝色球，随机取一个，取到红色球的概率是多少？"
        if lang == "zh"
        else "A box contains 7 red balls and 5 blue balls. One is picked at random. "
        "What is the probability that it is red?"
    )
    return {
        "system": wording.SYSTEMS[lang][0],
        "user": user,
        "cot": ch.text(),
        "final": cf.final(lang, answer),
        "answer": answer,
        "lang": lang,
        "stratum": "easy",
        "kind": "probability",
    }


def test_verify_record_rejects_bogus_reductions(probability_records: list[dict]) -> None:
    assert rd.verify_record(_probability_record("zh", cf.irreducible("zh", 7, 12), "7/12")) == []
    assert rd.verify_record(_probability_record("en", cf.irreducible("en", 7, 12), "7/12")) == []
    # The model's error: "reducing" an irreducible fraction with a bogus step.
    bogus = rd.verify_record(
        _probability_record("zh", cf.reduction("zh", 7, 12, 2, "7/2=3", "12/2=6", "1/2"), "1/2")
    )
    assert "false step 7/2=3" in bogus and "false step 7/12=1/2" in bogus
    assert any("greatest common factor is 1" in e for e in bogus)
    bogus = rd.verify_record(
        _probability_record("en", cf.reduction("en", 7, 12, 2, "7/2=3", "12/2=6", "1/2"), "1/2")
    )
    assert "false step 7/2=3" in bogus and any("greatest common factor" in e for e in bogus)
    # A bare claim without the division, and no verdict at all.
    bare = _probability_record("zh", cf.REDUCE["zh"] + "7/12=1/2", "1/2")
    assert "malformed reduction step" in rd.verify_record(bare)
    assert any("one reduction verdict" in e for e in rd.verify_record(_probability_record("zh", "", "7/12")))

    record = next(r for r in probability_records if cf.REDUCTION_RE["zh"].search(r["cot"]))
    reduction = cf.REDUCTION_RE["zh"].search(record["cot"])
    f, t, g = map(int, reduction.groups()[:3])
    sentence = reduction[0] + "。"
    a, b = f // g, t // g
    # A wrong result, every division true: caught as a false step.
    wrong = cf.reduction("zh", f, t, g, f"{f}/{g}={a}", f"{t}/{g}={b}", f"{a + 1}/{b}") + "。"
    errors = rd.verify_record({**record, "cot": record["cot"].replace(sentence, wrong)})
    assert f"false step {f}/{t}={a + 1}/{b}" in errors
    # Saying a reducible fraction is in lowest terms.
    claim = cf.irreducible("zh", f, t) + "。"
    errors = rd.verify_record({**record, "cot": record["cot"].replace(sentence, claim)})
    assert any("said to be in lowest terms" in e for e in errors)
    # Dividing by a common factor that is not the greatest: true equations, not in lowest terms.
    reduction = next(
        m
        for r in probability_records
        for m in [cf.REDUCTION_RE["en"].search(r["cot"])]
        if m and int(m[1]) in (4, 6, 8, 9, 10)
    )
    record = next(r for r in probability_records if reduction[0] in r["cot"])
    g, f, t = int(reduction[1]), int(reduction[2]), int(reduction[5])
    d = next(d for d in range(2, g) if g % d == 0)
    sentence = reduction[0] + "."
    partial = (
        cf.reduction("en", f, t, d, f"{f}/{d}={f // d}", f"{t}/{d}={t // d}", f"{f // d}/{t // d}") + "."
    )
    errors = rd.verify_record({**record, "cot": record["cot"].replace(sentence, partial)})
    assert not any("false step" in e for e in errors)
    assert any(f"greatest common factor is {g}" in e for e in errors)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.DOTALL)


def _lists_with_train_only() -> list[dict[str, list[str]]]:
    return [tl for tl in wording.TEMPLATE_LISTS if tl["train:zh"] or tl["train:en"]]


def test_every_template_list_is_in_the_held_out_registry() -> None:
    """A list missing from TEMPLATE_LISTS would have its held-out template go unrecognised in train data."""
    defined = [
        v
        for module in (wording, word_templates)
        for v in vars(module).values()
        if isinstance(v, dict) and set(v) == {"zh", "en", "train:zh", "train:en"}
    ]
    assert all(any(tl is d for tl in wording.TEMPLATE_LISTS) for d in defined)
    assert len(wording.TEMPLATE_LISTS) == len(defined)


def test_train_only_templates_reach_train_and_never_test(train: list[dict], test_split: list[dict]) -> None:
    """The extra sentence structures are drawn for train (unparaphrased prompts show them verbatim) and
    never for test, whose prompts all come from the original lists (held-out one included)."""
    lists = _lists_with_train_only()
    train_only = [_template_regex(t) for tl in lists for lang in ("zh", "en") for t in tl[f"train:{lang}"]]
    assert len(train_only) >= 60
    assert not any(p.fullmatch(r["user"]) for r in test_split for p in train_only)
    assert sum(any(p.fullmatch(r["user"]) for p in train_only) for r in train) > 0.05 * len(train)
    for tl in lists:
        for lang in ("zh", "en"):
            options = train_options(tl, lang)
            assert tl[lang][-1] not in options and set(tl[f"train:{lang}"]) <= set(options)


def test_train_only_templates_never_match_a_held_out_template() -> None:
    """Each extra template, filled with placeholder values, is not something a held-out template writes."""
    lists = _lists_with_train_only()
    for tl in lists:
        for lang in ("zh", "en"):
            for template in tl[f"train:{lang}"]:
                filled = re.sub(r"\{\w+\}", "7", template)
                assert not uses_held_out_template(filled, lang), template
