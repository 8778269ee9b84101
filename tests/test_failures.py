"""How lenet_core fails: every case of ../shared/reviews/reliability-review.md (CLI, data, weights, API).

Command-line cases run ``python -m lenet_core`` in a subprocess and check the exit code, that stderr is
one line naming the problem (no traceback), and that nothing on disk changed. Downloads only ever go
to a local HTTP server on 127.0.0.1 (``$LENET_MNIST_MIRRORS``); every subprocess gets an empty cache
and a dead mirror unless a case says otherwise, so no test can reach the internet.
"""

import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lenet_core import LeNet5, load_weights, save_weights
from lenet_core.__main__ import EXIT_CODES, _parser
from lenet_core.checkpoint import load_checkpoint
from lenet_core.data import FILES, SIZES, MNISTError, load_mnist

REPO = Path(__file__).resolve().parents[1]
NAMES = [name for name, _ in FILES.values()]
DEAD_MIRROR = "http://127.0.0.1:9/"          # the discard port: nothing listens, refused at once
QUICK = ["--epochs", "1", "--limit", "64", "--validation", "64", "--quiet"]


def cli(*args, cwd, env=None, timeout=120):
    environment = {**os.environ, "XDG_CACHE_HOME": str(Path(cwd) / ".no-cache"),
                   "LENET_MNIST_MIRRORS": DEAD_MIRROR, "PYTHONPATH": str(REPO)}
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run([sys.executable, "-m", "lenet_core", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=environment, timeout=timeout)


def snapshot(folder):
    """Every path under ``folder`` (hidden ones too) with its size and modification time."""
    return sorted((str(p.relative_to(folder)), p.is_dir() or p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in Path(folder).rglob("*"))


def assert_one_line_error(result, code, pattern):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and re.search(pattern, lines[0]), result.stderr


# ----------------------------------------------------------------------------------------------
# Arguments: refused before anything is loaded, with the option and the value named
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,pattern", [
    (["--lr", "nan"], r"argument --lr: must be a finite number > 0, got 'nan'"),
    (["--lr", "0"], r"argument --lr: must be a finite number > 0, got '0'"),
    (["--lr", "-0.1"], r"argument --lr: .* got '-0.1'"),
    (["--lr", "inf"], r"argument --lr: .* got 'inf'"),
    (["--augment", "-1"], r"argument --augment: must be an integer >= 0 and <= 4, got '-1'"),
    (["--augment", "100"], r"argument --augment: .* got '100'"),
    (["--weight-decay", "nan"], r"argument --weight-decay: must be a finite number >= 0 and <= 1, got 'nan'"),
    (["--weight-decay", "1e6"], r"argument --weight-decay: .* got '1e6'"),
    (["--weight-decay", "-1"], r"argument --weight-decay: .* got '-1'"),
    (["--seed", "-1"], r"argument --seed: must be an integer >= 0 and <= 4294967295, got '-1'"),
    (["--seed", "x"], r"argument --seed: expected an integer, got 'x'"),
    (["--epochs", "0"], r"argument --epochs: must be an integer >= 1 and <= 10000, got '0'"),
    (["--batch-size", "0"], r"argument --batch-size: .* got '0'"),
    (["--limit", "0"], r"argument --limit: .* got '0'"),
    (["--validation", "60000"], r"argument --validation: .* <= 59999, got '60000'"),
    (["--optimizer", "rmsprop"], r"argument --optimizer: invalid choice: 'rmsprop'"),
    (["--out", ".npz"], r"--out '.npz' names no file"),
    (["--out", "w.pt"], r"--out must end in .npz, got 'w.pt'"),
    (["--out", "adir.npz"], r"--out adir.npz: is a directory"),
    (["--out", "afile/w.npz"], r"--out afile/w.npz: .*afile is not a folder"),
    (["--out", "/proc/w.npz"], r"--out /proc/w.npz: cannot write in /proc"),
    (["--history", "h.csv"], r"--history must end in .json, got 'h.csv'"),
    (["--checkpoint", "w.npz"], r"--checkpoint and --out name the same file w.npz"),
    (["--limit", "59000"], r"--limit 59000 is more than the 55,000 training images left after --validation 5000"),
    (["--no-checkpoint", "--checkpoint", "c.npz"], r"--checkpoint and --no-checkpoint contradict"),
])
def test_bad_arguments_are_refused_before_loading(tmp_path, args, pattern):
    (tmp_path / "adir.npz").mkdir()
    (tmp_path / "afile").write_text("a file")
    before = snapshot(tmp_path)
    result = cli("train", "--out", "w.npz", *args, cwd=tmp_path,
                 env={"LENET_MNIST_DIR": str(tmp_path / "no-mnist-here")})   # loading would fail otherwise
    assert_one_line_error(result, EXIT_CODES["usage"], pattern)
    assert snapshot(tmp_path) == before


