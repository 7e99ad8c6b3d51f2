"""The documentation stays true: every relative link resolves, the README stays short, its module map and
the modules on disk match both ways, and its examples run against a real server serving the shipped
checkpoint (the Chinese README must carry the same examples and the same module map).

Examples to run are marked in the README with ``<!-- test: run -->`` on the line before their fence; they
are written for ``./scripts/serve.sh`` (``http://localhost:8000``, key ``sk-tinyllm-dev``), and the test
points them at its own server on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.support import LiveServer, run_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
DOC_FILES = [README, README_ZH, *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("model", "reasoning", "server", "training")
SHIPPED_CHECKPOINT = ROOT / "checkpoints" / "tinyllm-default"
README_MAX_LINES = 320
RUN_MARKER = "<!-- test: run -->"
MAP_START, MAP_END = "<!-- module-map:start -->", "<!-- module-map:end -->"
README_BASE_URL = "http://localhost:8000"
README_KEY = "sk-tinyllm-dev"
SETUP_COMMANDS = ("./scripts/serve.sh", "./scripts/test.sh")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")
MODULE_PATH = re.compile(r"`((?:" + "|".join(PACKAGES) + r")/[A-Za-z0-9_]+\.py)`")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks."""
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            yield line


def _fenced_blocks(text: str) -> list[tuple[str, str, bool]]:
    """``(language, body, marked to run)`` for every fenced block, in order."""
    blocks: list[tuple[str, str, bool]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            language = line[3:].strip()
            previous = next((p.strip() for p in reversed(lines[:i]) if p.strip()), "")
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((language, "\n".join(body) + "\n", previous == RUN_MARKER))
        i += 1
    return blocks


def _examples(path: Path) -> list[tuple[str, str]]:
    return [(language, body) for language, body, marked in _fenced_blocks(_read(path)) if marked]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose_lines(_read(path)):
        match = re.match(r"^#{1,6} (.+)$", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _module_map(path: Path) -> set[str]:
    text = _read(path)
    assert MAP_START in text and MAP_END in text, f"{path.name}: the module map's markers are missing"
    return set(MODULE_PATH.findall(text[text.index(MAP_START) : text.index(MAP_END)]))


def _modules_on_disk() -> set[str]:
    return {
        f"{package}/{file.name}"
        for package in PACKAGES
        for file in (ROOT / package).glob("*.py")
        if not (file.name.startswith("__") and file.name.endswith("__.py"))
    }


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    assert doc.is_file(), f"{doc.relative_to(ROOT)} is missing"
    broken = []
    for line in _prose_lines(_read(doc)):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (doc.parent / file_part).resolve() if file_part else doc
            if not resolved.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


def test_every_doc_links_back_to_the_readme() -> None:
    for doc in DOC_FILES[2:]:
        assert "](../README.md)" in _read(doc), f"{doc.relative_to(ROOT)} does not link back to the README"
    assert "](README.zh-CN.md)" in _read(README) and "](README.md)" in _read(README_ZH)


def test_readme_is_short() -> None:
    lines = len(_read(README).splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; details belong in docs/"


def test_module_map_matches_the_modules_on_disk() -> None:
    listed, on_disk = _module_map(README), _modules_on_disk()
    missing, stale = sorted(on_disk - listed), sorted(listed - on_disk)
    assert not (missing or stale), (
        f"README.md's module map is out of date: add {missing}; remove (or create) {stale}"
    )


def test_chinese_readme_has_the_same_module_map() -> None:
    assert _module_map(README_ZH) == _module_map(README)


def test_setup_commands_are_in_both_readmes() -> None:
    for doc in (README, README_ZH):
        bash = "".join(body for language, body, _ in _fenced_blocks(_read(doc)) if language == "bash")
        for command in SETUP_COMMANDS:
            assert re.search(rf"^{re.escape(command)}\b", bash, re.M), f"{doc.name} lacks `{command}`"
    for command in SETUP_COMMANDS:
        script = ROOT / command
        assert os.access(script, os.X_OK), f"{command} is not an executable file"
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_chinese_examples_are_the_english_ones() -> None:
    english = _examples(README)
    assert english, f"README.md marks no example with {RUN_MARKER}"
    assert _examples(README_ZH) == english


@pytest.fixture(scope="module")
def shipped_server() -> Iterator[LiveServer]:
    """The shipped checkpoint served as ``./scripts/serve.sh`` serves it (int8, model id ``tinyllm``)."""
    with run_server(
        SHIPPED_CHECKPOINT, served_model_name="tinyllm", api_keys=README_KEY, quantize="int8"
    ) as live:
        yield live


EXAMPLES = _examples(README)


@pytest.mark.parametrize(
    ("language", "body"), EXAMPLES, ids=[f"{i}-{language}" for i, (language, _) in enumerate(EXAMPLES)]
)
def test_readme_example_runs(language: str, body: str, shipped_server: LiveServer, tmp_path: Path) -> None:
    assert README_BASE_URL in body, f"the example does not use {README_BASE_URL}, which serve.sh serves"
    code = body.replace(README_BASE_URL, shipped_server.base_url)
    if language == "bash":
        if shutil.which("curl") is None and "curl " in code:
            if os.environ.get("CI"):
                pytest.fail("curl is not installed")
            pytest.skip("curl is not installed")
        argv = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "python":
        argv = [sys.executable, "-c", code]
    else:
        pytest.fail(f"no way to run a {language!r} example")
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"the example failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    if language == "bash":
        body_json = json.loads(out)
        assert body_json["object"] == "chat.completion", body_json
        assert isinstance(body_json["choices"][0]["message"]["content"], str)
        assert body_json["usage"]["completion_tokens"] > 0
    elif "reasoning_effort" in code:
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        assert {"chain", "answer", "votes"} <= fields.keys(), out
        agreement = float(re.search(r"agreement: ([0-9.]+)$", out, re.M).group(1))
        assert 0.0 <= agreement <= 1.0
        votes = re.findall(r"'count': (\d+)", fields["votes"])
        assert sum(map(int, votes)) == 5, f"reasoning_effort=medium should vote over 5 chains: {out}"
    else:
        assert out.strip(), "the streamed reply was empty"
