"""Is a reasoning chain about the question it answers? Checks that need the question as well as the chain.

``reasoning.step_check`` recomputes every step, so it catches slips ("140-49=101"). The commonest error of a
small model is different: a true computation on the wrong numbers. It copies a number wrongly ("363-399"
when the question says 259), invents one, drops one, or solves a problem of another kind (an ages question
answered "17x"). Every step holds, so only the question can tell. Five rules, each a finding:

* every operand of 20 or more is a number of the question or the result of an earlier step (single digits,
  carries and borrowed columns such as "13-9=4" are the column work of such numbers);
* every number the question writes in digits is an operand of some step (a chain that never touches 30
  has not used the "30 more");
* a variable in the answer ("17x") is a variable of the question;
* every step's result is used by a later step (or in a fraction it writes), except the last step's: a chain
  that computes 85+30=115 and then doubles 1309 has lost a bracket. Column work is not a step of its own:
  "324+39: 4+9=13, 2+3+1=6, 3+0=3, so 324+39=363" is the one step 324+39=363;
* where the chain rewrites what is left of an expression after a step ("57+88=145, and the expression is
  now 49+(10-435/145)"), the rewrite is the expression before it with that step's operation replaced by its
  result, and the step after the last rewrite is all that is left: a chain that rewrites 90+(40-25)*2 as
  15+90*2 after 40-25=15 has moved a number, although every number it uses is the question's or a result.

A chain with no steps at all (a chat reply) has no findings. On every verified chain of the generator
(``training.reasoning_data``, train and test, all kinds) there are none, which the tests check; on the
shipped checkpoint's wrong greedy chains of the hard stratum they flag most. The checked vote
(``reasoning.vote.vote`` with ``eligible``; the server's ``check_steps``, the eval's ``checked@k``) ranks
the answers of chains with neither false steps nor findings first.

The phrases the rewrite and worked-operation rules read ("题目：", "the expression is now", "so 324+39=") are
read with the patterns of ``reasoning.chain_format``, the module the generator writes them with.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from dataclasses import dataclass

from reasoning.answers import normalize_answer
from reasoning.chain_format import EXPRESSION_COPY_RE, REWRITE_RE, WORKED_HEADER_RE, worked_end_re
from reasoning.expression_steps import after_step
from reasoning.step_check import EQUATION_RE, chain_equations, false_steps

FREE_OPERAND_LIMIT = 20  # operands below this are column work (digits, carries, "13-9" borrows, "*10")

_THOUSANDS_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# An integer that is not part of a decimal ("2.5") or of a word ("A4").
_INTEGER = re.compile(r"(?<![\d.A-Za-z])\d+(?![\d]|\.\d)")
_LETTER_VARIABLE = re.compile(r"(?<![A-Za-z])([a-z])(?![A-Za-z])")
_FRACTION = re.compile(r"(?<![\d.])(\d+)/(\d+)(?!\d)")


def question_numbers(question: str) -> list[int]:
    """The integers a question writes in digits, in order ("1,000" is one number; decimals are skipped)."""
    text = _THOUSANDS_SEP.sub("", unicodedata.normalize("NFKC", question))
    return [int(n) for n in _INTEGER.findall(text)]


def ungrounded(question: str, cot: str, answer: str | None) -> list[str]:
    """What ties the chain ``cot`` (and its ``answer``) to another question than ``question``; [] if nothing."""
    equations = chain_equations(cot)
    if not equations:
        return []
    given = question_numbers(question)
    steps = _top_level_steps(cot)
    return (
        _foreign_operands(equations, set(given))
        + _unused_question_numbers(equations, given)
        + _foreign_variables(question, answer)
        + _unused_results(cot, steps)
        + _bad_rewrites(cot, steps)
    )


def _foreign_operands(equations: list[tuple[str, str, str, str]], given: set[int]) -> list[str]:
    findings: list[str] = []
    results: set[int] = set()
    for a, _op, b, c in equations:
        for x in (a, b):
            if x.isdigit() and int(x) >= FREE_OPERAND_LIMIT and int(x) not in given | results:
                findings.append(f"uses {x}, neither a number of the question nor an earlier result")
        if c.isdigit():
            results.add(int(c))
    return list(dict.fromkeys(findings))


def _unused_question_numbers(equations: list[tuple[str, str, str, str]], given: list[int]) -> list[str]:
    operands = {int(x) for a, _op, b, _c in equations for x in (a, b) if x.isdigit()}
    return [f"never uses {n} from the question" for n in dict.fromkeys(given) if n not in operands]


def _foreign_variables(question: str, answer: str | None) -> list[str]:
    question_variables = set(_LETTER_VARIABLE.findall(unicodedata.normalize("NFKC", question)))
    return [
        f"answers in {v}, which the question does not have"
        for v in dict.fromkeys(_LETTER_VARIABLE.findall(normalize_answer(answer)))
        if v not in question_variables
    ]


def _unused_results(cot: str, steps: list[re.Match]) -> list[str]:
    findings = []
    for i, step in enumerate(steps[:-1]):  # the last result is the chain's answer
        used = {x for later in steps[i + 1 :] for x in (later[1], later[3])}
        used |= {n for fraction in _FRACTION.findall(cot, step.end()) for n in fraction}  # "14/27": total 27
        if step[4].isdigit() and step[4] not in used:
            findings.append(f"computes {step[0]} and never uses {step[4]}")
    return findings


def _tree(text: str) -> ast.expr | None:
    """The expression as a syntax tree (the text is digits, operators and brackets only, by the regex)."""
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError):
        return None


def _after_step(tree: ast.expr, step: re.Match) -> list[str]:
    """``tree`` with the operation that ``step`` ("a op b=c") did replaced by its result, once for each
    place it can be done; as ``ast.dump`` texts, which ignore brackets that change nothing."""
    a, op, b, c = step.groups()
    result = _tree(c)
    if result is None:
        return []
    return [ast.dump(done) for done in after_step(tree, a, op, b, result)]


def _bad_rewrites(cot: str, steps: list[re.Match]) -> list[str]:
    """Rewrites of the expression that do not follow from the one before and the step between them."""
    given, rewrites = EXPRESSION_COPY_RE.search(cot), list(REWRITE_RE.finditer(cot))
    current = _tree(given[1]) if given else None
    if current is None or not rewrites:
        return []
    findings: list[str] = []
    position, before = given.end(), given[1]
    for rewrite in [*rewrites, None]:
        end = rewrite.start() if rewrite else len(cot)
        between = [s for s in steps if position <= s.start() < end]
        if not between:
            findings.append(
                f"rewrites {before} with no step before it" if rewrite else f"leaves {before} undone"
            )
            break
        step = between[0] if rewrite is None else between[-1]
        if rewrite is None:  # the step after the last rewrite must finish what is left
            last = _tree(f"{step[1]}{step[2]}{step[3]}")
            if last is None or ast.dump(last) != ast.dump(current):
                findings.append(f"does {step[0]} when what is left is {before}")
            break
        after = _tree(rewrite[1])
        if after is None or ast.dump(after) not in _after_step(current, step):
            findings.append(f"rewrites {before} as {rewrite[1]} after {step[0]}")
        if after is None:
            break
        current, position, before = after, rewrite.end(), rewrite[1]
    return findings


def _top_level_steps(cot: str) -> list[re.Match]:
    """The chain's own steps, without the column work of a worked operation: "324+39: 4+9=13, 2+3+1=6,
    3+0=3, so 324+39=363" is one step, 324+39=363 (its columns are checked by ``false_steps``)."""
    spans: list[tuple[int, int]] = []
    for header in WORKED_HEADER_RE.finditer(cot):
        if spans and header.start() < spans[-1][1]:
            continue  # a partial product worked inside a long multiplication
        end = worked_end_re(*header.groups()).search(cot, header.end())
        if end:
            spans.append((header.end(), end.start()))
    return [m for m in EQUATION_RE.finditer(cot) if not any(a <= m.start() < b for a, b in spans)]


@dataclass(frozen=True)
class ChainCheck:
    false_steps: list[str]  # steps that do not hold ("48+154=212")
    ungrounded: list[str]  # findings of ``ungrounded``

    @property
    def ok(self) -> bool:
        return not self.false_steps and not self.ungrounded


def check_chain(question: str, cot: str, answer: str | None) -> ChainCheck:
    """Both checks of a sampled chain: its steps hold, and it works on the question's numbers."""
    return ChainCheck(false_steps(cot), ungrounded(question, cot, answer))
