"""Offline text corpora from Debian packages: fortunes (Chinese and English) and WordNet glosses.

Nothing is downloaded: these read what ``apt-get install fortunes-zh fortunes fortunes-min wordnet-base``
put under ``/usr/share``. Every source is optional; a missing one is reported with the package that
provides it and the recipe goes on with what exists.

Output is JSONL with one ``{"text": ...}`` document per line (fortunes keep their internal blank lines,
which a blank-line-separated text file could not). Cleaning (colour codes, Unicode, duplicates) is the
data step's job, so its report accounts for these sources like any other.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from training.cleaning import ANSI_ESCAPE_RE

FORTUNE_DIRS = [Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes")]
WORDNET_DIRS = [Path("/usr/share/wordnet"), Path("/usr/share/wordnet-base")]
CHINESE_FORTUNES = {"chinese": "fortunes-zh", "tang300": "fortunes-zh", "song100": "fortunes-zh"}
# Collections that are pictures or tables rather than prose.
SKIP_FORTUNES = {"ascii-art"}
WORDNET_POS = {"noun": "n.", "verb": "v.", "adj": "adj.", "adv": "adv."}


@dataclass
class Source:
    name: str
    package: str
    files: list[Path]

    @property
    def available(self) -> bool:
        return bool(self.files)


def _fortune_dir() -> Path | None:
    return next((d for d in FORTUNE_DIRS if d.is_dir()), None)


def find_sources(fortune_dir: Path | None = None, wordnet_dir: Path | None = None) -> dict[str, Source]:
    """The three corpora and the files found for each (empty when the package is not installed)."""
    fdir = fortune_dir or _fortune_dir()
    zh, en = [], []
    if fdir is not None:
        for path in sorted(fdir.iterdir()):
            # Fortune databases are the files that have a strfile index (name.dat) beside them.
            if path.suffix or not path.is_file() or not path.with_name(path.name + ".dat").exists():
                continue
            if path.name in CHINESE_FORTUNES:
                zh.append(path)
            elif path.name not in SKIP_FORTUNES:
                en.append(path)
    wdir = wordnet_dir or next((d for d in WORDNET_DIRS if (d / "data.noun").exists()), None)
    wn = [wdir / f"data.{pos}" for pos in WORDNET_POS if wdir and (wdir / f"data.{pos}").exists()]
    return {
        "fortunes-zh": Source("fortunes-zh", "fortunes-zh", zh),
        "fortunes-en": Source("fortunes-en", "fortunes fortunes-min", en),
        "wordnet": Source("wordnet", "wordnet-base (apt-get install wordnet)", wn),
    }


def read_fortunes(path: Path) -> Iterator[str]:
    """The entries of a fortune database: text blocks separated by lines holding only ``%``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        entry = entry.strip("\n")
        if entry.strip():
            yield entry


@dataclass
class Gloss:
    words: list[str]
    pos: str
    definition: str
    examples: list[str]


def read_wordnet(path: Path) -> Iterator[Gloss]:
    """Synsets of a WordNet ``data.*`` file: ``offset lex ss_type w_cnt(hex) word lex_id ... | gloss``."""
    pos = WORDNET_POS.get(path.name.removeprefix("data."), "")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header lines start with two spaces
            head, gloss = line.rstrip("\n").split(" | ", 1)
            fields = head.split()
            n_words = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(n_words)]
            words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]  # adjective markers like "(a)"
            parts = [p.strip() for p in gloss.strip().split(";")]
            examples = [p.strip('"') for p in parts if p.startswith('"')]
            definition = "; ".join(p for p in parts if p and not p.startswith('"'))
            if definition:
                yield Gloss(words, pos, definition, examples)


def gloss_text(g: Gloss) -> str:
    """One line of readable English: ``apple (n.): fruit with red or yellow ... e.g. "..."``."""
    line = f"{', '.join(g.words[:3])} ({g.pos}): {g.definition}."
    if g.examples:
        line += " For example: " + "; ".join(f'"{e}"' for e in g.examples[:2]) + "."
    return line


def _write_jsonl(path: Path, texts: Iterator[str]) -> tuple[int, int]:
    n = chars = 0
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
            n += 1
            chars += len(t)
    return n, chars


def _subsample(items: list, limit: int | None, seed: int) -> list:
    """A seeded sample of at most ``limit`` items, in their original order."""
    if not limit or len(items) <= limit:
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def build_corpus(
    out_dir: str | Path,
    wordnet_max_synsets: int | None = None,
    glosses_per_doc: int = 12,
    seed: int = 0,
    sources: dict[str, Source] | None = None,
    max_fortunes: int | None = None,
) -> dict[str, dict]:
    """Write ``{out_dir}/{fortunes-zh,fortunes-en,wordnet}.jsonl`` for the sources that exist.

    Returns ``{name: {"path", "documents", "chars", "package"}}``, with ``"missing": true`` (and a message)
    for a source whose package is not installed. WordNet glosses are grouped a dozen per document, in
    file order (related senses sit together), optionally subsampled to ``wordnet_max_synsets``;
    ``max_fortunes`` caps the entries taken from each fortune source (small CI corpora).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = sources or find_sources()
    result: dict[str, dict] = {}
    for name, src in sources.items():
        if not src.available:
            result[name] = {
                "missing": True,
                "package": src.package,
                "message": f"{name}: not found; install it with `apt-get install {src.package.split(' (')[0]}`",
            }
            continue
        path = out / f"{name}.jsonl"
        if name == "wordnet":
            glosses = _subsample([g for f in src.files for g in read_wordnet(f)], wordnet_max_synsets, seed)
            docs = (
                "\n".join(gloss_text(g) for g in glosses[i : i + glosses_per_doc])
                for i in range(0, len(glosses), glosses_per_doc)
            )
            n, chars = _write_jsonl(path, docs)
        else:
            entries = _subsample([e for f in src.files for e in read_fortunes(f)], max_fortunes, seed)
            n, chars = _write_jsonl(path, iter(entries))
        result[name] = {
            "path": str(path),
            "documents": n,
            "chars": chars,
            "package": src.package,
            "files": len(src.files),
        }
    return result


def load_glosses(
    max_synsets: int | None = None, seed: int = 0, sources: dict[str, Source] | None = None
) -> list[Gloss]:
    """WordNet glosses for the chat generator's "what does X mean" examples ([] without WordNet)."""
    src = (sources or find_sources())["wordnet"]
    return _subsample([g for f in src.files for g in read_wordnet(f)], max_synsets, seed)


def load_fortune_entries(chinese: bool, sources: dict[str, Source] | None = None) -> list[str]:
    """Fortune entries (Chinese or English) with colour codes removed, for chat examples."""
    src = (sources or find_sources())["fortunes-zh" if chinese else "fortunes-en"]
    return [ANSI_ESCAPE_RE.sub("", e) for f in src.files for e in read_fortunes(f)]
