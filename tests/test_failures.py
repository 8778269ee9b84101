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


def test_interrupted_run_resumes_bit_identical(tmp_path, mnist_root, monkeypatch, capsys):
    """Ctrl-C during epoch 2 of 3 keeps epoch 1 in the checkpoint; --resume ends with the same weights,
    bit for bit, as an uninterrupted run with the same seed. (In this process, Ctrl-C arriving as epoch
    1's line is printed; SIGTERM in a subprocess: test_lenet1998_checkpoints_and_the_printed_command...)"""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENET_MNIST_DIR", str(mnist_root))
    recipe = ["--epochs", "3", "--limit", "256", "--validation", "64", "--seed", "5", "--augment", "1"]
    assert cli_module.main(["train", *recipe, "--quiet", "--out", "ref.npz", "--no-checkpoint"]) == 0
    reference = capsys.readouterr().out
    assert "read once at the end of the run" in reference and "val acc" in reference

    assert interrupted_after_first_epoch(["train", *recipe, "--out", "w.npz"]) == EXIT_CODES["interrupted"]
    ckpt = tmp_path / "w.ckpt.npz"
    assert load_checkpoint(ckpt).epoch == 1
    err = capsys.readouterr().err.strip().splitlines()
    match = re.fullmatch(r"error: interrupted during epoch 2; epoch 1 is saved in w\.ckpt\.npz; resume with: (.*)",
                         err[-1])
    assert match, err
    assert shlex.split(match.group(1))[0] == f"LENET_MNIST_DIR={mnist_root}"      # the run found MNIST through it
    assert shlex.split(match.group(1))[2:] == ["-m", "lenet_core", "train", "--resume", "w.ckpt.npz", "--out", "w.npz"]
    assert not (tmp_path / "w.npz").exists()

    assert cli_module.main(["train", "--resume", str(ckpt), "--out", "w.npz", "--seed", "6"]) == EXIT_CODES["usage"]
    assert "--seed 6 differs from the checkpoint's 5" in capsys.readouterr().err
    assert cli_module.main(["train", "--resume", str(ckpt), "--out", "w.npz", "--quiet"]) == 0
    resumed = capsys.readouterr().out
    assert f"resumed from {ckpt} after epoch 1 of 3" in resumed
    assert same_weights(tmp_path / "ref.npz", tmp_path / "w.npz")
    row = [r.splitlines()[-3].rsplit(" ", 1)[0] for r in (reference, resumed)]   # epoch 3 but seconds
    assert row[0] == row[1] and row[0].startswith("epoch  3")
    assert reference.splitlines()[-2].split(";")[0] == resumed.splitlines()[-2].split(";")[0]

    assert cli_module.main(["train", "--resume", str(ckpt), "--out", "again.npz", "--no-checkpoint", "--quiet"]) == 0
    assert "after epoch 3 of 3" in capsys.readouterr().out                # nothing left to train
    assert same_weights(tmp_path / "ref.npz", tmp_path / "again.npz")

    assert cli_module.main(["train", "--resume", "ref.npz", "--out", "x.npz"]) == EXIT_CODES["weights"]
    assert re.search(r"ref\.npz is not a lenet_core checkpoint \(no 'meta' entry\)", capsys.readouterr().err)


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
    args = ["--epochs", "2", "--limit", "256", "--validation", "64", "--quiet"]
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
                    rf"with: LENET_MNIST_DIR={re.escape(shlex.quote(str(mnist_root)))} python -m lenet_core train "
                    r"--resume ck\.npz --out OTHER\.npz --checkpoint ck\.npz --quiet$", stderr.strip()), stderr
    resumed = cli("train", "--resume", "ck.npz", "--out", "w.npz", "--no-checkpoint", cwd=tmp_path,
                  env={"LENET_MNIST_DIR": str(mnist_root)})
    assert resumed.returncode == 0 and (tmp_path / "w.npz").exists(), resumed.stderr
    evaluated = [cli("evaluate", name, cwd=tmp_path, env={"LENET_MNIST_DIR": str(mnist_root)}).stdout
                 for name in ("w.npz", "ck.npz")]                     # evaluate reads checkpoints too
    assert evaluated[0] == evaluated[1] and "test accuracy" in evaluated[0]


