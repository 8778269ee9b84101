"""Reading and writing files so that a hostile file costs one line, and a failure never leaves a partial
or corrupt file behind.

Reading: :func:`open_regular` opens only regular files (a FIFO, a device, a socket or a directory is
refused at once, without blocking); :func:`read_json` reads a JSON file through it, bounded in size
and nesting; :func:`npz_headers` bounds a ``.npz`` archive by its size on disk,
its number of entries and the total of its entries' declared sizes before anything is decompressed.
Writing: :func:`atomic_write` writes a temporary file, ``fsync``\\ s it, renames it into place and
``fsync``\\ s the folder, so a crash or a full disk leaves either the old file or the new one.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["open_regular", "file_kind", "atomic_write", "fsync_folder", "parse_json", "read_json", "npz_headers",
           "check_npz_array", "read_npz", "MAX_ARRAY_BYTES", "MAX_NPZ_BYTES", "MAX_NPZ_ENTRIES", "MAX_JSON_BYTES"]


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, for messages: ``"a directory"``, ``"a FIFO (named pipe)"``, ..."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path, max_bytes: int | None = None):
    """Open ``path`` for reading in binary mode if it is a regular file (symlinks followed).

    A FIFO, device, socket or directory raises ``ValueError`` naming the file and what it is, at once
    (the file is opened non-blocking, so a FIFO without a writer cannot hang the reader); a file larger
    than ``max_bytes`` raises ``ValueError`` too. A missing file raises ``FileNotFoundError``; other
    ``OSError`` (permissions, ...) pass through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENXIO:                             # a socket, or a FIFO opened for writing
            raise ValueError(f"{path}: is {file_kind(os.stat(path).st_mode)}, not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: is {file_kind(info.st_mode)}, not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ValueError(f"{path}: {info.st_size:,} bytes, more than the {max_bytes:,} bytes such a file "
                             f"can need")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


#: the largest JSON file we read (a training history, a result record): a history of 1,000 epochs is
#: about 150 KB
MAX_JSON_BYTES = 16 << 20


