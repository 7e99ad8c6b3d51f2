"""How a template list is built, and which of its templates the train split draws.

A template list is ``{"zh": [...], "en": [...], "train:zh": [...], "train:en": [...]}``. The LAST template
of each language is held out for the test split: train never uses it, so the eval also measures unseen
wording. ``train:zh`` / ``train:en`` are sentence structures that only the train split draws. The lists
are in ``training.reasoning_templates`` and ``training.word_templates``; ``reasoning_templates.TEMPLATE_LISTS``
holds them all, and ``reasoning_templates.uses_held_out_template`` recognises a held-out template's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence


def templates(
    zh: list[str], en: list[str], train_zh: Sequence[str] = (), train_en: Sequence[str] = ()
) -> dict[str, list[str]]:
    """A template list: each language's last template is the held-out one; ``train_zh`` / ``train_en`` are
    extra templates for the train split only."""
    return {"zh": zh, "en": en, "train:zh": list(train_zh), "train:en": list(train_en)}


def train_options(template_list: dict[str, list[str]], lang: str) -> list[str]:
    """The templates the train split draws from: all but the held-out last one, plus the train-only ones."""
    return template_list[lang][:-1] + template_list[f"train:{lang}"]
