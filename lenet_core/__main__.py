"""Command line: ``python -m lenet_core train ...`` and ``python -m lenet_core evaluate WEIGHTS``.

Every argument is checked before any data is loaded or any training starts; every expected failure
ends in one line on stderr and its own exit code (:data:`EXIT_CODES`; a traceback only with
``--debug``). ``train`` holds out a validation split (``--validation``, default 5,000 images) for the
per-epoch figures, reads the test set once at the end, writes a checkpoint after every epoch and
continues one with ``--resume``; Ctrl-C or SIGTERM stop after saving what is finished. Every trainer
(the book's LeNet-5 on either engine, and ``--model lenet1998``) checkpoints and resumes bit-identically.

Failures outside the program are handled too: output locations are proved able to hold files of the
expected size before training; every file is written atomically and durably; each epoch's checkpoint
is written before anything else can fail; a stdout or stderr that breaks (a closed pipe, a full disk)
is noted and the run goes on, ending with exit code 5 naming the stream; a checkpoint is validated
like a command line (the same validators), and the printed resume command is exact.

``train --engine torch`` trains the PyTorch twin (:class:`lenet_core.twin.TorchLeNet5`) instead of the
NumPy model, from the same initial weights, with the same recipe, seed and batches
(:func:`lenet_core.twin.fit_torch`), and saves its weights in the same ``.npz`` format through
:func:`lenet_core.twin.from_torch` and :func:`lenet_core.model.save_weights` (never ``torch.save``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from .data import ENV_VAR, VALIDATION_SIZE, MNISTError
from .optim import OPTIMIZERS, SCHEDULES
from .train import DEFAULT_RECIPE

#: exit codes, one per kind of failure (also in ``--help`` and README.md)
EXIT_CODES = {
    "ok": 0,
    "bug": 1,           # an unexpected error: a bug, reported with its traceback
    "usage": 2,         # a bad option or value (nothing was loaded)
    "data": 3,          # MNIST missing, unreadable, corrupt, or the download failed
    "weights": 4,       # a weights or checkpoint file missing, unreadable or not fitting the model
    "output": 5,        # an output file, stdout or stderr could not be written
    "diverged": 6,      # training diverged; nothing saved as a result
    "interrupted": 130,  # Ctrl-C or SIGTERM; finished epochs are in the checkpoint
}

EPILOG = """\
exit codes:
  0    success
  1    a bug (unexpected error; its traceback is printed)
  2    bad command line: an option or value out of range, an output path that cannot be written or
       has no room, a deleted working folder, a recipe option that differs from the checkpoint's
  3    MNIST data missing, unreadable, not a regular file, corrupt or oversized, the download failed,
       or no cache folder can be found
  4    weights or checkpoint file missing, unreadable, not a regular file, oversized, tampered with, or
       not fitting the model
  5    an output file, stdout or stderr could not be written (the message says what was kept)
  6    training diverged (loss NaN or far above its start): nothing saved as a result
  130  interrupted (Ctrl-C or SIGTERM): finished epochs are in the checkpoint; resume with --resume
Every failure prints one line on stderr; --debug adds the traceback."""

#: largest --augment shift: the digit's 20x20 box sits 6 pixels inside the 32x32 input
MAX_AUGMENT = 4
#: largest --weight-decay accepted; the recipe uses 5e-4
MAX_WEIGHT_DECAY = 1.0
#: MNIST's training images
TRAIN_SIZE = 60000
#: largest --epochs (the book trains 10-20; a bound keeps every figure derived from it finite)
MAX_EPOCHS = 10000
#: largest --seed
MAX_SEED = 2 ** 32 - 1
#: arguments a resumed run takes from its checkpoint (the recipe and the data)
RECIPE_ARGS = ("model", "engine", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
               "augment", "seed", "limit", "validation")
#: optimizer buffers a checkpoint must hold for every parameter, per engine and optimizer
REQUIRED_BUFFERS = {"numpy": {"sgd": set(), "momentum": {"velocity"}, "adam": {"m", "v"}},
                    "torch": {"sgd": set(), "momentum": {"momentum_buffer"}, "adam": {"exp_avg", "exp_avg_sq"}}}


class CLIError(Exception):
    """An expected failure: one line for the user and an exit code from :data:`EXIT_CODES`."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.code = EXIT_CODES[kind]


