"""Where models given as GGUF files (``TINYLLM_MODEL=x.gguf``, ``tinyllm pull``) become checkpoint
directories: one imported directory per file under the cache directory, reused on later starts.

The cache directory is ``$TINYLLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinyllm``, else ``~/.cache/tinyllm``.
An import is written to a temporary directory and renamed into place, so two servers starting at once never
see a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from model.gguf_import import import_gguf


def default_cache_dir() -> Path:
    if os.environ.get("TINYLLM_CACHE_DIR"):
        return Path(os.environ["TINYLLM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyllm"


def imported_dir(gguf_file: Path, cache_dir: Path) -> Path:
    """The cache directory of one GGUF file: named after it, keyed by its path, size and modification time
    (a file replaced in place is imported again)."""
    stat = gguf_file.stat()
    key = hashlib.sha256(f"{gguf_file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir / "imported" / f"{gguf_file.stem}-{key}"


def resolve_model(model: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A checkpoint directory for ``model``: a directory as it is, a ``.gguf`` file imported (once) into the
    cache. Raises :class:`model.checkpoint.CheckpointError` (naming the file) when the import fails."""
    path = Path(model)
    if path.suffix.lower() != ".gguf" or not path.is_file():
        return path
    target = imported_dir(path, Path(cache_dir) if cache_dir else default_cache_dir())
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".importing-", dir=target.parent))
    try:
        import_gguf(path, staging)
        try:
            staging.rename(target)
        except OSError:  # another process imported it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
