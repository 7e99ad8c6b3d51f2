"""Is a reasoning chain about the question it answers? Checks that need the question as well as the chain.

``model.step_check`` recomputes every step, so it catches slips ("140-49=101"). The commonest error of a
small model is different: a true computation on the wrong numbers. It copies a number wrongly ("363-399"
when the question says 259), invents one, drops one, or solves a problem of another kind (an ages question
answered "17x"). Every step holds, so only the question can tell. Four rules, each a finding:

* every operand of 20 or more is a number of the question or the result of an earlier step (single digits,
  carries and borrowed columns such as "13-9=4" are the column work of such numbers);
* every number the question writes in digits is an operand of some step (a chain that never touches 30
  has not used the "30 more");
* a variable in the answer ("17x") is a variable of the question;
* every result of 20 or more (of an operation on a number of 10 or more: single-digit products are column
  work) is used later in the chain, or is the answer, or comes from its last step: a chain that computes 85+30=115 and then doubles
  1309 has lost a bracket.

A chain with no steps at all (a chat reply) has no findings. On every verified chain of the generator
(``training.reasoning_data``, train and test, all kinds) there are none, which the tests check; on the
shipped checkpoint's wrong greedy chains of the hard stratum they flag most. The checked vote
(``model.answers.vote`` with ``eligible``; the server's ``check_steps``, the eval's ``checked@k``) ranks
the answers of chains with neither false steps nor findings first.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from model.answers import normalize_answer
from model.step_check import EQUATION_RE, chain_equations, false_steps

FREE_OPERAND_LIMIT = 20  # operands below this are column work (digits, carries, "13-9" borrows, "*10")

_THOUSANDS_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# An integer that is not part of a decimal ("2.5") or of a word ("A4").
_INTEGER = re.compile(r"(?<![\d.A-Za-z])\d+(?![\d]|\.\d)")
_LETTER_VARIABLE = re.compile(r"(?<![A-Za-z])([a-z])(?![A-Za-z])")


def question_numbers(question: str) -> list[int]:
    """The integers a question writes in digits, in order ("1,000" is one number; decimals are skipped)."""
    text = _THOUSANDS_SEP.sub("", unicodedata.normalize("NFKC", question))
    return [int(n) for n in _INTEGER.findall(text)]


def ungrounded(question: str, cot: str, answer: str | None) -> list[str]:
    """What ties the chain ``cot`` (and its ``answer``) to another question than ``question``; [] if nothing."""
    equations = chain_equations(cot)
    if not equations:
        return []
    given = set(question_numbers(question))
    findings: list[str] = []
    results: set[int] = set()
    operands: set[int] = set()
    for a, _op, b, c in equations:
        for x in (a, b):
            if not x.isdigit():
                continue
            value = int(x)
            operands.add(value)
            if value >= FREE_OPERAND_LIMIT and value not in given | results:
                message = f"uses {value}, neither a number of the question nor an earlier result"
                if message not in findings:
                    findings.append(message)
        if c.isdigit():
            results.add(int(c))
    findings += [f"never uses {n} from the question" for n in dict.fromkeys(question_numbers(question))
                 if n not in operands]
    question_variables = set(_LETTER_VARIABLE.findall(unicodedata.normalize("NFKC", question)))
    key = normalize_answer(answer)
    for variable in dict.fromkeys(_LETTER_VARIABLE.findall(key)):
        if variable not in question_variables:
            findings.append(f"answers in {variable}, which the question does not have")
    for m in list(EQUATION_RE.finditer(cot))[:-1]:  # the last result is the chain's answer
        a, _op, b, c = m.groups()
        if not c.isdigit() or int(c) < FREE_OPERAND_LIMIT or max(int(a), int(b)) < 10 or c == key:
            continue
        if not re.search(rf"(?<!\d){c}(?!\d)", cot[m.end():]):  # "14/27" uses the total 27 too
            findings.append(f"computes {m[0]} and never uses {c}")
    return findings


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