def _one_line(text: str) -> str:
    """``text`` with control characters (a newline in a file name, ...) escaped: one line, always."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _show(path, limit: int = 160) -> str:
    """A path for a message: control characters escaped, the middle of a very long one elided."""
    text = _one_line(str(path))
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]} ({len(text):,} characters)"


class _Parser(argparse.ArgumentParser):
    def error(self, message):                  # one line, not usage + error
        self.exit(EXIT_CODES["usage"], f"{self.prog}: error: {_one_line(message)} (see --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows every option's default, unless the help already says it or there is none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.default is not None and action.default is not False and action.default != argparse.SUPPRESS
                and "default" not in text
                and action.option_strings):
            text += " (default: %(default)s)"
        return text


def _number(kind, low=None, high=None, low_open=False):
    """An argparse ``type``: a finite ``kind`` (int or float) within [low, high] (``low_open``: > low)."""
    def parse(text):
        shown = text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}' ({len(text)} characters)"
        shown = repr(shown) if len(text) <= 40 else "'" + shown
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {shown}") from None
        bad = ((kind is float and not math.isfinite(value))
               or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and value > high))
        if bad:
            bounds = [f"> {low:g}" if low_open else f">= {low:g}"] if low is not None else []
            bounds += [f"<= {high:g}" if kind is float else f"<= {high}"] if high is not None else []
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {what} {' and '.join(bounds)}, got {shown}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lenet_core", description="Train and evaluate LeNet-5 on MNIST.",
                     epilog=EPILOG, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--data", default=None, metavar="DIR",
                        help="folder with the four MNIST .gz files; must exist (default: $LENET_MNIST_DIR, "
                             "else the cache ~/.cache/lenet_core/mnist, else download)")
    common.add_argument("--debug", action="store_true", help="print the traceback of any failure")

    train = sub.add_parser("train", parents=[common], formatter_class=_Formatter, epilog=EPILOG,
                           help="train LeNet-5 (NumPy, or its PyTorch twin) and save its weights",
                           description="Train LeNet-5 on MNIST, holding out a validation split; the test set "
                                       "is read once, at the end.\nWrites a checkpoint after every epoch; "
                                       "Ctrl-C stops after saving the finished epochs.")
    train.add_argument("--model", choices=["lenet5", "lenet1998"], default="lenet5",
                       help="lenet5: the book's network and recipe; lenet1998: LeNet-5 as in 1998 (RBF output, "
                            "SDLM with the paper's schedule, --augment > 0 for its random affine distortions; "
                            "see lenet_core.lenet1998)")
    train.add_argument("--engine", choices=["numpy", "torch"], default="numpy",
                       help="numpy: lenet_core's LeNet5; torch: its PyTorch twin, same recipe and batches, "
                            "weights saved as the same .npz")
    train.add_argument("--epochs", type=_number(int, 1, MAX_EPOCHS), default=10, help="passes over the training images")
    train.add_argument("--batch-size", type=_number(int, 1, TRAIN_SIZE), default=DEFAULT_RECIPE["batch_size"],
                       help="images per mini-batch")
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_RECIPE["optimizer"],
                       help="sgd: plain; momentum: SGD with Nesterov momentum 0.9; adam: Adam")
    train.add_argument("--lr", type=_number(float, 0, low_open=True), default=None,
                       help=f"learning rate, finite and > 0 (default: {DEFAULT_RECIPE['lr']}, or 1e-3 for adam)")
    train.add_argument("--weight-decay", type=_number(float, 0, MAX_WEIGHT_DECAY),
                       default=DEFAULT_RECIPE["weight_decay"],
                       help=f"L2 weight decay, in 0..{MAX_WEIGHT_DECAY:g}")
    train.add_argument("--schedule", choices=list(SCHEDULES), default=DEFAULT_RECIPE["schedule"],
                       help="learning rate over the epochs: cosine decay to 0, x0.1 every epochs/3, or constant")
    train.add_argument("--augment", type=_number(int, 0, MAX_AUGMENT), default=0, metavar="PIXELS",
                       help=f"shift each training image randomly by up to this many pixels per axis, "
                            f"0..{MAX_AUGMENT} (0: off; 2 works well)")
    train.add_argument("--seed", type=_number(int, 0, MAX_SEED), default=0,
                       help="seed of the initial weights, the batch order and the augmentation")
    train.add_argument("--validation", type=_number(int, 0, TRAIN_SIZE - 1), default=VALIDATION_SIZE,
                       metavar="N", help="training images held out as the validation split reported after "
                                         "each epoch (0: train on all 60,000, no validation figures)")
    train.add_argument("--limit", type=_number(int, 1, TRAIN_SIZE), default=None, metavar="N",
                       help="train on the first N of the remaining training images only (quick checks; "
                            "default: all)")
    train.add_argument("--out", default="weights.npz", metavar="PATH.npz", help="where to save the weights")
    train.add_argument("--history", default=None, metavar="PATH.json",
                       help="also write the per-epoch loss, accuracies, learning rate and seconds as JSON")
    train.add_argument("--checkpoint", default=None, metavar="PATH.npz",
                       help="checkpoint written after every epoch (default: next to --out, "
                            "weights.npz -> weights.ckpt.npz)")
    train.add_argument("--no-checkpoint", action="store_true", help="write no checkpoint")
    train.add_argument("--resume", default=None, metavar="CHECKPOINT",
                       help="continue the run saved in CHECKPOINT (its recipe, data and seed; the result is "
                            "bit-identical to an uninterrupted run); --epochs and other recipe options "
                            "must be left out or equal the checkpoint's")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser("evaluate", parents=[common], formatter_class=_Formatter, epilog=EPILOG,
                        help="test accuracy of saved weights", description="Test accuracy of saved weights.")
    ev.add_argument("weights", help="a .npz file written by train (its weights, or a checkpoint); weights of "
                                    "--model lenet1998 are recognised by their parameter names")
    return parser


# ----------------------------------------------------------------------------------------------
# Checks made before anything is loaded
# ----------------------------------------------------------------------------------------------

def _given(parser, argv) -> set[str]:
    """The ``dest`` of every option given on the command line ``argv`` (a default given explicitly counts)."""
    suppressed = []
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            suppressed.append((action, action.default))
            action.default = argparse.SUPPRESS
    try:
        return set(vars(parser.parse_args(argv))) - {"command"}
    finally:
        for action, default in suppressed:
            action.default = default


def _resolved(path) -> Path:
    """``path`` made absolute with its symlinks and ``..`` resolved (what two options are compared by)."""
    return Path(os.path.realpath(path))


def _check_cwd(args, paths) -> None:
    """A relative path needs the working folder: a deleted one is a usage error naming the option."""
    try:
        os.getcwd()
    except OSError:
        for option, path in paths:
            if path is not None and not os.path.isabs(path):
                raise CLIError(f"{option} {_show(path)}: the working folder no longer exists (it was deleted "
                               f"or moved); cd into an existing folder or give an absolute path", "usage") from None


def _check_output(path: str, option: str, suffix: str) -> tuple[Path, Path]:
    """``path`` can be written as a new or replaced file ending in ``suffix``: returns it and the existing
    folder it will be written in (missing folders are created when it is written); else :class:`CLIError`
    (usage) naming ``option``. Nothing is left on disk."""
    p = Path(path)
    if not p.name.endswith(suffix):
        raise CLIError(f"{option} must end in {suffix}, got {_show(path)!r}", "usage")
    if p.name == suffix:
        raise CLIError(f"{option} {_show(path)!r} names no file: give a name such as out{suffix}", "usage")
    try:
        if p.is_dir():
            raise CLIError(f"{option} {_show(path)}: is a directory", "usage")
        if p.exists() and not p.is_file():
            raise CLIError(f"{option} {_show(path)}: exists and is not a regular file", "usage")
        folder = p.absolute().parent
        while not folder.exists() and not folder.is_symlink():
            folder = folder.parent
        if not folder.is_dir():
            raise CLIError(f"{option} {_show(path)}: {_show(folder)} is not a folder", "usage")
    except OSError as e:                          # a path beyond PATH_MAX, a loop of symlinks, ...
        raise CLIError(f"{option} {_show(path)}: cannot be written ({e.strerror or e})", "usage") from None
    return p, folder


def _reserve(outputs: dict, sizes: dict) -> None:
    """Prove that every output's folder can hold a new file of its expected size, all at once (the
    outputs may share a filesystem, and each is written next to the file it replaces): a probe file per
    output, given its size with ``posix_fallocate`` (or written out where that is not supported), then
    removed. :class:`CLIError` (usage) naming the option otherwise; nothing is left on disk."""
    probes = []
    try:
        for option, (path, folder) in outputs.items():
            size = sizes[option]
            try:                                 # the name atomic_write's temporary file will have
                probe = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
            except OSError as e:
                raise CLIError(f"{option} {_show(path)}: cannot write in {_show(folder)} ({e.strerror})",
                               "usage") from None
            probes.append(probe)
            try:
                try:
                    os.posix_fallocate(probe.fileno(), 0, size)
                except OSError as e:
                    if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                        raise
                    for _ in range(0, size, 1 << 16):
                        probe.write(bytes(1 << 16))
                    probe.flush()
                    os.fsync(probe.fileno())
            except OSError as e:
                raise CLIError(f"{option} {_show(path)}: {_show(folder)} cannot hold the {size:,} bytes this file "
                               f"needs ({e.strerror}); free some space or choose another place", "usage") from None
    finally:
        for probe in probes:
            try:
                probe.close()
            except OSError:
                pass


def _expected_sizes(args) -> dict:
    """Bytes each output of ``train`` will need at most, with room to spare: the weights, the checkpoint
    (weights, optimizer buffers and the metadata of ``--epochs`` epochs) and the history."""
    model = _new_model(args)
    entries = len(model.parameters())
    weights = sum(p.nbytes for p in model.parameters().values()) + 512 * entries + 4096
    buffers = {"sgd": 0, "momentum": 1, "adam": 2}[args.optimizer] if args.model == "lenet5" else 0
    history = 1024 + 256 * args.epochs
    return {"--out": weights, "--checkpoint": weights * (1 + buffers) + 8192 + history, "--history": history}


def _new_model(args):
    if args.model == "lenet1998":
        from .lenet1998 import LeNet5_1998
        return LeNet5_1998(seed=args.seed)
    from .model import LeNet5
    return LeNet5(seed=args.seed)


def _check_train_args(args) -> None:
    if args.model == "lenet1998":
        for option, key in (("--engine", "engine"), ("--optimizer", "optimizer"), ("--lr", "lr"),
                            ("--schedule", "schedule"), ("--weight-decay", "weight_decay")):
            if key in args.given and not (key == "engine" and args.engine == "numpy"):
                raise CLIError(f"{option} {getattr(args, key)} does not apply to --model lenet1998 (it trains with SDLM, the paper's "
                               f"schedule and no weight decay)", "usage")
    _check_cwd(args, [("--out", args.out), ("--history", args.history), ("--checkpoint", args.checkpoint),
                      ("--resume", args.resume), ("--data", args.data)])
    outputs = {"--out": _check_output(args.out, "--out", ".npz")}
    if args.history is not None:
        outputs["--history"] = _check_output(args.history, "--history", ".json")
    if not args.no_checkpoint:
        if args.checkpoint is None:
            out = Path(args.out)
            args.checkpoint = str(out.with_name(out.name[:-len(".npz")] + ".ckpt.npz"))
        outputs["--checkpoint"] = _check_output(args.checkpoint, "--checkpoint", ".npz")
    elif args.checkpoint is not None:
        raise CLIError("--checkpoint and --no-checkpoint contradict each other", "usage")
    seen = {}
    for option, (path, _) in outputs.items():
        key = _resolved(path)
        if key in seen:
            raise CLIError(f"{option} and {seen[key]} name the same file {_show(path)}", "usage")
        seen[key] = option
    args.outputs = {key: option for key, option in seen.items()}
    if args.resume is not None:
        other = seen.get(_resolved(args.resume))
        if other is not None and other != "--checkpoint":
            raise CLIError(f"--resume {_show(args.resume)} is also {other}", "usage")
    if args.resume is None and args.limit is not None and args.limit > TRAIN_SIZE - args.validation:
        raise CLIError(f"--limit {args.limit} is more than the {TRAIN_SIZE - args.validation:,} training "
                       f"images left after --validation {args.validation}", "usage")
    args.reserve = outputs


def _check_data_dir(args) -> None:
    _check_cwd(args, [("--data", args.data)])
    if args.data is not None:
        try:
            ok, exists = Path(args.data).is_dir(), Path(args.data).exists()
        except OSError as e:
            raise CLIError(f"--data {_show(args.data)}: {e.strerror or e}", "data") from None
        if not ok:
            raise CLIError(f"--data {_show(args.data)} {'is not a folder' if exists else 'does not exist'}", "data")


def _check_recipe(ckpt, args, parser) -> None:
    """The checkpoint's recipe, checked with the command line's own validators (types, ranges, choices),
    then against the options given: an option given must equal the checkpoint's (:class:`CLIError`)."""
    train = parser._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    where = f"--resume {_show(ckpt.path)}"
    stored = dict(ckpt.args)
    stored.setdefault("model", "lenet5")            # checkpoints written before --model lenet1998 had them
    for key in RECIPE_ARGS:
        option = "--" + key.replace("_", "-")
        if key not in stored:
            raise CLIError(f"{where}: the checkpoint does not record {option}", "weights")
        value, action = stored[key], actions[key]
        if value is None and action.default is None:
            continue
        shown = _one_line(repr(value))[:60]
        if action.choices is not None:
            if not isinstance(value, str) or value not in action.choices:
                raise CLIError(f"{where}: the checkpoint's {option} {shown} is not one of "
                               f"{', '.join(action.choices)}", "weights")
            continue
        kind = action.type.__name__
        if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
            raise CLIError(f"{where}: the checkpoint's {option} {shown} is not "
                           f"{'an integer' if kind == 'int' else 'a number'}", "weights")
        try:
            action.type(repr(float(value)) if kind == "float" else str(value))
        except (argparse.ArgumentTypeError, OverflowError, ValueError) as e:
            raise CLIError(f"{where}: the checkpoint's {option} {_one_line(str(e))}", "weights") from None
    if stored["limit"] is not None and stored["limit"] > TRAIN_SIZE - stored["validation"]:
        raise CLIError(f"{where}: the checkpoint's --limit {stored['limit']} is more than the "
                       f"{TRAIN_SIZE - stored['validation']:,} images left after its --validation", "weights")
    if stored["epochs"] < ckpt.epoch:
        raise CLIError(f"{where}: {ckpt.epoch} epochs finished of the checkpoint's --epochs {stored['epochs']}",
                       "weights")
    for key in RECIPE_ARGS:
        if key in args.given and getattr(args, key) != stored[key]:
            raise CLIError(f"--{key.replace('_', '-')} {getattr(args, key)} differs from the checkpoint's "
                           f"{stored[key]}: a resumed run keeps its recipe (leave the option out)", "usage")
        setattr(args, key, stored[key])