def test_signals_wait_for_the_end_of_a_checkpoint_with_other_threads_running():
    """Ctrl-C during the checkpoint's block arrives after it, even when the process has other threads
    (OpenBLAS starts some) to which the kernel may hand the signal."""
    from lenet_core.__main__ import _signals_deferred

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    reached = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(2000):
                    time.sleep(0)                  # bytecode boundaries, where a handler would run
                reached.append("the end of the block")
    finally:
        stop.set()
        helper.join()
    assert reached == ["the end of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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


# ==============================================================================================
# Round 2 (../shared/reviews/reliability-review-2.md): every row, and the classes beyond the rows
# ==============================================================================================

import json
import shlex
import socket
import struct
import zlib

from lenet_core import __main__ as cli_module

TINY = ["--epochs", "2", "--limit", "64", "--validation", "64", "--batch-size", "32"]
RSS_WRAPPER = ("import json, resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True, stdin=subprocess.DEVNULL, "
               "timeout=60)\n"
               "print(json.dumps([r.returncode, r.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")


def cli_rss(*args, cwd, env=None):
    """``cli(...)`` run under a small wrapper that reports the child's peak RSS (KiB): ``(result, rss)``."""
    environment = {**os.environ, "XDG_CACHE_HOME": str(Path(cwd) / ".no-cache"),
                   "LENET_MNIST_MIRRORS": DEAD_MIRROR, "PYTHONPATH": str(REPO), **(env or {})}
    out = subprocess.run([sys.executable, "-c", RSS_WRAPPER, sys.executable, "-m", "lenet_core", *map(str, args)],
                         capture_output=True, text=True, cwd=cwd, env=environment, timeout=90)
    code, stderr, rss = json.loads(out.stdout)
    return subprocess.CompletedProcess(args, code, "", stderr), rss


@pytest.fixture(scope="module")
def idle_rss(tmp_path_factory):
    """Peak RSS (KiB) of the CLI doing nothing but parse and print its help (numpy imported)."""
    _, rss = cli_rss("train", "--help", cwd=tmp_path_factory.mktemp("idle"))
    return rss


# --- hostile archives, built in a fraction of a second: a real deflate stream of N zero bytes is one
# --- compressed megabyte (full flush, so no block refers to another) repeated N/1MB times

def deflated(prefix: bytes, zeros: int):
    """Raw deflate of ``prefix + bytes(zeros)``, its CRC-32 and its length, built without compressing
    ``zeros`` bytes."""
    mb = 1 << 20
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = block.compress(bytes(mb)) + block.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(zeros, mb)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out += block * whole + tail.compress(bytes(rest)) + tail.flush()
    crc = zlib.crc32(prefix)
    zero_mb = bytes(mb)
    for _ in range(whole):
        crc = zlib.crc32(zero_mb, crc)
    return out, zlib.crc32(bytes(rest), crc), len(prefix) + zeros


def write_zip(path, members):
    """A zip archive of deflated ``members`` ``[(name, (data, crc, size))]``, written by hand so that a
    member's honest declared size can be far larger than the file."""
    local, central, offset = b"", b"", 0
    for name, (data, crc, size) in members:
        name = name.encode()
        header = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                               len(name), 0, 0, 0, 0, 0, offset) + name
        local += header + name + data
        offset += len(header) + len(name) + len(data)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), offset, 0)
    Path(path).write_bytes(local + central + end)
    return path


def npy_header(shape, descr="<f4"):
    member = bytearray()

    class Sink:
        def write(self, data):
            member.extend(data)

    np.lib.format.write_array_header_1_0(Sink(), {"descr": descr, "fortran_order": False, "shape": shape})
    return bytes(member)


def gzip_bomb(path, header: bytes, zeros: int):
    """A gzip file of ``header + bytes(zeros)``."""
    data, crc, size = deflated(header, zeros)
    Path(path).write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + data + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return path


