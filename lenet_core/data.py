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
(``$LENET_DOWNLOAD_STALL``, default 30), when it sends more than the file's known size
(:data:`SIZES`), and on a file when its download has taken ``deadline`` seconds over all mirrors
(``$LENET_DOWNLOAD_DEADLINE``, default 600), so a server that trickles or never stops sending bytes
cannot hang the loader or fill the disk.

Reading is bounded: only regular files are read (a FIFO, a device or a socket in a file's place is
refused at once); a file's size is checked against the canonical size before its md5 is computed;
the four files are checked before any is decompressed; and an IDX file is decompressed no further
than its header's declared size (at most MNIST's largest, :data:`MAX_IDX_BYTES`) plus one byte, so a
small gzip "bomb" costs a line, not gigabytes.

IDX format (big-endian): two zero bytes, a type code (``0x08`` = unsigned byte), the number of
dimensions, then one 4-byte size per dimension, then the data in C order. The magic number of the
image files is therefore ``0x00000803`` (3 dimensions) and of the label files ``0x00000801``.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import stat
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._files import fsync_folder, open_regular

__all__ = ["MNIST", "MNISTError", "FILES", "MIRRORS", "ENV_VAR", "load_mnist", "load_idx", "find_mnist_file",
           "download", "cache_dir", "normalize", "pad", "prepare", "one_hot", "check_labels", "batches", "gather",
           "random_shift", "split_validation",
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

#: sizes in bytes of the gzipped files: a download stops at this size, a file of another size is refused
SIZES = {"train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881,
         "t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542}

#: the most data an IDX file may declare: MNIST's training images, 60,000 x 28 x 28 bytes
MAX_IDX_BYTES = 60000 * 28 * 28

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
    """A data file is missing, corrupt or inconsistent; the message names the file and the problem.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """


class MNIST(NamedTuple):
    """uint8 images (N, 28, 28) and int64 labels (N,) of the training (60,000) and test (10,000) sets.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/lenet_core/mnist``, else ``~/.cache/lenet_core/mnist``; :class:`MNISTError` when
    neither variable nor a home directory exists (a user without a passwd entry, ``HOME`` unset).

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except (RuntimeError, KeyError):
            raise MNISTError(f"no home directory for the download cache (HOME is unset and the user has none); "
                             f"set {ENV_VAR} to a folder holding the MNIST files, or XDG_CACHE_HOME") from None
    return Path(base) / "lenet_core" / "mnist"


def _open(path):
    """``open_regular(path)`` with its failures as :class:`MNISTError` naming the file."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise MNISTError(f"{path}: file not found") from None
    except ValueError as e:
        raise MNISTError(str(e)) from None
    except OSError as e:
        raise MNISTError(f"{path}: cannot read ({e.strerror or e})") from None


def md5(path) -> str:
    h = hashlib.md5()
    with _open(path) as f:
        try:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        except OSError as e:
            raise MNISTError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def _read_idx(path, keep: bool = True) -> np.ndarray | None:
    """Parse and check one IDX file, streaming: the data is decompressed no further than its header's
    declared size plus one byte, and kept only if ``keep`` (else read through a 1 MB buffer)."""
    path = Path(path)
    with _open(path) as f:
        stream = gzip.GzipFile(fileobj=f, mode="rb") if path.suffix == ".gz" else f
        try:
            magic = stream.read(4)
            if len(magic) < 4:
                raise MNISTError(f"{path}: too short for an IDX header ({len(magic)} bytes)")
            zero, dtype_code, ndim = int.from_bytes(magic[:2], "big"), magic[2], magic[3]
            if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
                raise MNISTError(f"{path}: wrong magic number 0x{magic.hex()}, expected 0x00000801 (labels) "
                                 f"or 0x00000803 (images)")
            dims = stream.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise MNISTError(f"{path}: header truncated ({4 + len(dims)} bytes)")
            shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(shape)
            if expected > MAX_IDX_BYTES:
                raise MNISTError(f"{path}: header declares shape {shape} ({expected:,} bytes of data), more "
                                 f"than MNIST's largest file ({MAX_IDX_BYTES:,})")
            out = np.empty(expected, dtype=np.uint8) if keep else None
            buffer = memoryview(out) if keep else memoryview(bytearray(min(expected, 1 << 20) or 1))
            got = 0
            while got < expected:
                n = stream.readinto(buffer[got:] if keep else buffer[:min(len(buffer), expected - got)])
                if not n:
                    break
                got += n
            if got < expected or stream.read(1):
                held = f"{got} bytes" if got < expected else f"more than {expected} bytes"
                raise MNISTError(f"{path}: header says shape {shape} ({expected} bytes of data) but the file "
                                 f"holds {held}")
        except (EOFError, OSError, zlib.error) as e:
            raise MNISTError(f"{path}: truncated or corrupt gzip stream ({e})") from None
    return out.reshape(shape) if keep else None


def load_idx(path) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into an unsigned-byte array of the shape its header states.

    Checks that it is a regular file, the magic number, the number of dimensions, that the header
    declares at most :data:`MAX_IDX_BYTES` and that the data length matches the header (decompressing
    at most one byte more than declared); raises :class:`MNISTError` naming the file otherwise.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    return _read_idx(path)


def _candidates(root):
    """The folders searched, in order (the cache last, and only computed when it is reached); an explicit
    ``root`` or ``$LENET_MNIST_DIR`` that is not an existing folder raises :class:`MNISTError` (it is never
    created)."""
    for folder, what in ((root, "root"), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if folder is None:
            continue
        folder = Path(folder)
        if not folder.is_dir():
            problem = "is a file, not a folder" if folder.exists() else "does not exist"
            raise MNISTError(f"{what} {folder} {problem} (expected the folder holding the four MNIST .gz files)")
        yield folder
    yield cache_dir()


def find_mnist_file(filename: str, root=None) -> Path | None:
    """The first existing ``filename`` among ``root``, ``$LENET_MNIST_DIR`` and the cache, or ``None``.

    A directory, a dangling symlink, a FIFO, a device or anything but a regular file in its place
    raises :class:`MNISTError` saying what it is.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    from ._files import file_kind

    for d in _candidates(root):
        path = d / filename
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            if path.is_symlink():
                raise MNISTError(f"{path}: is a dangling symlink (to {os.readlink(path)})") from None
            continue
        except OSError as e:
            raise MNISTError(f"{path}: cannot read ({e.strerror or e})") from None
        if stat.S_ISREG(mode):
            return path
        link = f" (a symlink to {os.readlink(path)})" if path.is_symlink() else ""
        raise MNISTError(f"{path}: is {file_kind(mode)}{link}, not the file {filename}")
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


def download(filename: str, checksum: str, dest_dir, mirrors=None, timeout=None, deadline=None,
             size: int | None = None) -> Path:
    """Download ``filename`` into ``dest_dir`` from the first mirror that serves it with the right md5.

    The bytes go to a temporary file in ``dest_dir`` which is renamed into place only once its md5
    matches ``checksum``; on any failure (or Ctrl-C) the temporary file is removed. ``timeout``: seconds
    without a byte before a mirror is given up (``$LENET_DOWNLOAD_STALL``, default 30); ``deadline``:
    seconds for this file over all mirrors (``$LENET_DOWNLOAD_DEADLINE``, default 600; checked after
    every chunk, so it can be overshot by at most ``timeout``); ``size``: the file's size in bytes
    (default :data:`SIZES`), a mirror announcing another size or sending more is given up at once.
    ``mirrors`` default to ``$LENET_MNIST_MIRRORS`` (comma-separated) or :data:`MIRRORS`. The settings
    are checked before anything is created. Raises :class:`MNISTError` listing every mirror's failure.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    stall = timeout if timeout is not None else _env_seconds(STALL_VAR, 30.0)
    deadline = deadline if deadline is not None else _env_seconds(DEADLINE_VAR, 600.0)
    size = size if size is not None else SIZES.get(filename)
    if mirrors is None:
        mirrors = [m if m.endswith("/") else m + "/" for m in os.environ.get(MIRRORS_VAR, "").split(",") if m]
        mirrors = mirrors or MIRRORS
    dest_dir = _writable_folder(Path(dest_dir))
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
                if size is not None and total is not None and total != size:
                    raise MNISTError(f"announces {total:,} bytes, the file has {size:,}")
                with _progress(total or size, filename) as bar:
                    while chunk := response.read1(1 << 16):      # at most one read: a trickle cannot block
                        out.write(chunk)
                        bar.update(len(chunk))
                        if size is not None and bar.n > size:
                            raise MNISTError(f"sent more than the file's {size:,} bytes; stopped")
                        if time.monotonic() > give_up:
                            raise TimeoutError(f"gave up after the {deadline:g}s deadline "
                                               f"({bar.n:,} bytes received)")
                out.flush()
                os.fsync(out.fileno())                           # durable before it is renamed into place
            got = md5(tmp)
            if got != checksum:
                raise MNISTError(f"md5 {got} != expected {checksum}")
            os.replace(tmp, dest_dir / filename)
            fsync_folder(dest_dir)
            return dest_dir / filename
        except TimeoutError as e:
            errors.append(f"{url}: {e if str(e) and 'timed out' not in str(e) else f'no data for {stall:g}s'}")
        except Exception as e:
            errors.append(f"{url}: {e}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise MNISTError(f"could not download {filename}: " + "; ".join(errors))


def _find_file(key: str, root, download_ok: bool, verify: bool, mirrors) -> Path:
    """The path of one MNIST file, found or downloaded, and (``verify``) of the canonical size and md5."""
    filename, checksum = FILES[key]
    path = find_mnist_file(filename, root)
    if path is None:
        if not download_ok:
            searched = ", ".join(str(d) for d in _candidates(root))
            raise MNISTError(f"{filename}: file not found in {searched} (set {ENV_VAR} or pass root=, "
                             f"or allow download=True)")
        path = download(filename, checksum, Path(root) if root is not None else cache_dir(), mirrors)
    if verify:
        try:
            actual = path.stat().st_size
        except OSError as e:
            raise MNISTError(f"{path}: cannot read ({e.strerror or e})") from None
        expected = SIZES.get(filename)
        if expected is not None and actual != expected:
            problem = f"{actual:,} bytes, not the canonical {expected:,}"
        else:
            got = md5(path)
            problem = None if got == checksum else f"md5 checksum {got} does not match the canonical {checksum}"
        if problem is not None:
            try:
                _read_idx(path, keep=False)                     # bounded: says what else is wrong, if anything
                detail = ""
            except MNISTError as e:
                detail = f"; {str(e).removeprefix(str(path) + ': ')}"
            raise MNISTError(f"{path}: {problem}{detail}")
    return path


def load_mnist(root=None, *, download: bool = True, verify: bool = True, mirrors=None) -> MNIST:
    """Load MNIST as ``MNIST(x_train, y_train, x_test, y_test)``: uint8 (N, 28, 28) images, int64 labels.

    ``root``: a directory holding the four ``*-idx?-ubyte.gz`` files (see the module docstring for
    the search order). ``download``: allow fetching missing files. ``verify``: check each file's md5.
    Raises :class:`MNISTError` naming the file when a file is missing, not a regular file, corrupt, or
    when the numbers of images and labels or the image size disagree; the four files' sizes and md5
    checksums are checked before any of them is decompressed.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    paths = {key: _find_file(key, root, download, verify, mirrors) for key in FILES}   # all checked first
    arrays = {key: load_idx(path) for key, path in paths.items()}
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
    """Scale uint8 pixels to [0, 1], then standardise: ``(x / 255 - mean) / std``. Any shape.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    return ((images.astype(dtype) / 255 - dtype(mean)) / dtype(std)).astype(dtype, copy=False)


def pad(images: np.ndarray, width: int = 2) -> np.ndarray:
    """Zero-pad the last two axes by ``width`` on every side: (..., 28, 28) -> (..., 32, 32).

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    pad_width = [(0, 0)] * (images.ndim - 2) + [(width, width)] * 2
    return np.pad(images, pad_width)


def prepare(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> LeNet-5 input (N, 1, 32, 32): padded with background, then normalised.

    Padding comes first so that the border takes the normalised value of a black pixel, not 0.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
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


def check_labels(labels, num_classes: int = 10, what: str = "label") -> np.ndarray:
    """Class labels as an integer array (N,) in ``0..num_classes - 1``; anything else is a ``ValueError``
    naming ``what`` and the first bad value. The one label check (one-hot, losses, attribution targets).

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}s must be integers, got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{what}s must be a 1-D array (N,), got shape {labels.shape}")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(f"{what} {int(bad[0])} is outside 0..{num_classes - 1}")
    return labels


def one_hot(labels: np.ndarray, num_classes: int = 10, dtype=np.float32) -> np.ndarray:
    """Integer labels (N,) -> one-hot rows (N, num_classes); labels are checked by :func:`check_labels`.

    Explained in chapter 1 (book/ch01_mnist.ipynb).
    """
    labels = check_labels(labels, num_classes)
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def batches(n: int, batch_size: int, *, shuffle: bool = True, rng=None):
    """Yield index arrays that cover ``range(n)`` in mini-batches (the last may be smaller).

    With ``shuffle``, the order comes from ``rng`` (a ``np.random.Generator`` or a seed), so the
    same seed gives the same batches.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = np.random.default_rng(rng).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def gather(x: np.ndarray, idx, dtype) -> np.ndarray:
    """The images ``x[idx]`` as a (n, C, H, W) array of ``dtype``; raw uint8 digits (N, 28, 28) are
    prepared here, batch by batch, so a training set never needs to exist in float form.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    if x.ndim == 3:
        return prepare(x[idx], dtype=np.dtype(dtype).type)
    return x[idx].astype(dtype, copy=False)


def random_shift(x: np.ndarray, max_shift: int, rng) -> np.ndarray:
    """Shift each image (N, C, H, W) by its own random offset of up to ``max_shift`` pixels per axis.

    The border is filled by repeating the edge pixels (the background of a padded digit).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    if max_shift <= 0:
        return x
    n, _, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="edge")
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))   # (N, C, 2s+1, 2s+1, H, W)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    return windows[np.arange(n), :, dy, dx]


def split_validation(x: np.ndarray, y: np.ndarray, size: int = VALIDATION_SIZE, seed: int = 0):
    """Hold ``size`` images of a training set out as a validation split: ``(x_tr, y_tr), (x_val, y_val)``.

    The held-out images are a seeded random choice (the same ``seed`` always holds out the same
    images, whatever the model's seed); both parts keep the original order. Every choice the book
    makes (learning rate, weight decay, epochs, augmentation) is judged on the validation split;
    the test set is read once per reported model. ``size=0`` returns the whole set and an empty split.

    Explained in chapter 6 (book/ch06_training.ipynb).
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

    Explained in chapter 1 (book/ch01_mnist.ipynb).
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
