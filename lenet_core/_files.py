"""Writing files so that a failure never leaves a partial or corrupt file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, suffix: str, write, mode: str = "wb") -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file renamed into place once complete.

    ``path`` must end in ``suffix`` (``ValueError`` otherwise, before anything is written). The file
    gets the usual permissions (readable by everyone, ``0o644``); on any error the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"file must end in {suffix}, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