def _check_buffers(ckpt, engine: str, optimizer: str) -> None:
    required = REQUIRED_BUFFERS[engine][optimizer]
    for param, buffers in ckpt.optimizer["state"].items():
        if set(buffers) != required:
            raise CLIError(f"--resume {_show(ckpt.path)}: the optimizer state of {param} holds "
                           f"{sorted(buffers)}, a {engine} {optimizer} run has {sorted(required)}", "weights")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

def _evaluate(args) -> int:
    from ._files import npz_headers
    from .checkpoint import load_checkpoint
    from .data import load_mnist, prepare
    from .model import LeNet5, load_weights
    from .train import evaluate

    def new(lenet1998: bool):
        if lenet1998:
            from .lenet1998 import LeNet5_1998
            return LeNet5_1998()
        return LeNet5()

    def read():
        try:
            names = npz_headers(args.weights)
        except FileNotFoundError:
            raise FileNotFoundError(f"weights file {_show(args.weights)} does not exist") from None
        if "meta" in names:                                                # a training checkpoint
            model = new("model/S2.coeff" in names)
            model.load_state_dict(load_checkpoint(args.weights, model).model, source=args.weights)
            return model
        return load_weights(new("S2.coeff" in names), args.weights)   # trainable subsampling: 1998's

    _check_cwd(args, [("weights", args.weights)])
    model = _load(read)                                                    # before any data is read
    mnist = load_mnist(args.data)
    if "S2" in model.layers and hasattr(model["S2"], "window_sums"):
        from .lenet1998 import RBFLoss, evaluate_1998, prepare_1998
        loss, acc = evaluate_1998(model, prepare_1998(mnist.x_test), mnist.y_test, RBFLoss())
    else:
        loss, acc = evaluate(model, prepare(mnist.x_test), mnist.y_test)
    args.outcome = f"the evaluation finished (test accuracy {acc:.2%})"
    print(f"test loss {loss:.4f}  test accuracy {acc:.2%}  ({len(mnist.y_test)} images)")
    return 0