def parse_json(data: bytes, parse_constant=None):
    """``json.loads`` of UTF-8 ``data``; every failure (not UTF-8, not JSON, nested too deeply for the
    parser) is a ``ValueError`` with a short reason, never a traceback of another kind. ``parse_constant``
    as in :func:`json.loads` (called for ``NaN``, ``Infinity``, ``-Infinity``)."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=parse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte {e.start})") from None


def read_json(path, max_bytes: int = MAX_JSON_BYTES, parse_constant=None):
    """The JSON value in the file ``path``, read through :func:`open_regular` (a regular file of at most
    ``max_bytes``). ``ValueError`` naming the file when it is not a regular file, too large or not
    readable JSON (:func:`parse_json`); ``FileNotFoundError`` naming it when it is missing."""
    try:
        with open_regular(path, max_bytes) as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{path} does not exist", str(path)) from None
    try:
        return parse_json(data, parse_constant)
    except ValueError as e:
        raise ValueError(f"{path}: not readable JSON ({e})") from None


def fsync_folder(folder) -> None:
    """Make a rename in ``folder`` durable (where the platform lets a folder be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write(path, suffix: str, write, mode: str = "wb") -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file renamed into place once complete.

    ``path`` must end in ``suffix`` (``ValueError`` otherwise, before anything is written). The
    temporary file is flushed and ``fsync``\\ ed before the rename and the folder after it, so the new
    file survives a crash once this returns. It gets the usual permissions (``0o644``). On any error
    the temporary file is removed and ``path`` is left as it was; an ``OSError`` (a full disk, a folder
    that disappeared, ...) is raised again with ``filename`` set to ``path``.
    """
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"file must end in {suffix}, got {path}")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
        fsync_folder(path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


#: the largest array a ``.npz`` we read may declare, in bytes (LeNet-5's largest weight is 192 KB in float32)
MAX_ARRAY_BYTES = 64 << 20
#: the most a ``.npz`` we read may hold, on disk and in its entries' declared sizes together: LeNet-5's
#: weights are 0.25 MB in float32, a checkpoint with Adam's two buffers in float64 under 2 MB
MAX_NPZ_BYTES = 16 << 20
#: the most entries a ``.npz`` we read may have (a checkpoint of the 1998 model has about 60)
MAX_NPZ_ENTRIES = 512


def npz_headers(path, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of every array in the ``.npz`` at ``path``, read from the ``.npy`` headers
    inside the archive (a few hundred bytes each): no array data is decompressed or allocated.

    Bounded before anything is decompressed: the file must be a regular file of at most ``max_bytes``,
    with at most :data:`MAX_NPZ_ENTRIES` distinct entries whose declared sizes add up to at most
    ``max_bytes``, and each entry's declared size must be exactly its ``.npy`` header plus the array its
    header declares (so reading the arrays later reads no more than the headers say).

    Raises ``ValueError`` naming the file (and the entry) when ``path`` is not a regular file, not a zip
    archive, holds something other than ``.npy`` arrays, is too large, or a header is unreadable;
    ``FileNotFoundError`` when it is missing.
    """
    path = Path(path)
    try:
        f = open_regular(path, max_bytes)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except ValueError as e:
        if os.path.isdir(path):
            raise ValueError(f"{path} is a directory, not a .npz file") from None
        raise ValueError(f"{e} (expected a .npz file)") from None
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    headers = {}
    with f:
        if not zipfile.is_zipfile(f):
            raise ValueError(f"{path} is not a readable .npz file (not a zip archive)")
        try:
            with zipfile.ZipFile(f) as archive:
                infos = archive.infolist()
                names = [info.filename for info in infos]
                if len(infos) > MAX_NPZ_ENTRIES or len(set(names)) != len(names):
                    raise ValueError(f"{path}: {len(infos):,} entries ({len(set(names)):,} distinct names), "
                                     f"not a .npz written by lenet_core")
                declared = sum(info.file_size for info in infos)
                if declared > max_bytes:
                    raise ValueError(f"{path}: its entries declare {declared:,} bytes uncompressed, more than "
                                     f"the {max_bytes:,} bytes such a file can need")
                for info in infos:
                    if not info.filename.endswith(".npy"):
                        raise ValueError(f"{path}: entry {info.filename!r} is not a .npy array")
                    name = info.filename[:-4]
                    with archive.open(info) as member:
                        version = np.lib.format.read_magic(member)
                        if version not in readers:
                            raise ValueError(f"{path}: entry {name!r} has .npy format version {version}, "
                                             f"expected 1.0 or 2.0")
                        shape, _, dtype = readers[version](member)
                        header_bytes = member.tell()
                    dtype = np.dtype(dtype)
                    data = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    if not dtype.hasobject and info.file_size != header_bytes + data:
                        raise ValueError(f"{path}: entry {name!r} declares {info.file_size:,} bytes, but its "
                                         f"header says {header_bytes + data:,}")
                    headers[name] = (tuple(shape), dtype)
        except ValueError as e:
            if str(e).startswith(str(path)):
                raise
            raise ValueError(f"{path}: unreadable .npy header ({e})") from None
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as e:
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
    """The arrays of a ``.npz`` whose ``headers`` (:func:`npz_headers`) were checked, ``allow_pickle=False``;
    the file is opened again as a regular file (no FIFO or device can have taken its place)."""
    try:
        with open_regular(path, MAX_NPZ_BYTES) as f, np.load(f, allow_pickle=False) as archive:
            if sorted(archive.files) != sorted(headers):
                raise ValueError(f"{path} changed while it was read")
            return {name: archive[name] for name in headers}
    except ValueError as e:
        message = str(e)
        raise ValueError(message if message.startswith(str(path)) else
                         f"{path} is not a plain .npz file: {e}") from None
    except Exception as e:  # zipfile.BadZipFile (bad CRC), OSError, EOFError ...
        raise ValueError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})") from None