def weights_bomb(path):
    """LeNet-5 weights whose C1.W entry honestly declares 1 GiB (a 1 MB file)."""
    members = [(f"{k}.npy", deflated(npy_header(v.shape), v.nbytes)) for k, v in LeNet5().state_dict().items()
               if k != "C1.W"]
    members.append(("C1.W.npy", deflated(npy_header((6, 1, 5, (1 << 30) // 120)), 6 * 5 * ((1 << 30) // 120) * 4)))
    return write_zip(path, members)


def checkpoint_bomb(path, source):
    """A checkpoint with 20 extra optimizer buffers of 60 MB each, every one under the per-array limit
    (1.2 GB declared in about 1.3 MB)."""
    with np.load(source) as archive:
        members = [(f"{k}.npy", deflated(npy_header(archive[k].shape, archive[k].dtype.str),
                                         archive[k].nbytes)) for k in archive.files if k != "meta"]
        meta = archive["meta"].tobytes()
    members.append(("meta.npy", (lambda h: (zlib.compress(h + meta)[2:-4], zlib.crc32(h + meta), len(h) + len(meta)))(
        npy_header((len(meta),), "|u1"))))
    for i in range(20):
        members.append((f"optimizer/C1.W/v{i}.npy", deflated(npy_header((15_000_000,)), 60_000_000)))
    return write_zip(path, members)


def interrupted_after_first_epoch(argv):
    """Run the CLI in this process with Ctrl-C arriving as epoch 1's line is printed (after its
    checkpoint is written); returns the exit code and stderr's last line."""
    from lenet_core.train import History

    real_row = History.row

    def row(self, i):
        if i == 0:
            raise KeyboardInterrupt
        return real_row(self, i)

    History.row = row
    try:
        return cli_module.main(argv)
    finally:
        History.row = real_row


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_root):
    """A checkpoint after epoch 1 of 2 (the run stopped by Ctrl-C): ``(folder, checkpoint, argv of the run)``."""
    folder = tmp_path_factory.mktemp("trained")
    argv = ["train", *TINY, "--data", str(mnist_root), "--out", str(folder / "w.npz")]
    assert interrupted_after_first_epoch(argv) == EXIT_CODES["interrupted"]
    assert load_checkpoint(folder / "w.ckpt.npz").epoch == 1
    return folder, folder / "w.ckpt.npz", argv


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """In-process runs: MNIST nowhere, downloads only from a dead local mirror, an empty cache."""
    (tmp_path / "no-mnist").mkdir()
    monkeypatch.setenv("LENET_MNIST_DIR", str(tmp_path / "no-mnist"))
    monkeypatch.setenv("LENET_MNIST_MIRRORS", DEAD_MIRROR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-mnist"))


def tamper(source, dest, meta=None, arrays=None, text=None):
    """A copy of checkpoint ``source`` with its metadata changed by ``meta(dict)`` (or replaced by ``text``)
    and its arrays by ``arrays(dict)``."""
    with np.load(source) as archive:
        content = {k: archive[k] for k in archive.files}
    if meta is not None or text is not None:
        data = json.loads(content["meta"].tobytes())
        if meta is not None:
            meta(data)
        raw = text(json.dumps(data)) if text is not None else json.dumps(data)
        content["meta"] = np.frombuffer(raw.encode(), dtype=np.uint8)
    if arrays is not None:
        arrays(content)
    np.savez(dest, **content)
    return dest


def set_arg(key, value):
    return lambda meta: meta["args"].__setitem__(key, value)


@pytest.mark.parametrize("case,change,pattern", [
    ("ckpt_args_epochs_float", dict(meta=set_arg("epochs", 2.5)), r"--epochs 2\.5 is not an integer"),
    ("ckpt_args_epochs_string", dict(meta=set_arg("epochs", "2")), r"--epochs '2' is not an integer"),
    ("ckpt_args_epochs_400_digits", dict(meta=set_arg("epochs", 10 ** 400)), r"--epochs must be an integer >= 1 "
                                                                             r"and <= 10000"),
    ("ckpt_args_batch_size_negative", dict(meta=set_arg("batch_size", -5)), r"--batch-size must be .* got '-5'"),
    ("ckpt_args_batch_size_0", dict(meta=set_arg("batch_size", 0)), r"--batch-size must be .* got '0'"),
    ("ckpt_args_limit_0", dict(meta=set_arg("limit", 0)), r"--limit must be .* got '0'"),
    ("ckpt_args_validation_70000", dict(meta=set_arg("validation", 70000)), r"--validation must be .* <= 59999"),
    ("ckpt_args_optimizer_unknown", dict(meta=set_arg("optimizer", "rmsprop")), r"--optimizer 'rmsprop' is not one"),
    ("ckpt_args_seed_bool", dict(meta=set_arg("seed", True)), r"--seed True is not an integer"),
    ("ckpt_args_lr_nan", dict(meta=set_arg("lr", 1.0), text=lambda t: t.replace('"lr": 1.0', '"lr": NaN')),
     r"unreadable checkpoint metadata \(NaN is not a number a checkpoint holds"),
    ("ckpt_args_missing", dict(meta=lambda m: m["args"].pop("schedule")), r"does not record --schedule"),
    ("ckpt_meta_lr_nan", dict(text=lambda t: t.replace('"base_lr": 0.05', '"base_lr": NaN')),
     r"NaN is not a number a checkpoint holds"),
    ("ckpt_meta_steps_infinity", dict(text=lambda t: t.replace('"steps": 2', '"steps": Infinity')),
     r"Infinity is not a number a checkpoint holds"),
    ("ckpt_meta_steps_string", dict(meta=lambda m: m["optimizer"].__setitem__("steps", "2")),
     r"a step count >= 0"),
    ("ckpt_meta_deeply_nested_json", dict(text=lambda t: "[" * 100000 + "]" * 100000), r"nested too deeply"),
    ("ckpt_meta_not_json", dict(text=lambda t: t[:-5]), r"unreadable checkpoint metadata"),
    ("ckpt_meta_epoch_huge", dict(meta=lambda m: m.__setitem__("epoch", 10 ** 400)), r"unreadable checkpoint "
                                                                                     r"metadata|not a positive"),
    ("ckpt_meta_epoch_float", dict(meta=lambda m: m.__setitem__("epoch", 1.0)), r"not a positive integer"),
    ("ckpt_meta_history_short", dict(meta=lambda m: m["history"]["loss"].pop()), r"history does not match"),
    ("ckpt_meta_history_string", dict(meta=lambda m: m["history"]["loss"].__setitem__(0, "x")),
     r"history's 'loss' holds"),
    ("ckpt_meta_rng", dict(meta=lambda m: m["rng"]["state"].__setitem__("state", "0")), r"not a PCG64 state"),
    ("ckpt_meta_start_loss_missing", dict(meta=lambda m: m.pop("start_loss")),
     r"the starting loss divergence is measured against is None"),
    ("ckpt_meta_start_loss_negative", dict(meta=lambda m: m.__setitem__("start_loss", -1.0)),
     r"the starting loss .* is -1\.0, not a finite number > 0"),
    ("ckpt_meta_start_loss_string", dict(meta=lambda m: m.__setitem__("start_loss", "2.3")),
     r"the starting loss .* is 2\.3, not a finite number > 0"),
    ("ckpt_meta_scheduler_epoch", dict(meta=lambda m: m["scheduler"].__setitem__("epoch", 7)),
     r"scheduler state .* does not fit 1 finished epochs"),
    ("ckpt_meta_format", dict(meta=lambda m: m.__setitem__("format", "x" * 1000)), r"is not a lenet_core checkpoint"),
    ("ckpt_meta_too_big", dict(meta=lambda m: m.__setitem__("pad", "x" * (5 << 20))), r"'meta' has shape"),
    ("ckpt_velocity_nan", dict(arrays=lambda a: a["optimizer/C1.W/velocity"].fill(np.nan)),
     r"'optimizer/C1\.W/velocity' contains NaN"),
    ("ckpt_velocity_missing", dict(arrays=lambda a: a.pop("optimizer/C1.W/velocity")),
     r"optimizer state of C1\.W holds \[\], a numpy momentum run has \['velocity'\]"),
    ("ckpt_velocity_shape", dict(arrays=lambda a: a.__setitem__("optimizer/C1.W/velocity", np.zeros(3, np.float32))),
     r"state does not fit this run .*'C1\.W'/'velocity' has shape \(3,\)"),
    ("ckpt_extra_entry", dict(arrays=lambda a: a.__setitem__("junk", np.zeros(3))), r"entry 'junk' is not one"),
    ("ckpt_weights_nan", dict(arrays=lambda a: a["model/F6.W"].fill(np.inf)), r"'model/F6\.W' contains NaN"),
    ("ckpt_model_other", dict(meta=set_arg("model", "lenet1998")), r"its weights are not those of --model lenet1998"),
])
def test_tampered_checkpoint_is_refused_in_one_line(trained, tmp_path, no_mnist, capsys, case, change, pattern):
    """Row ckpt_* (and more of the class): a checkpoint is checked like a command line, in one line with
    exit code 4 naming it, before any data is read; nothing on disk changes."""
    folder, ckpt, _ = trained
    bad = tamper(ckpt, tmp_path / "bad.ckpt.npz", **change)
    before = snapshot(tmp_path)
    code = cli_module.main(["train", "--resume", str(bad), "--out", str(tmp_path / "w.npz"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CODES["weights"], (code, err)
    assert len(err) == 1 and "bad.ckpt.npz" in err[0] and re.search(pattern, err[0]), err
    assert snapshot(tmp_path) == before


def test_resume_refuses_an_explicit_option_equal_to_the_default(trained, tmp_path, capsys):
    """Row resume_explicit_epochs_equal_default; and paths compared after resolving them."""
    folder, ckpt, _ = trained
    code = cli_module.main(["train", "--resume", str(ckpt), "--epochs", "10", "--out", str(tmp_path / "w.npz")])
    assert code == EXIT_CODES["usage"]
    assert re.search(r"--epochs 10 differs from the checkpoint's 2", capsys.readouterr().err)
    (tmp_path / "link.npz").symlink_to(tmp_path / "w.npz")
    (tmp_path / "sub").mkdir()
    for argv, pattern in (
            (["--out", "w.npz", "--checkpoint", "sub/../w.npz"], r"--checkpoint and --out name the same file"),
            (["--out", "w.npz", "--checkpoint", "link.npz"], r"--checkpoint and --out name the same file"),
            (["--out", "w.npz", "--resume", "link.npz"], r"--resume link\.npz is also --out")):
        result = cli("train", *argv, cwd=tmp_path)
        assert_one_line_error(result, EXIT_CODES["usage"], pattern)


def test_evaluate_reads_a_checkpoint_checked_against_the_model(trained, tmp_path, mnist_root):
    folder, ckpt, _ = trained
    bad = tamper(ckpt, tmp_path / "bad.ckpt.npz", arrays=lambda a: a.__setitem__("model/C1.W", np.zeros((6, 1, 5, 6),
                                                                                                      np.float32)))
    result = cli("evaluate", bad, cwd=tmp_path)
    assert_one_line_error(result, EXIT_CODES["weights"], r"'model/C1\.W' has shape \(6, 1, 5, 6\), the model's C1\.W "
                                                          r"has \(6, 1, 5, 5\)")


@pytest.mark.parametrize("args,code,pattern", [
    (["train", "--epochs", "1" + "0" * 400], 2, r"argument --epochs: must be an integer >= 1 and <= 10000, got "
                                                r"'10000000000000000000\.\.\.00000000' \(401 characters\)"),
    (["train", "--seed", "1" + "0" * 400], 2, r"argument --seed: must be an integer >= 0 and <= 4294967295"),
    (["train", "--batch-size", "9" * 5000], 2, r"argument --batch-size: expected an integer"),
    (["train", "--out", "/".join(["x" * 250] * 20) + "/w.npz"], 2, r"--out x+\.\.\.x+/w\.npz \(5,025 characters\): "
                                                                  r"cannot be written \(File name too long\)"),
    (["train", "--data", "no\nsuch"], 3, r"--data no\\nsuch does not exist"),
    (["train", "--out", "a\nb.npz", "--epochs", "0"], 2, r"--epochs"),
    (["train", "--out", "new\nline.npz", "--data", "none"], 3, r"--data none does not exist"),
    (["train", "--model", "lenet1998", "--weight-decay", "0.5"], 2, r"--weight-decay 0\.5 does not apply to "
                                                                    r"--model lenet1998"),
    (["train", "--model", "lenet1998", "--optimizer", "adam"], 2, r"--optimizer adam does not apply"),
    (["evaluate", "bad\rname.npz"], 4, r"weights file bad\\rname\.npz does not exist"),
])
def test_one_line_and_the_documented_code_for_odd_values(tmp_path, args, code, pattern):
    """Rows opt_epochs_400_digits, opt_seed_400_digits, out_path_over_path_max, data_path_with_newline,
    lenet1998_ignored_options (the option is refused): one line, the option named, nothing created."""
    result = cli(*args, cwd=tmp_path, env={"LENET_MNIST_DIR": str(tmp_path / "none")})
    assert_one_line_error(result, code, pattern)
    assert snapshot(tmp_path) == []


def test_deleted_working_folder(tmp_path, mnist_root):
    """Row cwd_deleted: a usage error naming --out (or the weights), before anything is loaded."""
    gone = tmp_path / "gone"

    def enter_and_delete():
        gone.mkdir()
        os.chdir(gone)
        os.rmdir(gone)

    env = {**os.environ, "PYTHONPATH": str(REPO), "LENET_MNIST_DIR": str(mnist_root)}
    for args, pattern in ((["train", "--epochs", "1"], r"--out weights\.npz: the working folder no longer exists"),
                          (["evaluate", "w.npz"], r"weights w\.npz: the working folder no longer exists")):
        result = subprocess.run([sys.executable, "-m", "lenet_core", *args], capture_output=True, text=True, env=env,
                                timeout=60, preexec_fn=enter_and_delete)
        assert_one_line_error(result, EXIT_CODES["usage"], pattern)


@pytest.mark.parametrize("variable,value", [("LENET_DOWNLOAD_STALL", v) for v in ("0", "-1", "nan", "abc", "inf")]
                         + [("LENET_DOWNLOAD_DEADLINE", "1e309")])
def test_bad_download_settings_change_nothing(tmp_path, variable, value):
    """Row stall_env_bad_values: one line naming the variable, and no cache folder made."""
    result = cli("train", *QUICK, cwd=tmp_path, env={"LENET_MNIST_DIR": None, variable: value})
    assert_one_line_error(result, EXIT_CODES["data"], rf"\${variable}='{re.escape(value)}': expected a number of "
                                                      rf"seconds > 0")
    assert snapshot(tmp_path) == []


def test_no_home_directory(tmp_path, mnist_root, monkeypatch, capsys):
    """Row home_unset_unknown_uid: HOME and XDG_CACHE_HOME unset and no passwd entry for the user (as
    Python's Path.home() sees it: pwd.getpwuid raises KeyError). With --data the cache is not needed and
    the run works; without, one line naming what to set, exit 3."""
    import pwd

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for key in ("HOME", "XDG_CACHE_HOME", "LENET_MNIST_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.setenv("LENET_MNIST_MIRRORS", DEAD_MIRROR)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError):                    # the situation is real
        Path.home()
    assert cli_module.main(["train", *QUICK, "--data", str(mnist_root)]) == 0 and (tmp_path / "weights.npz").exists()
    capsys.readouterr()
    assert cli_module.main(["train", *QUICK, "--out", "other.npz"]) == EXIT_CODES["data"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no home directory for the download cache" in err[0] and "LENET_MNIST_DIR" in err[0]


# --- special files and size bombs: one line naming the file, the documented code, bounded memory

def special_file(path, case, keep) -> bool:
    """Make ``path`` a FIFO, a symlink to /dev/zero, a listening Unix socket (kept open in ``keep``) or a
    directory, as ``case`` says; False for any other case."""
    if case == "fifo":
        os.mkfifo(path)
    elif case == "dev_zero":
        path.symlink_to("/dev/zero")
    elif case == "socket":
        keep.append(socket.socket(socket.AF_UNIX))
        keep[-1].bind(str(path))
    elif case == "directory":
        path.mkdir()
    return case in ("fifo", "dev_zero", "socket", "directory")


@pytest.mark.parametrize("case", ["fifo", "dev_zero", "socket", "directory", "weights_bomb", "checkpoint_bomb",
                                  "many_entries"])
def test_hostile_weights_and_checkpoints(tmp_path, trained, idle_rss, case):
    """evaluate and train --resume refuse special files and archives declaring far more than they hold,
    at once and in little memory (peak RSS of the child under 100 MiB above an idle CLI)."""
    keep = []
    target = tmp_path / "x.npz"
    if special_file(target, case, keep):
        pass
    elif case == "weights_bomb":
        weights_bomb(target)
    elif case == "checkpoint_bomb":
        checkpoint_bomb(target, trained[1])
    else:
        write_zip(target, [(f"e{i}.npy", deflated(npy_header((1,)), 4)) for i in range(600)])
    pattern = {"fifo": r"is a FIFO \(named pipe\), not a regular file", "dev_zero": r"is a character device",
               "socket": r"is a socket", "directory": r"is a directory",
               "weights_bomb": r"its entries declare 1,073,[\d,]+ bytes uncompressed, more than the 16,777,216",
               "checkpoint_bomb": r"its entries declare 1,20\d,[\d,]+ bytes uncompressed, more than the 16,777,216",
               "many_entries": r"600 entries"}[case]
    for argv in (["evaluate", target], ["train", "--resume", target, "--out", tmp_path / "w.npz"]):
        result, rss = cli_rss(*argv, cwd=tmp_path, env={"LENET_MNIST_DIR": str(tmp_path / "none")})
        assert_one_line_error(result, EXIT_CODES["weights"], r"x\.npz.*" + pattern)
        print(f"{case} {argv[0]}: peak RSS {rss / 1024:.0f} MiB (idle CLI {idle_rss / 1024:.0f} MiB)")
        assert rss - idle_rss < 100 * 1024, (rss, idle_rss)
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize("case", ["fifo", "dev_zero", "socket", "gzip_bomb", "huge_header", "size_bomb"])
def test_hostile_mnist_files(tmp_path, linked_mnist, idle_rss, case):
    """Row mnist_symlink_to_dev_zero and its class: special files and gzip bombs in place of an MNIST file
    are refused in one accurate line, before anything is decompressed beyond what the message needs."""
    keep = []
    name = NAMES[3]
    target = linked_mnist / name
    target.unlink()
    if special_file(target, case, keep):
        pass
    elif case == "gzip_bomb":                    # a valid header, then 2 GiB instead of 10,000 labels
        gzip_bomb(target, struct.pack(">II", 0x801, 10000), 2 << 30)
    elif case == "huge_header":
        gzip_bomb(target, struct.pack(">IIII", 0x803, 1 << 30, 28, 28), 1 << 20)
    else:                                        # the training images' header, then 2 GiB
        gzip_bomb(target, struct.pack(">IIII", 0x803, 60000, 28, 28), 2 << 30)
    pattern = {"fifo": r"is a FIFO \(named pipe\), not the file", "dev_zero": r"is a character device \(a symlink "
                                                                             r"to /dev/zero\)",
               "socket": r"is a socket", "gzip_bomb": r"not the canonical 4,542; header says shape \(10000,\) "
                                                      r"\(10000 bytes of data\) but the file holds more than 10000",
               "huge_header": r"header declares shape \(1073741824, 28, 28\)",
               "size_bomb": r"holds more than 47040000 bytes"}[case]
    before = snapshot(tmp_path)
    result, rss = cli_rss("train", *QUICK, "--data", linked_mnist, cwd=tmp_path)
    assert_one_line_error(result, EXIT_CODES["data"], rf"{name}: .*{pattern}")
    print(f"MNIST {case}: peak RSS {rss / 1024:.0f} MiB (idle CLI {idle_rss / 1024:.0f} MiB)")
    assert rss - idle_rss < 100 * 1024, (rss, idle_rss)
    assert snapshot(tmp_path) == before
    if case in ("gzip_bomb", "size_bomb"):        # the library without checksums: bounded too
        with pytest.raises(MNISTError, match="holds more than"):
            load_mnist(linked_mnist, download=False, verify=False)


class EndlessHandler(http.server.BaseHTTPRequestHandler):
    """``/endless/``: zeros without end and no Content-Length; ``/liar/``: announces 10 GB."""

    def do_GET(self):
        self.send_response(200)
        if self.path.startswith("/liar/"):
            self.send_header("Content-Length", str(10 ** 10))
        self.end_headers()
        try:
            while not self.server.stopping.is_set():
                self.wfile.write(bytes(1 << 16))
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("path,pattern", [("endless/", r"sent more than the file's 9,912,422 bytes; stopped"),
                                          ("liar/", r"announces 10,000,000,000 bytes, the file has 9,912,422")])
def test_a_mirror_that_sends_too_much(tmp_path, idle_rss, path, pattern):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EndlessHandler)
    server.daemon_threads, server.stopping = True, threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = tmp_path / "mnist"
    folder.mkdir()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{path}"
        result, rss = cli_rss("train", *QUICK, "--data", folder, cwd=tmp_path,
                              env={"LENET_MNIST_MIRRORS": url, "LENET_MNIST_DIR": ""})
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == EXIT_CODES["data"] and len(errors) == 1, result.stderr
    assert re.search(rf"could not download {NAMES[0]}: {re.escape(url)}{NAMES[0]}: {pattern}", errors[0])
    print(f"mirror {path}: peak RSS {rss / 1024:.0f} MiB (idle CLI {idle_rss / 1024:.0f} MiB)")
    assert rss - idle_rss < 100 * 1024 and list(folder.iterdir()) == []


# --- no run lost: every trainer checkpoints and resumes; outputs and streams that fail keep the epochs

def full_env(mnist_root=None, **extra):
    env = {**os.environ, "XDG_CACHE_HOME": "/nonexistent-cache", "LENET_MNIST_MIRRORS": DEAD_MIRROR,
           "PYTHONPATH": str(REPO), **extra}
    if mnist_root is None:
        env.pop("LENET_MNIST_DIR", None)
    else:
        env["LENET_MNIST_DIR"] = str(mnist_root)
    return env


def stop_after_first_checkpoint(argv, cwd, env, checkpoint, sig=signal.SIGTERM):
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def same_weights(a, b):
    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def test_lenet1998_checkpoints_and_the_printed_command_resumes_it(tmp_path, mnist_root):
    """Rows lenet1998_sigterm_keeps_nothing, lenet1998_ignored_options (--checkpoint applies) and
    resume_printed_command: SIGTERM in pass 2 keeps pass 1 in --checkpoint; the printed command, run as
    printed in a shell (quoted paths with a space and a quote, --data and --history carried, no
    LENET_MNIST_DIR), ends bit-identical to an uninterrupted run and writes the history."""
    recipe = ["--model", "lenet1998", "--epochs", "4", "--limit", "192", "--validation", "32", "--seed", "2",
              "--augment", "1", "--quiet", "--data", str(mnist_root)]
    env = full_env()
    ckpt = tmp_path / "run's ckpt.npz"
    code, stderr = stop_after_first_checkpoint(
        ["train", *recipe, "--out", "my w.npz", "--checkpoint", ckpt.name, "--history", "h 1.json"], tmp_path, env, ckpt)
    lines = stderr.strip().splitlines()
    assert code == EXIT_CODES["interrupted"] and len(lines) == 1, stderr
    done = load_checkpoint(ckpt).epoch
    saved = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
    match = re.fullmatch(rf"error: terminated \(SIGTERM\) during epoch {done + 1}; {saved} saved in run's ckpt\.npz; "
                         rf"resume with: (.*)", lines[0])
    assert match and done < 4, lines
    command = match.group(1)
    assert shlex.split(command)[1:] == ["-m", "lenet_core", "train", "--resume", ckpt.name, "--out", "my w.npz",
                                        "--checkpoint", ckpt.name, "--data", str(mnist_root), "--history", "h 1.json",
                                        "--quiet"]
    resumed = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "h 1.json").read_text())["epoch"] == [1, 2, 3, 4]
    reference = cli("train", *recipe, "--out", "ref.npz", "--no-checkpoint", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    assert same_weights(tmp_path / "ref.npz", tmp_path / "my w.npz")


def test_torch_engine_checkpoints_and_resumes_bit_identically(tmp_path, mnist_root, capsys):
    """--engine torch saves its optimizer (momentum buffers, Adam's moments and step) and schedule."""
    for optimizer in ("adam",):                    # Adam: its step and both moments (momentum: one buffer)
        recipe = ["train", "--engine", "torch", *TINY, "--epochs", "3", "--optimizer", optimizer, "--augment", "1",
                  "--data", str(mnist_root)]
        assert cli_module.main([*recipe, "--out", str(tmp_path / "ref.npz"), "--no-checkpoint", "--quiet"]) == 0
        assert interrupted_after_first_epoch([*recipe, "--out", str(tmp_path / "w.npz")]) == EXIT_CODES["interrupted"]
        assert load_checkpoint(tmp_path / "w.ckpt.npz").epoch == 1
        assert cli_module.main(["train", "--resume", str(tmp_path / "w.ckpt.npz"), "--out", str(tmp_path / "w.npz"),
                                "--quiet"]) == 0
        assert same_weights(tmp_path / "ref.npz", tmp_path / "w.npz"), optimizer
    assert "resumed from" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["stdout_dev_full", "stdout_dev_full_unbuffered", "stdout_broken_pipe",
                                  "stdout_broken_pipe_unbuffered", "stderr_closed_progress_bar", "stderr_dev_full"])
def test_a_failing_stdout_or_stderr_loses_no_epoch(tmp_path, mnist_root, case):
    """Rows stdout_dev_full, stdout_broken_pipe, stderr_closed_progress_bar: every epoch is checkpointed,
    the run finishes and saves its weights; a stream that failed is named (exit 5), a closed stderr is
    not a failure (exit 0)."""
    quiet = [] if case.startswith("stderr") else ["--quiet"]
    command = shlex.join([sys.executable, "-m", "lenet_core", "train", *TINY, *quiet, "--out", "w.npz"])
    command += {"stdout_dev_full": " > /dev/full", "stdout_broken_pipe": " | head -1",
                "stderr_closed_progress_bar": " 2>&-", "stderr_dev_full": " 2>/dev/full"}[case.removesuffix("_unbuffered")]
    env = full_env(mnist_root, **({"PYTHONUNBUFFERED": "1"} if case.endswith("unbuffered") else {}))
    result = subprocess.run(["bash", "-c", command + "; exit ${PIPESTATUS[0]}"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert (tmp_path / "w.npz").exists() and load_checkpoint(tmp_path / "w.ckpt.npz").epoch == 2, result.stderr
    assert "Traceback" not in result.stderr
    if case.startswith("stdout"):
        why = "No space left on device" if "full" in case else "Broken pipe"
        assert_one_line_error(result, EXIT_CODES["output"], rf"could not write to stdout \({why}\); the run finished: "
                                                            rf"weights saved to w\.npz")
    else:
        assert result.returncode == (0 if case == "stderr_closed_progress_bar" else EXIT_CODES["output"]), result


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (we are root in CI); ``fill()`` leaves it with no free byte."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode:
        pytest.skip("a full disk needs a tmpfs, which needs root (mount -t tmpfs)")

    def fill():
        with open(mount / "filler", "ab", buffering=0) as f:
            try:
                while True:
                    f.write(bytes(4096))
            except OSError:
                pass

    class Disk(type(mount)):
        pass

    try:
        disk = Disk(mount)
        disk.fill = fill
        yield disk
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_refused_before_training(tmp_path, small_disk, mnist_root):
    """Row disk_full_no_checkpoint: the pre-check proves room for a file of the expected size."""
    small_disk.fill()
    before = [entry[:2] for entry in snapshot(tmp_path)]       # the probe touched the folder's time, no file
    result = cli("train", *TINY, "--out", small_disk / "w.npz", "--no-checkpoint", cwd=tmp_path,
                 env={"LENET_MNIST_DIR": str(mnist_root)})
    assert_one_line_error(result, EXIT_CODES["usage"], r"--out .*small/w\.npz: .*small cannot hold the [\d,]+ bytes "
                                                       r"this file needs \(No space left on device\)")
    assert [entry[:2] for entry in snapshot(tmp_path)] == before
    (small_disk / "filler").unlink()
    with open(small_disk / "filler", "wb") as f:                  # room for the weights, not the checkpoint too
        f.write(bytes((1 << 20) - (600 << 10)))
    result = cli("train", *TINY, "--out", small_disk / "w.npz", cwd=tmp_path, env={"LENET_MNIST_DIR": str(mnist_root)})
    assert_one_line_error(result, EXIT_CODES["usage"], r"--checkpoint .*w\.ckpt\.npz: .*cannot hold")


@pytest.mark.parametrize("where", ["history", "checkpoint"])
def test_a_disk_that_fills_during_the_run(tmp_path, small_disk, mnist_root, where):
    """Row history_disk_full: the history's disk fills during the run: exit 5 naming --history, the
    weights kept and the message does not send the user to redo saved work. The checkpoint's disk
    fills: exit 5 naming --checkpoint, the finished epochs kept and the exact resume command."""
    args = ["train", "--epochs", "3", "--limit", "640", "--validation", "64", "--quiet", "--out", "w.npz"]
    if where == "history":
        args += ["--history", str(small_disk / "h.json")]
        watch = tmp_path / "w.ckpt.npz"
    else:
        args += ["--checkpoint", str(small_disk / "c.npz")]
        watch = small_disk / "c.npz"
    proc = subprocess.Popen([sys.executable, "-m", "lenet_core", *args], cwd=tmp_path, env=full_env(mnist_root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not watch.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    small_disk.fill()
    _, stderr = proc.communicate(timeout=120)
    if where == "history":
        assert_one_line_error(subprocess.CompletedProcess([], proc.returncode, "", stderr), EXIT_CODES["output"],
                              r"could not write --history .*h\.json: No space left on device; the run itself is kept: "
                              r"weights saved to w\.npz \(its per-epoch history is also in w\.ckpt\.npz\)$")
        assert (tmp_path / "w.npz").exists() and "--resume" not in stderr
    else:
        assert_one_line_error(subprocess.CompletedProcess([], proc.returncode, "", stderr), EXIT_CODES["output"],
                              r"could not write --checkpoint .*c\.npz: No space left on device; epochs? 1(-\d)? (is|are) "
                              r"saved in .*c\.npz \(its previous version\); resume with: .* --resume .*c\.npz --out "
                              r"w\.npz --checkpoint .*c\.npz --quiet$")
        assert load_checkpoint(watch).epoch >= 1 and not (tmp_path / "w.npz").exists()


def test_atomic_write_syncs_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from lenet_core import _files

    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(a, b):
        calls.append(("replace", Path(b).name))
        real_replace(a, b)

    monkeypatch.setattr(_files.os, "fsync", fsync)
    monkeypatch.setattr(_files.os, "replace", replace)
    save_weights(LeNet5(), tmp_path / "w.npz")
    assert calls == [("fsync", "file"), ("replace", "w.npz"), ("fsync", "dir")]
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_readme_exit_codes_match_the_cli():
    """README.md's exit-code table lists exactly the CLI's codes, each with the meaning --help gives."""
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", readme, re.M))
    assert sorted(map(int, rows)) == sorted(EXIT_CODES.values())
    epilog = " ".join(cli_module.EPILOG.split())
    for code, meaning in rows.items():
        entry = re.search(rf"\b{code}\s+(.+?)(?= \d+ |Every failure)", epilog).group(1)
        words = {w for w in re.findall(r"[a-z]{5,}", meaning.lower())}
        missing = {w for w in words if w not in entry.lower()}
        assert not missing, (code, missing, entry)
    for promise in ("stdout or stderr", "fsync", "resume", "regular file", "bit-identical"):
        assert promise in readme, promise


def test_the_resume_command_carries_lenet_mnist_dir_when_the_run_used_it(monkeypatch):
    """Row resume_printed_command, the variable's half: a run that found MNIST through $LENET_MNIST_DIR
    prints a command that sets it (quoted), so the resumed run reads the same files; with --data it is
    not needed and not printed."""
    from types import SimpleNamespace

    folder = "/data/my mnist's\nfiles"
    monkeypatch.setenv("LENET_MNIST_DIR", folder)
    args = SimpleNamespace(checkpoint="w.ckpt.npz", out="w.npz", data=None, history=None, quiet=False, debug=False)
    command = cli_module._resume_command(args)
    assert "\n" not in command and command.startswith("LENET_MNIST_DIR=")
    words = subprocess.run(["bash", "-c", f"set -- {command}; printf '%s\\0' \"$@\""], capture_output=True,
                           text=True, timeout=30).stdout.split("\0")[:-1]
    assert words[0] == f"LENET_MNIST_DIR={folder}"                   # bash: an assignment before the command
    assert words[2:] == ["-m", "lenet_core", "train", "--resume", "w.ckpt.npz", "--out", "w.npz"]
    args.data = "/elsewhere"
    assert "LENET_MNIST_DIR" not in cli_module._resume_command(args)


def test_the_resume_command_quotes_any_file_name_on_one_line():
    """Special characters in paths: each word of the printed command reads back, in bash, as the name."""
    names = ["plain.npz", "my w.npz", "it's.npz", "new\nline.npz", "tab\tand\\back.npz", "$(rm -rf x).npz", "é.npz"]
    quoted = [cli_module._shell_word(name) for name in names]
    assert all("\n" not in q and "\t" not in q for q in quoted)
    echoed = subprocess.run(["bash", "-c", "printf '%s\\0' " + " ".join(quoted)], capture_output=True, text=True,
                            timeout=30).stdout
    assert echoed.split("\0")[:-1] == names