def _load(read):
    """Run ``read()`` (a weights or checkpoint loader); its expected failures become exit code 4."""
    try:
        return read()
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e), "weights") from None
    except OSError as e:
        raise CLIError(f"{_show(e.filename)}: {e.strerror}", "weights") from None


def _resume_command(args, out=None) -> str:
    """The exact command (quoted for a POSIX shell) that continues this run from its checkpoint: every
    option the checkpoint does not store is carried over, and ``$LENET_MNIST_DIR`` when the run found
    MNIST through it (no ``--data``), as an assignment before the command."""
    python = shutil.which("python")
    python = "python" if python and os.path.realpath(python) == os.path.realpath(sys.executable) else sys.executable
    words = [python, "-m", "lenet_core", "train", "--resume", args.checkpoint, "--out", out or args.out]
    out_path = Path(out or args.out)
    if args.checkpoint != str(out_path.with_name(out_path.name[:-len(".npz")] + ".ckpt.npz")):
        words += ["--checkpoint", args.checkpoint]
    for option, value in (("--data", args.data), ("--history", args.history)):
        if value is not None:
            words += [option, value]
    words += [flag for flag, on in (("--quiet", args.quiet), ("--debug", args.debug)) if on]
    command = " ".join(_shell_word(str(word)) for word in words)
    folder = os.environ.get(ENV_VAR)
    if args.data is None and folder:
        command = f"{ENV_VAR}={_shell_word(folder)} {command}"
    return command