def test_help_shows_defaults_exit_codes_and_text_for_every_option():
    parser = _parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
    text = subparsers["train"].format_help()
    for shown in ("(default: 10)", "(default: 64)", "(default: momentum)", "(default: 0.0005)",
                  "(default: cosine)", "(default: 5000)", "(default: weights.npz)", "default: 0.05"):
        assert shown in text, shown
    assert re.search(r"--seed SEED .*\n.*\(default: 0\)", text)
    for code in EXIT_CODES.values():
        assert re.search(rf"^  {code} ", text, re.M), code


def test_debug_shows_the_traceback(tmp_path):
    result = cli("evaluate", "missing.npz", "--debug", cwd=tmp_path)
    assert result.returncode == EXIT_CODES["weights"]
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("weights file missing.npz does not exist")


# ----------------------------------------------------------------------------------------------
# Data: an explicit folder that is wrong is an error, never a download; every file problem named
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def linked_mnist(tmp_path, mnist_root):
    """A folder of symlinks to the real MNIST files (cheap to make, safe to break)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in NAMES:
        (folder / name).symlink_to(mnist_root / name)
    return folder


def test_misspelled_data_folder_is_an_error_and_is_not_created(tmp_path):
    result = cli("train", *QUICK, "--data", "mnsit", cwd=tmp_path)
    assert_one_line_error(result, EXIT_CODES["data"], r"--data mnsit does not exist")
    assert not (tmp_path / "mnsit").exists() and snapshot(tmp_path) == []


def test_data_pointing_at_a_gz_file(tmp_path, linked_mnist):
    before = snapshot(tmp_path)
    result = cli("train", *QUICK, "--data", linked_mnist / NAMES[0], cwd=tmp_path)
    assert_one_line_error(result, EXIT_CODES["data"], rf"--data .*{NAMES[0]} is not a folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_env_var_that_is_not_a_folder(tmp_path, kind):
    target = tmp_path / "env-target"
    if kind == "file":
        target.write_text("not a folder")
    before = snapshot(tmp_path)
    result = cli("evaluate", "w.npz", cwd=tmp_path, env={"LENET_MNIST_DIR": str(target)})
    assert result.returncode == EXIT_CODES["weights"]                 # the weights are read first ...
    save_weights(LeNet5(), tmp_path / "w.npz")
    before = snapshot(tmp_path)
    result = cli("evaluate", "w.npz", cwd=tmp_path, env={"LENET_MNIST_DIR": str(target)})
    problem = "does not exist" if kind == "missing" else "is a file, not a folder"
    assert_one_line_error(result, EXIT_CODES["data"], rf"LENET_MNIST_DIR .*env-target {problem}")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["directory", "dangling symlink"])
def test_a_directory_or_dangling_link_in_place_of_a_file(tmp_path, linked_mnist, kind):
    path = linked_mnist / NAMES[2]
    path.unlink()
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "gone.gz")
    before = snapshot(tmp_path)
    result = cli("train", *QUICK, "--data", linked_mnist, cwd=tmp_path)
    assert_one_line_error(result, EXIT_CODES["data"], rf"{NAMES[2]}: is a {kind}")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path, linked_mnist, mnist_root):
    path = linked_mnist / NAMES[1]
    path.unlink()
    path.write_bytes((mnist_root / NAMES[1]).read_bytes())
    path.chmod(0)
    with pytest.raises(MNISTError, match=rf"{NAMES[1]}: cannot read \(Permission denied\)"):
        load_mnist(linked_mnist, download=False)


@pytest.mark.parametrize("cache", ["a file", "unwritable"])
def test_cache_that_cannot_be_written(tmp_path, cache):
    if cache == "a file":
        (tmp_path / "cachefile").write_text("XDG_CACHE_HOME is a file")
        xdg, pattern = tmp_path / "cachefile", r"cannot download into .*cachefile/lenet_core/mnist: Not a directory"
    else:
        xdg, pattern = Path("/proc/no-cache"), r"cannot download into /proc/no-cache/lenet_core/mnist: "
    before = snapshot(tmp_path)
    result = cli("train", *QUICK, cwd=tmp_path, env={"LENET_MNIST_DIR": None, "XDG_CACHE_HOME": str(xdg)})
    assert_one_line_error(result, EXIT_CODES["data"], pattern)
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------
# Downloads: a local server that trickles or stalls; deadline, stall timeout, SIGTERM
# ----------------------------------------------------------------------------------------------

class TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Announces the file's true size, then sends one byte every 0.1 s (``/trickle/``) or nothing
    (``/stall/``), for at most 20 s."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(SIZES[self.path.rsplit("/", 1)[-1]]))
        self.end_headers()
        self.wfile.flush()
        end = time.monotonic() + 20
        try:
            while time.monotonic() < end and not self.server.stopping.is_set():
                if self.path.startswith("/trickle/"):
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                self.server.stopping.wait(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    server.daemon_threads = True
    server.stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path,pattern", [
    ("trickle/", r"gave up after the 2s deadline \(\d+ bytes received\)"),
    ("stall/", r"no data for 1s"),
])
def test_download_deadline_and_stall_timeout(tmp_path, slow_server, path, pattern):
    folder = tmp_path / "mnist"
    folder.mkdir()
    start = time.monotonic()
    result = cli("train", *QUICK, "--data", folder, cwd=tmp_path,
                 env={"LENET_MNIST_MIRRORS": slow_server + path, "LENET_DOWNLOAD_DEADLINE": "2",
                      "LENET_DOWNLOAD_STALL": "1", "LENET_MNIST_DIR": None})
    assert time.monotonic() - start < 15
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == EXIT_CODES["data"] and "Traceback" not in result.stderr
    assert len(errors) == 1 and re.search(rf"could not download {NAMES[0]}: .*{pattern}", errors[0]), result.stderr
    assert f"downloading {slow_server}{path}{NAMES[0]}" in result.stderr            # not silent
    assert list(folder.iterdir()) == []                                              # no .part left


def test_download_from_a_server_that_never_answers(tmp_path):
    """A mirror that accepts the connection and then says nothing (a black hole after the handshake):
    given up after the stall timeout, announced on stderr, nothing left behind."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)                                   # never accepted: the kernel completes the handshake
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        folder = tmp_path / "mnist"
        folder.mkdir()
        result = cli("train", *QUICK, "--data", folder, cwd=tmp_path,
                     env={"LENET_MNIST_MIRRORS": f"{url}a/,{url}b/", "LENET_DOWNLOAD_STALL": "0.5",
                          "LENET_MNIST_DIR": None})
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == EXIT_CODES["data"] and len(errors) == 1, result.stderr
    assert re.search(rf"{url}a/{NAMES[0]}: no data for 0.5s; {url}b/{NAMES[0]}: no data for 0.5s", errors[0])
    assert result.stderr.count("downloading ") == 2 and list(folder.iterdir()) == []


