"""MNIST from its four IDX files, and the preprocessing LeNet-5 needs.

Where the files are looked for, in order (the first place that has a file wins, per file):

1. ``root``, if given;
2. the directory in the environment variable ``LENET_MNIST_DIR`` (CI sets it to ``../shared/mnist``);
3. the user cache, ``$XDG_CACHE_HOME/lenet_core/mnist`` (default ``~/.cache/lenet_core/mnist``);
4. otherwise the file is downloaded from the mirrors in :data:`MIRRORS` (or the comma-separated URLs
   in ``$LENET_MNIST_MIRRORS``), one after another, into ``root`` (or the cache), through a temporary
   file that is renamed into place only after its md5 matches the canonical checksum.

An explicit ``root`` or ``$LENET_MNIST_DIR`` must be an existing folder: a misspelled one is an error,
never a download (and is never created). A directory or a dangling symlink where a file should be, an
unreadable file, or a cache that cannot be written is an error too. A file that is found but corrupt
(wrong md5, truncated, wrong magic number, ...) raises :class:`MNISTError` naming the file and the
problem; nothing on disk is changed.

Downloads show a progress bar and give up on a mirror when no byte arrives for ``stall`` seconds
(``$LENET_DOWNLOAD_STALL``, default 30) and on a file when its download has taken ``deadline``
seconds over all mirrors (``$LENET_DOWNLOAD_DEADLINE``, default 600), so a server that trickles bytes
cannot hang the loader.

IDX format (big-endian): two zero bytes, a type code (``0x08`` = unsigned byte), the number of
dimensions, then one 4-byte size per dimension, then the data in C order. The magic number of the
image files is therefore ``0x00000803`` (3 dimensions) and of the label files ``0x00000801``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["MNIST", "MNISTError", "FILES", "MIRRORS", "ENV_VAR", "load_mnist", "load_idx", "find_mnist_file",
           "download", "cache_dir", "normalize", "pad", "prepare", "one_hot", "batches", "split_validation",
           "VALIDATION_SIZE", "MNIST_MEAN", "MNIST_STD"]

ENV_VAR = "LENET_MNIST_DIR"
#: environment variables: comma-separated mirror URLs; seconds without a byte; seconds per file overall
MIRRORS_VAR, STALL_VAR, DEADLINE_VAR = "LENET_MNIST_MIRRORS", "LENET_DOWNLOAD_STALL", "LENET_DOWNLOAD_DEADLINE"

#: canonical file names and md5 checksums of the gzipped files
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

#: public mirrors tried in order (the original site is last: it is often slow or refuses bots)
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: images held out of the 60,000 training images to tune on (the test set is read once per reported model)
VALIDATION_SIZE = 5000

#: mean and standard deviation of the training pixels scaled to [0, 1]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MNISTError(ValueError):
    """A data file is missing, corrupt or inconsistent; the message names the file and the problem."""


class MNIST(NamedTuple):
    """uint8 images (N, 28, 28) and int64 labels (N,) of the training (60,000) and test (10,000) sets."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lenet_core" / "mnist"