def _shell_word(word: str) -> str:
    """``word`` quoted for the shell on one line: ``shlex.quote``, or bash's ``$'...'`` with escapes
    when it holds control characters (a newline in a file name)."""
    if word.isprintable():
        return shlex.quote(word)
    escaped = "".join(c if c.isprintable() and c not in "\\'" else
                      (f"\\{c}" if c in "\\'" else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                      for c in word)
    return f"$'{escaped}'"


def _train(args, parser) -> int:
    """``train``: the checkpoint (if any) is read, checked and restored into fresh objects, and the
    outputs' space reserved, before MNIST is read; then the run, a checkpoint after every epoch."""
    import numpy as np

    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_mnist, split_validation

    ckpt = None
    if args.resume is not None:
        ckpt = _load(lambda: load_checkpoint(args.resume))
        _check_recipe(ckpt, args, parser)
        if ckpt.model.keys() != _new_model(args).parameters().keys():
            raise CLIError(f"--resume {_show(args.resume)}: its weights are not those of --model {args.model}",
                           "weights")
        if args.model == "lenet5":
            _check_buffers(ckpt, args.engine, args.optimizer)
    model = _new_model(args)
    rng = np.random.default_rng(args.seed)
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else DEFAULT_RECIPE["lr"])
    optimizer = scheduler = module = history = None
    if ckpt is not None and args.model == "lenet5" and args.engine == "numpy":
        from .optim import make_optimizer, make_scheduler
        optimizer = make_optimizer(args.optimizer, model.parameters(), lr, weight_decay=args.weight_decay)
        scheduler = make_scheduler(args.schedule, optimizer, args.epochs)
        history = _load(lambda: ckpt.restore(model, optimizer, scheduler, rng))
    elif ckpt is not None:
        _load(lambda: model.load_state_dict(ckpt.model, source=str(ckpt.path)))
        history = _load(lambda: ckpt.restore_rng(rng))
    recipe = dict(optimizer=args.optimizer, lr=lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                  schedule=args.schedule, augment=args.augment)
    if args.engine == "torch":
        from .twin import load_torch_optimizer, recipe_optimizer, to_torch
        module = to_torch(model)
        optimizer, scheduler = recipe_optimizer(module, args.epochs, recipe)
        if ckpt is not None:
            _load(lambda: load_torch_optimizer(optimizer, scheduler, module, ckpt))
    elif args.model == "lenet5" and optimizer is None:
        from .optim import make_optimizer, make_scheduler
        optimizer = make_optimizer(args.optimizer, model.parameters(), lr, weight_decay=args.weight_decay)
        scheduler = make_scheduler(args.schedule, optimizer, args.epochs)
    _reserve(args.reserve, _expected_sizes(args))

    mnist = load_mnist(args.data)
    (x_train, y_train), (x_val, y_val) = split_validation(mnist.x_train, mnist.y_train, args.validation)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    run_args = {k: getattr(args, k) for k in RECIPE_ARGS}
    args.finished = ckpt.epoch if ckpt is not None else 0
    progress = not args.quiet and not args.no_bar

    def saver(state):
        """``on_epoch_end``: the checkpoint of the epoch (``state(epoch)`` gives its model, optimizer and
        scheduler states), written before the epoch is reported anywhere."""
        def save(epoch, hist):
            with _signals_deferred():             # the file and args.finished agree whenever Ctrl-C lands
                if not args.no_checkpoint:
                    save_checkpoint(args.checkpoint, **state(epoch), rng=rng, history=hist, args=run_args)
                args.finished = epoch
        return save

    def resumed():
        if ckpt is not None:
            print(f"resumed from {_show(args.resume)} after epoch {ckpt.epoch} of {args.epochs}")

    start = time.perf_counter()
    if args.model == "lenet1998":
        from .lenet1998 import RBFLoss, evaluate_1998, fit_1998, prepare_1998, sdlm_learning_rate, \
            trainable_parameters
        x_train, validation = prepare_1998(x_train), ((prepare_1998(x_val), y_val) if args.validation else None)
        print(f"LeNet-5 as in 1998 ({trainable_parameters(model):,} trainable parameters), SDLM, batch "
              f"{args.batch_size}, distortions {'on' if args.augment else 'off'}, seed={args.seed}, "
              f"{len(y_train):,} training images, {len(y_val):,} validation images")
        resumed()
        updates = -(-len(y_train) // args.batch_size)        # per pass; SDLM's curvature is re-estimated per pass

        def state(epoch):
            return dict(model=model, optimizer={"lr": sdlm_learning_rate(epoch), "steps": epoch * updates,
                                                "state": {}}, scheduler=None)

        history = fit_1998(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                           validation=validation, distort=bool(args.augment), seed=rng, progress=progress,
                           history=history, on_epoch_end=saver(state))
        seconds = time.perf_counter() - start
        loss, acc = evaluate_1998(model, prepare_1998(mnist.x_test), mnist.y_test, RBFLoss())   # read once
        _save_and_report(model, history, args, acc, loss, f"{args.epochs} passes in {seconds:.0f}s")
        return 0

    from .train import evaluate, fit

    # every split stays uint8 digits: fit and evaluate prepare each batch (float32 copies take 5x the memory)
    validation = (x_val, y_val) if args.validation else None
    print(f"LeNet-5 ({model.num_parameters():,} parameters, engine {args.engine}), {args.optimizer} lr={lr:g}, "
          f"weight decay {args.weight_decay:g}, batch {args.batch_size}, {args.schedule} schedule, "
          f"augment={args.augment}, seed={args.seed}, {len(y_train):,} training images, "
          f"{len(y_val):,} validation images")
    resumed()
    if args.engine == "torch":
        from .twin import fit_torch, from_torch, torch_optimizer_state
        history = fit_torch(module, x_train, y_train, epochs=args.epochs, recipe=recipe, optimizer=optimizer,
                            scheduler=scheduler, validation=validation, seed=rng, quiet=False, history=history,
                            on_epoch_end=saver(lambda epoch: dict(model=from_torch(module, model),
                                                                  optimizer=torch_optimizer_state(optimizer, module),
                                                                  scheduler=scheduler)))
        from_torch(module, model)
    else:
        history = fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=optimizer, scheduler=scheduler, validation=validation, augment=args.augment,
                      seed=rng, progress=progress, history=history,
                      on_epoch_end=saver(lambda epoch: dict(model=model, optimizer=optimizer, scheduler=scheduler)))
    seconds = time.perf_counter() - start
    loss, acc = evaluate(model, mnist.x_test, mnist.y_test)   # the weights as saved, read once
    _save_and_report(model, history, args, acc, loss, f"{args.epochs} epochs in {seconds:.0f}s")
    peak = _peak_memory_mib()
    if peak is not None:
        from .parallel import worker_private_mib as worker
        print(f"peak memory (max RSS) {peak:.0f} MiB"
              + (f", and {worker:.0f} MiB of its own in the worker process" if worker is not None else ""))
    return 0


