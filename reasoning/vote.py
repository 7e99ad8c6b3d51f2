"""The self-consistency vote: the majority answer of k sampled chains, with a deterministic tie-break.

Apart from answer extraction (``reasoning.answers``) because it is a decision over samples, not a reading of
one text: the server's reasoning mode, the training eval and the benchmarks all call this one function, so
"the voted answer" means the same thing in each. Answers are compared by ``normalize_answer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from reasoning.answers import normalize_answer


@dataclass(frozen=True)
class VoteResult:
    answer: str | None  # the winner as first written (by the sample at winner_index); None: no answer at all
    key: str | None  # normalize_answer of the winner
    count: int  # samples voting for the winner
    agreement: float  # count / number of samples
    votes: list[tuple[str, int]] = field(default_factory=list)  # (display text, count), ranked
    winner_index: int = 0  # first sample that voted for the winner: its chain is the one to show
    checked: list[int] | None = None  # with ``eligible``: per entry of votes, the eligible samples' count


def vote(answers: list[str | None], eligible: Sequence[bool] | None = None) -> VoteResult:
    """Majority vote over extracted answers, compared by ``normalize_answer``.

    Ties go to the answer that appeared first in sample order. Sample 0 is the primary chain (the one a
    single-sample request would have produced, seeded with the request's own seed), so the tie-break keeps
    the result deterministic and makes "no agreement at all" fall back to what n=1 would answer.
    Missing answers (None/empty) never win; if no sample has one, the result has answer None, count 0 and
    winner_index 0.

    ``eligible`` (one flag per sample, e.g. "every arithmetic step of its chain holds",
    :func:`reasoning.step_check.false_steps`) makes it a checked vote: answers are ranked by their eligible
    votes first and all votes second. With every sample eligible, or none, it is the plain vote.
    """
    if not answers:
        raise ValueError("vote() needs at least one sample")
    if eligible is not None and len(eligible) != len(answers):
        raise ValueError("vote() needs one eligible flag per answer")
    counts: dict[str, int] = {}
    checked: dict[str, int] = {}
    first_index: dict[str, int] = {}
    for index, answer in enumerate(answers):
        key = normalize_answer(answer)
        if not key:
            continue
        counts[key] = counts.get(key, 0) + 1
        checked[key] = checked.get(key, 0) + bool(eligible is not None and eligible[index])
        first_index.setdefault(key, index)
    if not counts:
        return VoteResult(
            answer=None,
            key=None,
            count=0,
            agreement=0.0,
            votes=[],
            winner_index=0,
            checked=None if eligible is None else [],
        )
    ranked = sorted(counts, key=lambda k: (-checked[k], -counts[k], first_index[k]))
    winner = ranked[0]
    display = {k: (answers[first_index[k]] or "").strip() for k in ranked}
    return VoteResult(
        answer=display[winner],
        key=winner,
        count=counts[winner],
        agreement=counts[winner] / len(answers),
        votes=[(display[k], counts[k]) for k in ranked],
        winner_index=first_index[winner],
        checked=None if eligible is None else [checked[k] for k in ranked],
    )
