"""The MNIST loader: real files, every kind of bad file, the search order, and downloads (from a
local HTTP server on 127.0.0.1: the tests never touch the internet)."""

import gzip
import http.server
import shutil
import threading
from functools import partial

import numpy as np
import pytest

from lenet_core import data
from lenet_core.data import FILES, MNISTError, load_idx, load_mnist

NAMES = [name for name, _ in FILES.values()]


def test_real_mnist(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_train.shape == (60000,) and mnist.y_test.shape == (10000,)
    assert np.array_equal(np.unique(mnist.y_train), np.arange(10))
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]               # the well-known first labels
    assert abs(mnist.x_train.mean() / 255 - data.MNIST_MEAN) < 1e-3
    assert abs(mnist.x_train.std() / 255 - data.MNIST_STD) < 1e-3


def test_load_splits(mnist, mnist_root):
    x, y, xv, yv, xt, yt = data.load_splits(limit=300, val_size=1000, root=mnist_root)
    assert x.shape == (300, 1, 32, 32) and y.shape == (300,) and xv.shape == (1000, 1, 32, 32)
    assert xt.shape == (10000, 1, 32, 32) and np.array_equal(yt, mnist.y_test)
    (x_tr, y_tr), (x_val, y_val) = data.split_validation(mnist.x_train, mnist.y_train, size=1000, seed=0)
    assert np.array_equal(y, y_tr[:300]) and np.array_equal(yv, y_val)          # the seeded split
    assert np.array_equal(x, data.prepare(x_tr[:300]))
    assert data.load_splits(limit=300, val_size=1000, root=mnist_root)[0] is x   # cached
    raw = data.load_splits(lambda a: a, limit=300, val_size=1000, root=mnist_root)[0]
    assert raw.dtype == np.uint8 and np.array_equal(raw, x_tr[:300])


def test_load_idx_reads_the_header(mnist_root):
    labels = load_idx(mnist_root / FILES["test_labels"][0])
    assert labels.shape == (10000,)


@pytest.fixture
def copy_of_mnist(tmp_path, mnist_root, monkeypatch):
    """A writable copy of the real files; the env var and cache point to empty places."""
    for name in NAMES:
        shutil.copy(mnist_root / name, tmp_path / name)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    return tmp_path


