"""Writing files so that a failure never leaves a partial or corrupt file behind."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


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


#: the largest array a ``.npz`` we read may declare, in bytes (LeNet-5's largest weight is 192 KB in float32)
MAX_ARRAY_BYTES = 64 << 20


def npz_headers(path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of every array in the ``.npz`` at ``path``, read from the ``.npy`` headers
    inside the archive (a few hundred bytes each): no array data is decompressed or allocated.

    Raises ``ValueError`` naming the file (and the entry) when ``path`` is a directory, not a zip archive, holds
    something other than ``.npy`` arrays, or a header is unreadable; ``FileNotFoundError`` when it is missing.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a .npz file")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable .npz file (not a zip archive)")
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"{path}: entry {info.filename!r} is not a .npy array")
                name = info.filename[:-4]
                with archive.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in readers:
                        raise ValueError(f"{path}: entry {name!r} has .npy format version {version}, "
                                         f"expected 1.0 or 2.0")
                    shape, _, dtype = readers[version](f)
                headers[name] = (tuple(shape), np.dtype(dtype))
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: unreadable .npy header ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
        raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    return headers


def check_npz_array(path, name: str, shape, dtype, expected_shape=None, max_bytes: int = MAX_ARRAY_BYTES) -> None:
    """Refuse (``ValueError`` naming file and entry) an array header with a non-real dtype (object, string,
    bool, complex, structured), a shape other than ``expected_shape`` (when given) or more than ``max_bytes``."""
    if dtype.hasobject:
        raise ValueError(f"{path} is not a plain .npz file: {name!r} holds Python objects (dtype {dtype}), "
                         f"which only pickle could read")
    if dtype.kind not in "iuf":
        kind = "complex" if dtype.kind == "c" else "non-numeric"
        raise ValueError(f"{path}: {name!r} has {kind} dtype {dtype}; expected real numbers")
    if expected_shape is not None and tuple(shape) != tuple(expected_shape):
        raise ValueError(f"{path}: {name!r} has shape {tuple(shape)}, the model expects {tuple(expected_shape)}")
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > max_bytes:
        raise ValueError(f"{path}: {name!r} declares shape {tuple(shape)} ({size:,} bytes), more than the "
                         f"{max_bytes:,} bytes allowed")


def read_npz(path, headers) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` whose ``headers`` (:func:`npz_headers`) were checked, ``allow_pickle=False``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in headers}
    except ValueError as e:
        raise ValueError(f"{path} is not a plain .npz file: {e}") from None
    except Exception as e:  # zipfile.BadZipFile (bad CRC), OSError, EOFError ...
        raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
