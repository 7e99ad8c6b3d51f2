"""Text cleaning with an account of every document dropped or changed.

Cleaning is deliberately conservative: it repairs what is mechanical noise (terminal colour codes,
control characters, compatibility forms, Windows line ends) and drops what cannot be repaired
(empty, too short, too long, broken encoding, exact duplicates). Every decision is counted per reason
so a run can print and store a report of what happened to the data.

Unicode normalisation: plain NFKC folds full-width CJK punctuation (，？：（）) into ASCII. Chinese users
type the full-width forms and the server feeds their text to the model unnormalised, so training on
folded punctuation would teach the model a style nobody prompts it with. We therefore apply NFKC to
everything *except* the full-width punctuation of Chinese prose and the ellipsis; full-width digits,
Latin letters and operators (１２３, ＡＢＣ, ＋－＝) are still folded, which matters for arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The full-width punctuation of Chinese prose (！（），：；？～) and "…" are kept; full-width operators and
# symbols (＋－＝％／…) are folded to ASCII like digits, since arithmetic is written with ASCII operators.
_KEEP_CJK_PUNCT = re.compile("([\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f\uff5e\u2026]+)")
# ANSI CSI sequences (colours, cursor moves) as found in fortune files: ESC [ params letter. Also used by
# ``training.corpus`` for fortune entries, so the one pattern is defined here.
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Zero-width and format characters that carry no text (BOM, ZWSP, soft hyphen, bidi marks), but not
# ZWJ/ZWNJ which are meaningful inside emoji and some scripts.
_KEEP_FORMAT = {"\u200c", "\u200d"}
_MULTI_BLANK = re.compile(r"\n{3,}")
_TRAILING_WS = re.compile(r"[ \t]+\n")


def normalize_unicode(text: str, form: str = "nfkc-cjk") -> str:
    """Normalise ``text``; ``form`` is ``nfkc-cjk`` (default, see module doc), ``nfkc``, ``nfc`` or ``none``."""
    if form == "none":
        return text
    if form in ("nfc", "nfkc"):
        return unicodedata.normalize(form.upper(), text)
    if form != "nfkc-cjk":
        raise ValueError(f"unknown normalisation form {form!r}")
    parts = _KEEP_CJK_PUNCT.split(text)
    # split() with one capture group alternates: text, kept, text, kept, ...
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def strip_controls(text: str) -> tuple[str, int]:
    """Remove control and invisible format characters (keeping newline and tab); return (text, removed)."""
    out = []
    removed = 0
    for ch in text:
        if ch in "\n\t":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat == "Cc" or (cat == "Cf" and ch not in _KEEP_FORMAT) or cat == "Cs":
            removed += 1
            continue
        out.append(ch)
    return "".join(out), removed


@dataclass
class CleaningConfig:
    """Filters; lengths are in characters after cleaning."""

    min_chars: int = 1
    max_chars: int = 200_000
    unicode_form: str = "nfkc-cjk"
    dedup: bool = True


@dataclass
class CleaningReport:
    """Counts of what the cleaner saw, kept, dropped (per reason) and repaired (per kind)."""

    seen: int = 0
    kept: int = 0
    chars_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    per_source: dict[str, Counter] = field(default_factory=dict)

    def drop(self, reason: str, source: str = "") -> None:
        self.dropped[reason] += 1
        self.per_source.setdefault(source, Counter())[f"dropped:{reason}"] += 1

    def keep(self, chars: int, source: str = "") -> None:
        self.kept += 1
        self.chars_kept += chars
        self.per_source.setdefault(source, Counter())["kept"] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "kept": self.kept,
            "chars_kept": self.chars_kept,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            "repaired": dict(sorted(self.repaired.items())),
            "per_source": {k: dict(sorted(v.items())) for k, v in sorted(self.per_source.items())},
        }

    def summary(self) -> str:
        """A short human-readable table, printed by the data command."""
        lines = [
            f"cleaning: seen {self.seen}, kept {self.kept} ({self.chars_kept:,} chars), "
            f"dropped {sum(self.dropped.values())}"
        ]
        for reason, n in sorted(self.dropped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  dropped  {reason:<18} {n:>8}")
        for kind, n in sorted(self.repaired.items(), key=lambda kv: -kv[1]):
            lines.append(f"  repaired {kind:<18} {n:>8}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )


class TextCleaner:
    """Cleans texts one at a time, remembering hashes for exact-duplicate removal across calls."""

    def __init__(self, config: CleaningConfig | None = None, report: CleaningReport | None = None) -> None:
        self.config = config or CleaningConfig()
        self.report = report or CleaningReport()
        self._seen_hashes: set[bytes] = set()

    def clean_text(self, text: str) -> str:
        """Repairs only, no filtering (used for the fields of a record); repairs are counted."""
        text, kinds = self._repair(text)
        for kind in kinds:
            self.report.repaired[kind] += 1
        return text

    def _repair(self, text: str) -> tuple[str, list[str]]:
        kinds = []
        if "\x1b" in text:
            stripped = ANSI_ESCAPE_RE.sub("", text)
            if stripped != text:
                kinds.append("ansi_escapes")
                text = stripped
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            kinds.append("line_endings")
        normalized = normalize_unicode(text, self.config.unicode_form)
        if normalized != text:
            kinds.append("unicode_normalized")
            text = normalized
        text, removed = strip_controls(text)
        if removed:
            kinds.append("control_chars")
        tidy = _MULTI_BLANK.sub("\n\n", _TRAILING_WS.sub("\n", text)).strip()
        return tidy, kinds

    def is_duplicate(self, key: str) -> bool:
        """True if ``key`` was seen before (and remember it otherwise)."""
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
        if digest in self._seen_hashes:
            return True
        self._seen_hashes.add(digest)
        return False

    def __call__(self, text: str | bytes, source: str = "") -> str | None:
        """Return the cleaned document, or None if dropped (the reason is counted in the report)."""
        self.report.seen += 1
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                self.report.drop("invalid_utf8", source)
                return None
        if "\ufffd" in text:
            # A replacement character means an earlier stage already lost bytes: the text is damaged.
            self.report.drop("replacement_char", source)
            return None
        text, kinds = self._repair(text)
        for kind in kinds:
            self.report.repaired[kind] += 1
        reason = self.length_problem(len(text))
        if reason:
            self.report.drop(reason, source)
            return None
        if self.config.dedup and self.is_duplicate(text):
            self.report.drop("duplicate", source)
            return None
        self.report.keep(len(text), source)
        return text

    def length_problem(self, n_chars: int) -> str | None:
        if n_chars == 0:
            return "empty"
        if n_chars < self.config.min_chars:
            return "too_short"
        if n_chars > self.config.max_chars:
            return "too_long"
        return None