def test_sigterm_during_download_leaves_nothing(tmp_path, slow_server):
    folder = tmp_path / "mnist"
    folder.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "LENET_MNIST_MIRRORS": slow_server + "trickle/",
           "PYTHONPATH": str(REPO)}
    env.pop("LENET_MNIST_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", "train", *QUICK, "--data", str(folder)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(folder.iterdir()), "the download never started"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_CODES["interrupted"], stderr
    assert "Traceback" not in stderr and "error: terminated (SIGTERM); nothing was saved" in stderr
    assert list(folder.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Weights: checked from the .npy headers before any array is read; values that do not fit refused
# ----------------------------------------------------------------------------------------------

def huge_weights_file(path):
    """A small .npz whose C1.W header declares a (6, 1, 5, 10**7) float32 array (1.2 GB)."""
    state = LeNet5().state_dict()
    np.savez(path, **{k: v for k, v in state.items() if k != "C1.W"})
    header = {"descr": "<f4", "fortran_order": False, "shape": (6, 1, 5, 10 ** 7)}
    member = bytearray()

    class Sink:
        def write(self, data):
            member.extend(data)

    np.lib.format.write_array_header_1_0(Sink(), header)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("C1.W.npy", bytes(member) + bytes(1 << 20))
    return path


def test_huge_declared_array_is_refused_without_allocating(tmp_path):
    path = huge_weights_file(tmp_path / "huge.npz")
    model = LeNet5()
    before = model.state_dict()
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"huge\.npz: entry 'C1\.W' declares 1,048,704 bytes, but its header says "
                                         r"1,200,000,128"):
        load_weights(model, path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes allocated"
    assert all(np.array_equal(before[k], v) for k, v in model.parameters().items())


@pytest.mark.parametrize("case,pattern", [
    ("typo", r"weights file typo\.npz does not exist"),
    ("directory", r"dir\.npz is a directory, not a \.npz file"),
    ("huge", r"'C1\.W' declares 1,048,704 bytes, but its header says 1,200,000,128"),
    ("overflow", r"'C1\.W' holds 1e\+300, beyond the largest float32"),
    ("complex", r"'C1\.W' has complex dtype complex(64|128)"),
])
def test_evaluate_refuses_bad_weights_before_loading_mnist(tmp_path, case, pattern):
    state = LeNet5().state_dict()
    if case == "directory":
        (tmp_path / "dir.npz").mkdir()
    elif case == "huge":
        huge_weights_file(tmp_path / "huge.npz")
    elif case in ("overflow", "complex"):
        state["C1.W"] = (state["C1.W"].astype(np.float64) * 0 + 1e300 if case == "overflow"
                         else state["C1.W"] + 1j)
        np.savez(tmp_path / f"{case}.npz", **state)
    name = {"typo": "typo.npz", "directory": "dir.npz"}.get(case, f"{case}.npz")
    before = snapshot(tmp_path)
    # no MNIST anywhere and a dead mirror: reading MNIST first would fail with a data error instead
    result = cli("evaluate", name, cwd=tmp_path, env={"LENET_MNIST_DIR": None})
    assert_one_line_error(result, EXIT_CODES["weights"], pattern)
    assert "download" not in result.stderr and snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------
# Training: divergence, interruption, resume
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,cause", [
    (["--optimizer", "adam", "--lr", "1e9"], r"the learning rate is likely too large"),
    (["--optimizer", "sgd", "--lr", "1e3"], r"the learning rate is likely too large"),
    (["--lr", "5", "--weight-decay", "1"], r"the weight decay is too large: lr x weight decay = 5 >= 1"),
])
def test_divergence_is_reported_and_nothing_saved(tmp_path, mnist_root, args, cause):
    before = snapshot(tmp_path)
    result = cli("train", *QUICK, "--limit", "320", *args, "--out", "w.npz", cwd=tmp_path,
                 env={"LENET_MNIST_DIR": str(mnist_root)})
    assert_one_line_error(result, EXIT_CODES["diverged"],
                          rf"training loss .* at epoch 1, batch \d+ .*: {cause}.*; nothing saved as a result")
    assert snapshot(tmp_path) == before


