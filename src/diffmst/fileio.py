"""Atomic file writes: a temp file in the target's folder, renamed when complete, so a
failure (or Ctrl-C) never leaves a partial output behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _new_temp(path: Path, suffix: str) -> Path:
    """Create an empty, unique file ``.<name>.<random><suffix>`` next to ``path``.

    Unlike ``tempfile.mkstemp`` (always mode 0600) it is created with mode 0666 and the
    process umask applied, as ``open(path, "w")`` would create ``path``: the renamed output
    gets the permissions of any other new file."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".part") -> Iterator[Path]:
    """Yield the path of a new empty temp file next to ``path`` for a writer that takes a
    file name (soundfile, matplotlib: give ``suffix`` the format's extension where the writer
    reads it); when the block ends normally the temp file replaces ``path``, on any error
    (or Ctrl-C) it is removed. Overwrites; callers check for existing files."""
    path = Path(path)
    tmp = _new_temp(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (overwrites; callers check for existing files)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return Path(path)