def md5(path) -> str:
    h = hashlib.md5()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise MNISTError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def load_idx(path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into an unsigned-byte array of the shape its header states.

    Checks the magic number, the number of dimensions and that the data length matches the header;
    raises :class:`MNISTError` naming the file otherwise.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MNISTError(f"{path}: file not found") from None
    except (IsADirectoryError, PermissionError) as e:
        raise MNISTError(f"{path}: cannot read ({e.strerror})") from None
    except (EOFError, OSError, zlib.error) as e:
        raise MNISTError(f"{path}: truncated or corrupt gzip stream ({e})") from None
    if len(raw) < 4:
        raise MNISTError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise MNISTError(f"{path}: wrong magic number 0x{raw[:4].hex()}, expected 0x00000801 (labels) "
                         f"or 0x00000803 (images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MNISTError(f"{path}: header truncated ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise MNISTError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
                         f"{len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _candidates(root) -> list[Path]:
    """The folders searched, in order; an explicit ``root`` or ``$LENET_MNIST_DIR`` that is not an
    existing folder raises :class:`MNISTError` (it is never created)."""
    dirs = []
    for folder, what in ((root, "root"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if folder is None:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise MNISTError(f"{what} {folder} {problem} (expected the folder holding the four MNIST .gz files)")
        dirs.append(folder)
    dirs.append(cache_dir())
    return dirs


def find_mnist_file(filename: str, root=None) -> Path | None:
    """The first existing ``filename`` among ``root``, ``$LENET_MNIST_DIR`` and the cache, or ``None``.

    A directory, a dangling symlink or anything but a regular file in its place raises :class:`MNISTError`.
    """
    for d in _candidates(root):
        path = d / filename
        if path.is_file():
            return path
        if path.is_dir():
            raise MNISTError(f"{path}: is a directory, not the file {filename}")
        if path.is_symlink():
            raise MNISTError(f"{path}: is a dangling symlink (to {os.readlink(path)})")
        if path.exists():
            raise MNISTError(f"{path}: is not a regular file")
    return None


def _progress(total, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


def _env_seconds(name, default) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise MNISTError(f"${name}={value!r}: expected a number of seconds > 0")
    return seconds


def _writable_folder(dest_dir: Path) -> Path:
    """Create ``dest_dir`` if needed and check a file can be written in it; :class:`MNISTError` otherwise."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=dest_dir):
            pass
    except OSError as e:
        raise MNISTError(f"cannot download into {dest_dir}: {e.strerror or e}"
                         f"{' (' + str(e.filename) + ')' if e.filename and str(e.filename) != str(dest_dir) else ''}"
                         f"; set {ENV_VAR} to a folder holding the MNIST files") from None
    return dest_dir


def download(filename: str, checksum: str, dest_dir, mirrors=None, timeout=None, deadline=None) -> Path:
    """Download ``filename`` into ``dest_dir`` from the first mirror that serves it with the right md5.

    The bytes go to a temporary file in ``dest_dir`` which is renamed into place only once its md5
    matches ``checksum``; on any failure (or Ctrl-C) the temporary file is removed. ``timeout``: seconds
    without a byte before a mirror is given up (``$LENET_DOWNLOAD_STALL``, default 30); ``deadline``:
    seconds for this file over all mirrors (``$LENET_DOWNLOAD_DEADLINE``, default 600; checked after
    every chunk, so it can be overshot by at most ``timeout``). ``mirrors`` default to
    ``$LENET_MNIST_MIRRORS`` (comma-separated) or :data:`MIRRORS`. Raises :class:`MNISTError` listing
    every mirror's failure.
    """
    dest_dir = _writable_folder(Path(dest_dir))
    stall = timeout if timeout is not None else _env_seconds(STALL_VAR, 30.0)
    deadline = deadline if deadline is not None else _env_seconds(DEADLINE_VAR, 600.0)
    if mirrors is None:
        mirrors = [m if m.endswith("/") else m + "/" for m in os.environ.get(MIRRORS_VAR, "").split(",") if m]
        mirrors = mirrors or MIRRORS
    give_up = time.monotonic() + deadline
    errors = []
    for mirror in mirrors:
        url = mirror + filename
        if time.monotonic() >= give_up:
            errors.append(f"{url}: not tried, the {deadline:g}s deadline had passed")
            continue
        print(f"downloading {url}", file=sys.stderr, flush=True)
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=stall) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with _progress(total, filename) as bar:
                    while chunk := response.read1(1 << 16):      # at most one read: a trickle cannot block
                        out.write(chunk)
                        bar.update(len(chunk))
                        if time.monotonic() > give_up:
                            raise TimeoutError(f"gave up after the {deadline:g}s deadline "
                                               f"({bar.n:,} bytes received)")
            got = md5(tmp)
            if got != checksum:
                raise MNISTError(f"md5 {got} != expected {checksum}")
            os.replace(tmp, dest_dir / filename)
            return dest_dir / filename
        except TimeoutError as e:
            errors.append(f"{url}: {e if str(e) and 'timed out' not in str(e) else f'no data for {stall:g}s'}")
        except Exception as e:
            errors.append(f"{url}: {e}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise MNISTError(f"could not download {filename}: " + "; ".join(errors))


def _load_file(key: str, root, download_ok: bool, verify: bool, mirrors) -> np.ndarray:
    filename, checksum = FILES[key]
    path = find_mnist_file(filename, root)
    if path is None:
        searched = ", ".join(str(d) for d in _candidates(root))
        if not download_ok:
            raise MNISTError(f"{filename}: file not found in {searched} (set {ENV_VAR} or pass root=, "
                             f"or allow download=True)")
        path = download(filename, checksum, Path(root) if root is not None else cache_dir(), mirrors)
    if verify:
        got = md5(path)
        if got != checksum:
            try:
                load_idx(path)
                detail = ""
            except MNISTError as e:
                detail = f"; {str(e).removeprefix(str(path) + ': ')}"
            raise MNISTError(f"{path}: md5 checksum {got} does not match the canonical {checksum}{detail}")
    return load_idx(path)


def load_mnist(root=None, *, download: bool = True, verify: bool = True, mirrors=None) -> MNIST:
    """Load MNIST as ``MNIST(x_train, y_train, x_test, y_test)``: uint8 (N, 28, 28) images, int64 labels.

    ``root``: a directory holding the four ``*-idx?-ubyte.gz`` files (see the module docstring for
    the search order). ``download``: allow fetching missing files. ``verify``: check each file's md5.
    Raises :class:`MNISTError` naming the file when a file is missing, corrupt, or when the numbers
    of images and labels or the image size disagree.
    """
    arrays = {key: _load_file(key, root, download, verify, mirrors) for key in FILES}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_file, lbl_file = FILES[f"{split}_images"][0], FILES[f"{split}_labels"][0]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise MNISTError(f"{img_file}: images have shape {images.shape}, expected (N, 28, 28)")
        if labels.ndim != 1:
            raise MNISTError(f"{lbl_file}: labels have shape {labels.shape}, expected (N,)")
        if len(images) != len(labels):
            raise MNISTError(f"{img_file} holds {len(images)} images but {lbl_file} holds {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise MNISTError(f"{lbl_file}: label {labels.max()} is outside 0..9")
    return MNIST(arrays["train_images"], arrays["train_labels"].astype(np.int64),
                 arrays["test_images"], arrays["test_labels"].astype(np.int64))


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------

def normalize(images: np.ndarray, mean=MNIST_MEAN, std=MNIST_STD, dtype=np.float32) -> np.ndarray:
    """Scale uint8 pixels to [0, 1], then standardise: ``(x / 255 - mean) / std``. Any shape."""
    return ((images.astype(dtype) / 255 - dtype(mean)) / dtype(std)).astype(dtype, copy=False)


def pad(images: np.ndarray, width: int = 2) -> np.ndarray:
    """Zero-pad the last two axes by ``width`` on every side: (..., 28, 28) -> (..., 32, 32)."""
    pad_width = [(0, 0)] * (images.ndim - 2) + [(width, width)] * 2
    return np.pad(images, pad_width)


def prepare(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> LeNet-5 input (N, 1, 32, 32): padded with background, then normalised.

    Padding comes first so that the border takes the normalised value of a black pixel, not 0.
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected digits of shape (N, 28, 28), got shape {images.shape}")
    if images.dtype != np.uint8:
        return normalize(pad(images), dtype=dtype)[:, None]
    # uint8: look each pixel up in its 256 normalised values (the same numbers, in one pass)
    table = normalize(np.arange(256, dtype=np.uint8), dtype=dtype)
    out = np.full((len(images), 1, 32, 32), table[0], dtype=dtype)
    out[:, 0, 2:30, 2:30] = table[images]
    return out


def one_hot(labels: np.ndarray, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """Integer labels (N,) -> one-hot rows (N, num_classes)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"labels must be a 1-D array of integers in 0..{num_classes - 1}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def batches(n: int, batch_size: int, *, shuffle: bool = True, rng=None):
    """Yield index arrays that cover ``range(n)`` in mini-batches (the last may be smaller).

    With ``shuffle``, the order comes from ``rng`` (a ``np.random.Generator`` or a seed), so the
    same seed gives the same batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def split_validation(x: np.ndarray, y: np.ndarray, size: int = VALIDATION_SIZE, seed: int = 0):
    """Hold ``size`` images of a training set out as a validation split: ``(x_tr, y_tr), (x_val, y_val)``.

    The held-out images are a seeded random choice (the same ``seed`` always holds out the same
    images, whatever the model's seed); both parts keep the original order. Every choice the book
    makes (learning rate, weight decay, epochs, augmentation) is judged on the validation split;
    the test set is read once per reported model. ``size=0`` returns the whole set and an empty split.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    if not 0 <= size < len(x):
        raise ValueError(f"validation size must be in 0..{len(x) - 1}, got {size}")
    held = np.zeros(len(x), dtype=bool)
    held[np.random.default_rng(seed).choice(len(x), size=size, replace=False)] = True
    return (x[~held], y[~held]), (x[held], y[held])


_SPLITS = {}


def load_splits(prep=None, *, limit: int = 0, val_size: int = VALIDATION_SIZE, root=None):
    """MNIST as the book's long-run scripts use it: ``(x_train, y_train, x_val, y_val, x_test, y_test)``.

    The training set minus the seeded validation split of :func:`split_validation` (seed 0), its
    first ``limit`` images if ``limit > 0``; images go through ``prep`` (default :func:`prepare`;
    :func:`lenet_core.lenet1998.prepare_1998` for the paper's input levels). Cached per process,
    so every run of a script shares one copy, and the files are read once whatever the ``prep``.
    """
    prep = prepare if prep is None else prep
    raw = ("raw", limit, val_size, root)                  # the uint8 digits, before prep
    if raw not in _SPLITS:
        mnist = load_mnist(root, download=False)
        (x, y), (xv, yv) = split_validation(mnist.x_train, mnist.y_train, size=val_size, seed=0)
        if limit:
            x, y = x[:limit], y[:limit]
        _SPLITS[raw] = (x, y, xv, yv, mnist.x_test, mnist.y_test)
    key = (prep, *raw[1:])
    if key not in _SPLITS:
        x, y, xv, yv, xt, yt = _SPLITS[raw]
        _SPLITS[key] = (prep(x), y, prep(xv), yv, prep(xt), yt)
    return _SPLITS[key]