def test_interrupted_run_resumes_bit_identical(tmp_path, mnist_root):
    """SIGINT during epoch 2 of 3 keeps epoch 1 in the checkpoint; --resume ends with the same weights,
    bit for bit, as an uninterrupted run with the same seed."""
    env = {"LENET_MNIST_DIR": str(mnist_root)}
    recipe = ["--epochs", "3", "--limit", "1200", "--validation", "200", "--seed", "5", "--augment", "1", "--quiet"]
    reference = cli("train", *recipe, "--out", "ref.npz", "--no-checkpoint", cwd=tmp_path, env=env)
    assert reference.returncode == 0, reference.stderr
    assert "read once at the end of the run" in reference.stdout and "val acc" in reference.stdout

    full_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / ".no-cache"), "LENET_MNIST_MIRRORS": DEAD_MIRROR,
                "PYTHONPATH": str(REPO), **env}
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", "train", *recipe, "--out", "w.npz"], cwd=tmp_path,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "w.ckpt.npz"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    done = load_checkpoint(ckpt).epoch
    assert proc.returncode == EXIT_CODES["interrupted"] and done < 3, stderr
    epochs = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
    assert stderr.strip().splitlines()[-1] == (
        f"error: interrupted during epoch {done + 1}; {epochs} saved in w.ckpt.npz; "
        f"resume with: python -m lenet_core train --resume w.ckpt.npz --out w.npz --quiet")
    assert not (tmp_path / "w.npz").exists()

    mismatch = cli("train", "--resume", ckpt, "--out", "w.npz", "--seed", "6", cwd=tmp_path, env=env)
    assert_one_line_error(mismatch, EXIT_CODES["usage"], r"--seed 6 differs from the checkpoint's 5")
    resumed = cli("train", "--resume", ckpt, "--out", "w.npz", "--quiet", cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {ckpt} after epoch {done} of 3" in resumed.stdout
    with np.load(tmp_path / "ref.npz") as ref, np.load(tmp_path / "w.npz") as got:
        assert sorted(ref.files) == sorted(got.files)
        for name in ref.files:
            assert np.array_equal(ref[name], got[name]), name
    row = [r.stdout.splitlines()[-3].rsplit(" ", 1)[0] for r in (reference, resumed)]   # epoch 3 but seconds
    assert row[0] == row[1] and row[0].startswith("epoch  3")
    assert reference.stdout.splitlines()[-2].split(";")[0] == resumed.stdout.splitlines()[-2].split(";")[0]

    again = cli("train", "--resume", ckpt, "--out", "again.npz", "--no-checkpoint", "--quiet", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "after epoch 3 of 3" in again.stdout, again.stderr   # nothing left to train
    with np.load(tmp_path / "ref.npz") as ref, np.load(tmp_path / "again.npz") as got:
        assert all(np.array_equal(ref[name], got[name]) for name in ref.files)

    weights_as_checkpoint = cli("train", "--resume", "ref.npz", "--out", "x.npz", cwd=tmp_path, env=env)
    assert_one_line_error(weights_as_checkpoint, EXIT_CODES["weights"],
                          r"ref\.npz is not a lenet_core checkpoint \(no 'meta' entry\)")


# ----------------------------------------------------------------------------------------------
# API: clear errors instead of silent wrong answers or errors on private names
# ----------------------------------------------------------------------------------------------

def test_cross_entropy_refuses_targets_that_are_not_distributions():
    from lenet_core.losses import SoftmaxCrossEntropy

    logits = np.zeros((2, 3))
    loss = SoftmaxCrossEntropy()
    assert loss(logits, np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])) == pytest.approx(np.log(3))
    for targets, row in (([[1.0, 0, 0], [-1.0, 2.0, 0]], 1), ([[0.5, 0.2, 0], [1.0, 0, 0]], 0),
                         ([[np.nan, 1.0, 0], [1.0, 0, 0]], 0)):
        with pytest.raises(ValueError, match=rf"target row {row} is not a probability distribution"):
            loss(logits, np.array(targets))


