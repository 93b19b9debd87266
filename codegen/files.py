"""Writing generated files atomically: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["remove_file", "write_atomic"]


def write_atomic(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` if its content differs.

    The text goes to a temporary file in the same folder, is flushed to disk, then
    renamed over the target (atomic on POSIX), so a scheduler parsing the folder never
    reads a partial file.

    Returns:
        Whether the file changed.
    """
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


def remove_file(path: Path) -> bool:
    """Remove a file if it exists.

    Returns:
        Whether a file was removed.
    """
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
