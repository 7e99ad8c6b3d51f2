"""Response objects of reasoning mode (OpenAI extensions), apart from :mod:`server.protocol` to keep both
short: the top-level ``self_consistency`` object of a reasoning chat completion (and of its last chunk)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


def if_none(value: Any) -> bool:
    return value is None


class SelfConsistencyVote(BaseModel):
    answer: str | None  # as first written by a sample; None: the samples that gave no answer
    count: int
    checked: int | None = Field(None, exclude_if=if_none)  # check_steps: votes from chains that checked out


class SelfConsistencyChain(BaseModel):
    index: int
    reasoning_content: str
    content: str  # the sample's final text
    answer: str | None
    normalized_answer: str | None  # the voting key ("74", "3/5")
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int
    false_steps: list[str] | None = Field(None, exclude_if=if_none)  # check_steps: e.g. ["48+154=212"]
    ungrounded: list[str] | None = Field(None, exclude_if=if_none)  # check_steps: e.g. ["never uses 30 ..."]


class SelfConsistencyCalculator(BaseModel):
    expression: str  # the arithmetic found in the question
    value: str  # its exact value, as a voting key
    agrees: bool  # whether the voted answer has that value


class SelfConsistencyResult(BaseModel):
    """Extension object of a reasoning response: the vote over k sampled chains."""

    samples: int
    answer: str | None
    agreement: float  # votes for the answer / samples
    votes: list[SelfConsistencyVote]  # most votes first; the counts sum to samples
    winner_index: int  # the sample whose chain and final text the message carries
    arithmetic: str  # who wrote the chains' arithmetic results: "calculator" or "model"
    chains: list[SelfConsistencyChain] | None = Field(None, exclude_if=if_none)
    calculator: SelfConsistencyCalculator | None = Field(None, exclude_if=if_none)