def test_loss_backward_before_forward():
    from lenet_core.losses import MSELoss, SoftmaxCrossEntropy

    for loss in (SoftmaxCrossEntropy(), MSELoss()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            loss.backward()


def test_conv2d_backward_refuses_a_dout_of_the_wrong_shape():
    from lenet_core import Conv2d

    conv = Conv2d(1, 2, 3, rng=0)
    conv.forward(np.zeros((2, 1, 6, 6), np.float32))                  # output (2, 2, 4, 4)
    for dout in (np.ones((1, 2, 4, 4), np.float32), np.ones((2, 2, 3, 4), np.float32),
                 np.ones((2, 3, 4, 4), np.float32)):
        with pytest.raises(ValueError, match=rf"dout has shape \({', '.join(map(str, dout.shape))}\), "
                                             r"but the forward pass produced output of shape \(2, 2, 4, 4\)"):
            conv.backward(dout)
    with pytest.raises(ValueError, match=r"dout must have shape \(N, C, H, W\), got shape \(32,\)"):
        conv.backward(np.ones(32, np.float32))


def test_conv2d_refuses_complex_input():
    from lenet_core import Conv2d

    with pytest.raises(TypeError, match="x must hold real numbers, got dtype complex128"):
        Conv2d(1, 2, 3, rng=0).forward(np.zeros((1, 1, 5, 5)) + 1j)


def test_output_that_fails_after_training_keeps_the_run(tmp_path, mnist_root):
    """--out's folder turns into a file while training: exit 5, one line, and the finished run is in the
    checkpoint, which --resume turns into weights."""
    (tmp_path / "sub").mkdir()
    full_env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / ".no-cache"), "LENET_MNIST_MIRRORS": DEAD_MIRROR,
                "PYTHONPATH": str(REPO), "LENET_MNIST_DIR": str(mnist_root)}
    args = ["--epochs", "2", "--limit", "1200", "--validation", "100", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", "train", *args, "--out", "sub/w.npz",
                             "--checkpoint", "ck.npz"], cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "ck.npz").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    (tmp_path / "sub").rmdir()
    (tmp_path / "sub").write_text("now a file")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_CODES["output"], stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert re.match(r"error: could not write --out sub/w\.npz: File exists; epochs 1-2 are saved in ck\.npz; save them "
                    r"with: python -m lenet_core train --resume ck\.npz --out OTHER\.npz --checkpoint ck\.npz --quiet$",
                    stderr.strip()), stderr
    resumed = cli("train", "--resume", "ck.npz", "--out", "w.npz", "--no-checkpoint", cwd=tmp_path,
                  env={"LENET_MNIST_DIR": str(mnist_root)})
    assert resumed.returncode == 0 and (tmp_path / "w.npz").exists(), resumed.stderr
    evaluated = [cli("evaluate", name, cwd=tmp_path, env={"LENET_MNIST_DIR": str(mnist_root)}).stdout
                 for name in ("w.npz", "ck.npz")]                     # evaluate reads checkpoints too
    assert evaluated[0] == evaluated[1] and "test accuracy" in evaluated[0]