def listing(folder):
    return sorted((p.name, p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def write_idx(path, magic, dims, payload: bytes):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)


def test_wrong_md5_names_the_file(copy_of_mnist):
    path = copy_of_mnist / FILES["test_labels"][0]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[8] = (raw[8] + 1) % 10                                            # change one label
    path.write_bytes(gzip.compress(bytes(raw)))
    before = listing(copy_of_mnist)
    with pytest.raises(MNISTError, match=r"t10k-labels-idx1-ubyte\.gz: (md5 checksum .* does not match|[\d,]+ bytes, not the canonical 4,542)"):
        load_mnist(copy_of_mnist, download=False)
    assert listing(copy_of_mnist) == before


def test_truncated_gzip(copy_of_mnist):
    path = copy_of_mnist / FILES["train_labels"][0]
    path.write_bytes(path.read_bytes()[:10000])
    before = listing(copy_of_mnist)
    with pytest.raises(MNISTError, match=r"train-labels-idx1-ubyte\.gz: 10,000 bytes, not the canonical 28,881; truncated or corrupt gzip"):
        load_mnist(copy_of_mnist, download=False)
    with pytest.raises(MNISTError, match=r"train-labels-idx1-ubyte\.gz: truncated or corrupt gzip"):
        load_mnist(copy_of_mnist, download=False, verify=False)
    assert listing(copy_of_mnist) == before


def test_wrong_magic_number(copy_of_mnist):
    path = copy_of_mnist / FILES["test_images"][0]
    write_idx(path, 0x00000802, [10000, 28, 28], bytes(10000 * 28 * 28))
    with pytest.raises(MNISTError, match=r"t10k-images-idx3-ubyte\.gz: .*wrong magic number 0x00000802"):
        load_mnist(copy_of_mnist, download=False)


def test_header_and_data_length_disagree(copy_of_mnist):
    path = copy_of_mnist / FILES["test_labels"][0]
    write_idx(path, 0x00000801, [10000], bytes(9999))
    with pytest.raises(MNISTError, match=r"t10k-labels-idx1-ubyte\.gz: header says shape \(10000,\)"):
        load_mnist(copy_of_mnist, download=False, verify=False)


def test_image_and_label_counts_disagree(copy_of_mnist):
    write_idx(copy_of_mnist / FILES["test_labels"][0], 0x00000801, [9999], bytes(9999))
    with pytest.raises(MNISTError, match=r"t10k-images-idx3-ubyte\.gz holds 10000 images but "
                                         r"t10k-labels-idx1-ubyte\.gz holds 9999 labels"):
        load_mnist(copy_of_mnist, download=False, verify=False)


def test_missing_file_without_download(copy_of_mnist):
    (copy_of_mnist / FILES["train_images"][0]).unlink()
    before = listing(copy_of_mnist)
    with pytest.raises(MNISTError, match=r"train-images-idx3-ubyte\.gz: file not found in .*LENET_MNIST_DIR"):
        load_mnist(copy_of_mnist, download=False)
    assert listing(copy_of_mnist) == before


def test_search_order_root_then_env_then_cache(tmp_path, mnist_root, monkeypatch):
    env_dir, cache = tmp_path / "env", tmp_path / "cache"
    monkeypatch.setenv(data.ENV_VAR, str(env_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    cached = cache / "lenet_core" / "mnist"
    for folder in (env_dir, cached):
        folder.mkdir(parents=True)
        shutil.copy(mnist_root / NAMES[0], folder / NAMES[0])
    assert data.find_mnist_file(NAMES[0], root=mnist_root) == mnist_root / NAMES[0]
    assert data.find_mnist_file(NAMES[0]) == env_dir / NAMES[0]
    monkeypatch.delenv(data.ENV_VAR)
    assert data.find_mnist_file(NAMES[0]) == cached / NAMES[0]
    assert data.find_mnist_file(NAMES[1]) is None


@pytest.fixture
def mirror(tmp_path):
    """Two local 'mirrors': /broken/ serves a truncated train-labels file, /good/ the real files."""
    def serve(source_dir):
        site = tmp_path / "site"
        (site / "good").mkdir(parents=True)
        (site / "broken").mkdir()
        for name in NAMES:
            shutil.copy(source_dir / name, site / "good" / name)
        (site / "broken" / NAMES[1]).write_bytes((source_dir / NAMES[1]).read_bytes()[:5000])
        handler = partial(QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"
    servers = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_falls_back_to_the_next_mirror(tmp_path, mnist_root, mirror, monkeypatch):
    url = mirror(mnist_root)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mirrors = [url + "missing/", url + "broken/", url + "good/"]
    mnist = load_mnist(mirrors=mirrors)
    cached = tmp_path / "cache" / "lenet_core" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(NAMES)     # no temporary files left
    assert mnist.y_test.shape == (10000,)


def test_download_with_bad_checksum_leaves_nothing(tmp_path, mnist_root, mirror):
    url = mirror(mnist_root)
    dest = tmp_path / "dest"
    with pytest.raises(MNISTError, match=r"could not download train-labels-idx1-ubyte\.gz:[\s\S]*announces 5,000 bytes, the file has 28,881[\s\S]*404"):
        data.download(NAMES[1], FILES["train_labels"][1], dest, mirrors=[url + "broken/", url + "missing/"])
    assert list(dest.iterdir()) == []


def test_download_into_root(tmp_path, mnist_root, mirror, monkeypatch):
    url = mirror(mnist_root)
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()                       # an explicit root must exist: it is never created
    load_mnist(tmp_path / "root", mirrors=[url + "good/"])
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == sorted(NAMES)
    assert not (tmp_path / "cache").exists()


def test_preprocessing():
    digits = np.zeros((2, 28, 28), dtype=np.uint8)
    digits[0, 10, 10] = 255
    x = data.prepare(digits)
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    black = (0 - data.MNIST_MEAN) / data.MNIST_STD
    assert np.isclose(x[0, 0, 0, 0], black) and np.isclose(x[1].max(), black)   # border is background
    assert np.isclose(x[0, 0, 12, 12], (1 - data.MNIST_MEAN) / data.MNIST_STD)
    assert np.array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        data.prepare(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="0..2"):
        data.one_hot(np.array([3]), 3)


def test_batches_cover_everything_and_are_seeded():
    first = list(data.batches(10, 3, rng=5))
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(np.concatenate(first).tolist()) == list(range(10))
    assert all(np.array_equal(a, b) for a, b in zip(first, data.batches(10, 3, rng=5)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, data.batches(10, 3, rng=6)))


def test_random_shift_moves_each_image_within_bounds():
    rng = np.random.default_rng(0)
    x = np.zeros((50, 1, 32, 32), dtype=np.float32)
    x[:, 0, 16, 16] = 1.0
    shifted = data.random_shift(x, 2, rng)
    positions = np.argwhere(shifted[:, 0] == 1.0)
    assert len(positions) == 50 and np.all(np.abs(positions[:, 1:] - 16) <= 2)
    assert len({tuple(p) for p in positions[:, 1:]}) > 5
