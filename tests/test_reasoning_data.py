"""training.reasoning_data: verified chains, both strata and languages, train/test disjoint by construction."""

import json
import re
from fractions import Fraction

import pytest

from model.answers import extract_answer, normalize_answer
from model.calculator import evaluate
from training import reasoning_data as rd
from training.reasoning_templates import uses_held_out_template

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
# own "so" is partial work: one operation of the problem, however many equations it writes.
WORKED_PARTS = re.compile(r"(\d+)([-+*])(\d+)[：:] ?.*?(?:所以|so )(?=\1\2\3=)")
# A column with a carry or borrow: "4+5+1=10", "8-1-1=6", "2*7+2=16".
COLUMN_RE = re.compile(r"(?<![\d)+\-*/.])(\d+)([-+*])(\d+)([-+])(\d+)=(\d+)(?!\d)")


def main_steps(cot: str) -> list[tuple[str, str, str, str]]:
    return STEP_RE.findall(WORKED_PARTS.sub("", cot))


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
        steps = STEP_RE.findall(cot) + [(a, "*", v, c + w) for a, v, c, w in
                                        re.findall(r"(\d+)\*([a-z])=(\d+)([a-z])", cot)]
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
    assert rd.structure_key("先算：3+4=7。再算：7*12=84。") == rd.structure_key("First: 4+3=7. Then: 12*7=84.")


def test_step_parser_reads_only_single_operations() -> None:
    assert rd.chain_equations("So 7*8-5=51. First, add: 3+4=7.") == [("3", "+", "4", "7")]
    assert rd.chain_equations("约分：6/10=3/5。一共是8个x：8*x=8x。") == [("6", "/", "10", "3/5"), ("8", "*", "x", "8x")]
    assert rd.equation_holds("6", "/", "10", "3/5") and not rd.equation_holds("6", "/", "10", "2/5")


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
    assert any("false column" in e for e in rd.verify_record({**record, "cot": broken}))