def test_an_interrupted_save_leaves_the_old_file(tmp_path):
    """What SIGINT/SIGTERM (a KeyboardInterrupt in the CLI) does in the middle of a save: the temporary
    file is removed and the previous file stays as it was."""
    from lenet_core._files import atomic_write

    path = save_weights(LeNet5(seed=1), tmp_path / "w.npz")
    before = snapshot(tmp_path)

    def interrupted(f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, ".npz", interrupted)
    assert snapshot(tmp_path) == before


def test_a_file_name_too_long_is_refused_before_training(tmp_path):
    name = "w" * 250 + ".npz"
    result = cli("train", "--out", name, cwd=tmp_path, env={"LENET_MNIST_DIR": str(tmp_path / "none")})
    assert_one_line_error(result, EXIT_CODES["usage"], r"--checkpoint w+\.\.\.w+\.ckpt\.npz \(259 characters\): "
                                                       r"cannot be written \(File name too long\)")
    assert snapshot(tmp_path) == []


@pytest.mark.parametrize("make,error,message", [
    (lambda C: C(0, 6, 5), ValueError, r"Conv2d: in_channels must be a positive integer, got 0"),
    (lambda C: C(1, -2, 5), ValueError, r"Conv2d: out_channels must be a positive integer, got -2"),
    (lambda C: C(1, 6, 0), ValueError, r"kernel_size must be at least 1, got 0"),
    (lambda C: C(1, 6, (5, 0)), ValueError, r"kernel_size must be at least 1, got \(5, 0\)"),
    (lambda C: C(1, 6, 5, stride=0), ValueError, r"stride must be at least 1, got 0"),
    (lambda C: C(1, 6, 5, padding=-1), ValueError, r"padding must be at least 0, got -1"),
    (lambda C: C(1, 6, 5).forward([[[[0.0] * 8] * 8]]), TypeError, r"expects a NumPy array .* got list"),
])
def test_conv2d_refuses_bad_arguments_and_input(make, error, message):
    from lenet_core import AvgPool2d, Conv2d

    with pytest.raises(error, match=message):
        make(Conv2d)
    with pytest.raises(ValueError, match="kernel_size must be at least 1, got 0"):
        AvgPool2d(0)


def test_backward_before_forward_is_a_clear_error():
    from lenet_core import Conv2d

    with pytest.raises(RuntimeError, match="backward called before forward"):
        Conv2d(1, 2, 3).backward(np.ones((1, 2, 4, 4), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        LeNet5().backward(np.ones((1, 10), np.float32))
