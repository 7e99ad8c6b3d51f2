"""The layers import only downwards, and the chain format's phrases are written in one module only.

``model/`` <- ``reasoning/`` <- ``server/``, ``training/`` (docs/DESIGN: a newcomer can read a lower layer
without the ones above it, and the runtime image need not carry training code). Read from the source with
``ast``, so a lazy import inside a function counts as much as one at the top.

The phrases of ``reasoning.chain_format.PHRASES`` are written by the generators and read by the checks; a
copy of one anywhere else (a generator's f-string, a checker's or a test's regex) could drift from the
format unnoticed, so none may appear in a string constant outside ``reasoning/chain_format.py``.
Docstrings are documentation, not format, and may quote chains.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from reasoning import chain_format

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "reasoning", "server", "training")
# What each layer must not import.
FORBIDDEN = {
    "model": {"reasoning", "server", "training"},
    "reasoning": {"server", "training"},
    "server": {"training"},
    "training": {"server"},
}
FORMAT_MODULE = ROOT / "reasoning" / "chain_format.py"
SCANNED = ("model", "reasoning", "server", "training", "benchmarks", "tests")
# Literals that contain a phrase but are not the chain format: the chain's "题目：" (``GIVEN``) is also a way
# users start a question (the paraphraser's prefixes, the calculator's question parsing). By file and phrase.
NOT_THE_FORMAT = {
    ("training/reasoning_paraphrase.py", chain_format.GIVEN["zh"]),
    ("tests/reasoning/test_calculator.py", chain_format.GIVEN["zh"]),
}


def python_files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def imported_packages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def layering_violations(package: str, files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, imported in imported_packages(tree):
            if imported in FORBIDDEN[package]:
                found.append(f"{path.relative_to(root).as_posix()}:{line} imports {imported}")
    return found


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the constants that are docstrings of the module, a class or a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def phrase_literals(path: Path, phrases: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """ "file:line phrase" for every string constant (f-string parts included) of ``path`` holding a phrase."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = docstring_nodes(tree)
    relative = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for phrase in phrases:
                if phrase in node.value and (relative, phrase) not in NOT_THE_FORMAT:
                    found.append(f"{relative}:{node.lineno} {phrase!r}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package: str) -> None:
    files = python_files(package)
    assert files
    assert layering_violations(package, files) == []


def test_the_import_check_sees_a_violation(tmp_path: Path) -> None:
    """The checks above can fail: an upward import, lazy or not, is reported."""
    bad = tmp_path / "model" / "probe.py"
    bad.parent.mkdir()
    bad.write_text(
        "import torch\nfrom model import config\n\ndef f():\n    from server.settings import Settings\n    import training.data\n"
    )
    assert layering_violations("model", [bad], tmp_path) == [
        "model/probe.py:5 imports server",
        "model/probe.py:6 imports training",
    ]


def test_phrases_are_taken_from_the_format_module() -> None:
    # Sanity of the list itself: non-empty, and the phrases the chain check reads are in it.
    assert chain_format.GIVEN["zh"] in chain_format.PHRASES
    assert chain_format.REWRITE["en"] in chain_format.PHRASES
    assert all(chain_format.PHRASES) and len(set(chain_format.PHRASES)) == len(chain_format.PHRASES)


def test_no_chain_phrase_is_written_outside_the_format_module() -> None:
    found = [
        hit
        for top in SCANNED
        for path in python_files(top)
        if path != FORMAT_MODULE
        for hit in phrase_literals(path, chain_format.PHRASES)
    ]
    assert found == []


def test_the_phrase_check_sees_a_violation(tmp_path: Path) -> None:
    """A phrase in a plain string or in an f-string's text is reported; in a docstring it is not."""
    probe = tmp_path / "training" / "probe.py"
    probe.parent.mkdir()
    rewrite, given = chain_format.REWRITE["zh"], chain_format.GIVEN["en"]
    probe.write_text(
        f'"""{rewrite} in a docstring is fine."""\n'
        f"A = {rewrite!r} + 'x'\n"
        f"def f(e):\n    return f'{given} {{e}}'\n",
        encoding="utf-8",
    )
    assert phrase_literals(probe, chain_format.PHRASES, tmp_path) == [
        f"training/probe.py:2 {rewrite!r}",
        f"training/probe.py:4 {given!r}",
    ]