def _save_and_report(model, history, args, acc, loss, how_long: str) -> None:
    """Save the weights (and the history, if asked) before saying anything, then say where and what the
    test set read once gave."""
    from .model import save_weights

    save_weights(model, args.out)
    args.saved = f"weights saved to {_show(args.out)}"
    args.outcome = f"the run finished: {args.saved}"
    if args.history is not None:
        history.save(args.history)
        args.outcome += f", history to {_show(args.history)}"
    print(f"test accuracy {acc:.2%} (loss {loss:.4f}) on the 10,000 test images, read once at the end of the "
          f"run; {how_long}; {args.saved}")
    if args.history is not None:
        print(f"history saved to {_show(args.history)}")


def _peak_memory_mib():
    """The process's peak resident memory in MiB, or ``None`` where ``resource`` does not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)   # bytes on macOS, KiB on Linux


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done. Within it their handlers only note the signal;
    at its end the previous handlers are back and the first noted signal gets its handler then.

    Python runs signal handlers in the main thread, whichever thread the signal reached, so this holds
    in a process with other threads too (OpenBLAS starts some), where blocking the signals in the main
    thread alone would let one through to another thread and so into the middle of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield                                     # handlers can only be set from the main thread
        return
    noted = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda signum, frame: noted.append(signum)) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if noted:
            handler = previous[noted[0]]
            if callable(handler):
                handler(noted[0], None)           # KeyboardInterrupt, or _Terminated for SIGTERM
            elif handler == signal.SIG_DFL:
                signal.raise_signal(noted[0])


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated()


# ----------------------------------------------------------------------------------------------
# stdout and stderr that fail
# ----------------------------------------------------------------------------------------------

class _Stream:
    """``sys.stdout`` or ``sys.stderr`` guarded: the first write or flush that fails (a closed pipe, a full
    disk) is remembered in ``error``, the file descriptor is pointed at ``/dev/null`` and the run goes on
    (nothing it saves depends on what it prints); :func:`main` reports the failure at the end."""

    def __init__(self, stream, name: str):
        self._stream, self.name, self.error = stream, name, None

    def write(self, text):
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as e:
            self._failed(e)
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except (OSError, ValueError) as e:
            self._failed(e)

    def _failed(self, e) -> None:
        if self.error is None:
            self.error = getattr(e, "strerror", None) or str(e)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())   # the text still buffered goes there too, at exit
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        self._stream = open(os.devnull, "w")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _guard_streams():
    """Guard stdout and stderr; a standard descriptor that is closed (``2>&-``) gets ``/dev/null``, so no
    file the run opens can take its number. Returns the guards and whether stderr was missing."""
    missing = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            missing.add(fd)
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)
    saved = sys.stdout, sys.stderr
    if sys.stdout is None or 1 in missing:
        sys.stdout = open(os.devnull, "w")
    if sys.stderr is None or 2 in missing:
        sys.stderr = open(os.devnull, "w")
    guards = (_Stream(sys.stdout, "stdout"), _Stream(sys.stderr, "stderr"))
    sys.stdout, sys.stderr = guards
    return guards, saved, 2 in missing or saved[1] is None


def main(argv=None) -> int:
    guards, saved, no_stderr = _guard_streams()
    try:
        try:
            code, args = _main(argv, no_stderr, install_sigterm=argv is None)
        except SystemExit as e:                    # --help, or a usage error from argparse
            failed = [g for g in guards if g.error is not None]
            if e.code == 0 and failed:
                return _fail(None, f"could not write to {failed[0].name} ({failed[0].error})", EXIT_CODES["output"])
            raise
        failed = [g for g in guards if g.error is not None]
        if failed and code == 0:
            names = " and ".join(f"{g.name} ({g.error})" for g in failed)
            outcome = getattr(args, "outcome", "nothing else failed")
            code = _fail(args, f"could not write to {names}; {outcome}", EXIT_CODES["output"])
        return code
    finally:
        for guard in guards:
            guard.flush()
        sys.stdout, sys.stderr = saved


def _main(argv, no_stderr: bool, install_sigterm: bool):
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)                  # a usage error exits here (SystemExit, code 2)
    args.given = _given(parser, argv)
    args.no_bar = no_stderr
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if install_sigterm else None
    try:
        if args.command == "train":
            _check_train_args(args)
            _check_data_dir(args)
            return _train(args, parser), args
        _check_data_dir(args)
        return _evaluate(args), args
    except CLIError as e:
        return _fail(args, str(e), e.code), args
    except MNISTError as e:
        return _fail(args, str(e), EXIT_CODES["data"]), args
    except FloatingPointError as e:                     # DivergenceError, or the torch loop's NaN
        return _fail(args, f"{e}; nothing saved as a result", EXIT_CODES["diverged"]), args
    except KeyboardInterrupt:
        what = "terminated (SIGTERM)" if isinstance(sys.exc_info()[1], _Terminated) else "interrupted"
        finished = getattr(args, "finished", 0)
        if args.command == "train" and finished and not args.no_checkpoint:
            done = "epoch 1 is" if finished == 1 else f"epochs 1-{finished} are"
            when = (f"during epoch {finished + 1}" if finished < args.epochs
                    else "after the last epoch, before the weights were saved")
            message = (f"{what} {when}; {done} saved in {_show(args.checkpoint)}; "
                       f"resume with: {_resume_command(args)}")
        elif getattr(args, "saved", None):
            message = f"{what}; {args.saved}"
        else:
            message = f"{what}; nothing was saved"
        return _fail(args, message, EXIT_CODES["interrupted"]), args
    except OSError as e:
        return _fail(args, _output_failure(args, e), EXIT_CODES["output"]), args
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _output_failure(args, e: OSError) -> str:
    """The one line for a file that could not be written: which option's file, why, and what is kept."""
    filename = getattr(e, "filename", None)
    option = getattr(args, "outputs", {}).get(_resolved(filename)) if filename else None
    which = f"{option} {_show(filename)}" if option else (_show(filename) if filename else "an output file")
    message = f"could not write {which}: {e.strerror or e}"
    if args.command != "train":
        return message
    finished = getattr(args, "finished", 0)
    if getattr(args, "saved", None):
        kept = f"; the run itself is kept: {args.saved}"
        if not args.no_checkpoint:
            kept += f" (its per-epoch history is also in {_show(args.checkpoint)})"
        return message + kept
    if finished and not args.no_checkpoint:
        done = "epoch 1 is" if finished == 1 else f"epochs 1-{finished} are"
        if option == "--checkpoint":
            return message + (f"; {done} saved in {_show(args.checkpoint)} (its previous version); resume with: "
                              f"{_resume_command(args)}")
        return message + f"; {done} saved in {_show(args.checkpoint)}; save them with: " \
                         f"{_resume_command(args, out='OTHER.npz')}"
    return message + "; nothing was saved"


def _fail(args, message: str, code: int) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
