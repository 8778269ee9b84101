"""Command line: ``python -m lenet_core train ...`` and ``python -m lenet_core evaluate WEIGHTS``.

Every argument is checked before any data is loaded or any training starts; every expected failure
ends in one line on stderr and its own exit code (:data:`EXIT_CODES`; a traceback only with
``--debug``). ``train`` holds out a validation split (``--validation``, default 5,000 images) for the
per-epoch figures, reads the test set once at the end, writes a checkpoint after every epoch and
continues one with ``--resume``; Ctrl-C or SIGTERM stop after saving what is finished.

``train --engine torch`` trains the PyTorch twin (:class:`lenet_core.twin.TorchLeNet5`) instead of the
NumPy model, from the same initial weights, with the same recipe, seed and batches
(:func:`lenet_core.twin.fit_torch`), and saves its weights in the same ``.npz`` format through
:func:`lenet_core.twin.from_torch` and :func:`lenet_core.model.save_weights` (never ``torch.save``).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .data import VALIDATION_SIZE, MNISTError
from .optim import OPTIMIZERS, SCHEDULES
from .train import DEFAULT_RECIPE

#: exit codes, one per kind of failure (also in ``--help`` and README.md)
EXIT_CODES = {
    "ok": 0,
    "bug": 1,           # an unexpected error: a bug, reported with its traceback
    "usage": 2,         # a bad option or value (nothing was loaded)
    "data": 3,          # MNIST missing, unreadable, corrupt, or the download failed
    "weights": 4,       # a weights or checkpoint file missing, unreadable or not fitting the model
    "output": 5,        # an output could not be written
    "diverged": 6,      # training diverged; nothing saved as a result
    "interrupted": 130,  # Ctrl-C or SIGTERM; finished epochs are in the checkpoint
}

EPILOG = """\
exit codes:
  0    success
  1    a bug (unexpected error; its traceback is printed)
  2    bad command line: an option or value out of range, an output path that cannot be written
  3    MNIST data missing, unreadable or corrupt, or the download failed
  4    weights or checkpoint file missing, unreadable, or not fitting the model
  5    an output file could not be written
  6    training diverged (loss NaN or far above its start): nothing saved as a result
  130  interrupted (Ctrl-C or SIGTERM): finished epochs are in the checkpoint; resume with --resume
Every failure prints one line on stderr; --debug adds the traceback."""

#: largest --augment shift: the digit's 20x20 box sits 6 pixels inside the 32x32 input
MAX_AUGMENT = 4
#: largest --weight-decay accepted; the recipe uses 5e-4
MAX_WEIGHT_DECAY = 1.0
#: MNIST's training images
TRAIN_SIZE = 60000
#: arguments a resumed run takes from its checkpoint (the recipe and the data)
RECIPE_ARGS = ("engine", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "augment",
               "seed", "limit", "validation")


class CLIError(Exception):
    """An expected failure: one line for the user and an exit code from :data:`EXIT_CODES`."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.code = EXIT_CODES[kind]


class _Parser(argparse.ArgumentParser):
    def error(self, message):                  # one line, not usage + error
        self.exit(EXIT_CODES["usage"], f"{self.prog}: error: {message} (see --help)\n")


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
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        bad = (not math.isfinite(value) or (low is not None and (value <= low if low_open else value < low))
               or (high is not None and value > high))
        if bad:
            bounds = [f"> {low:g}" if low_open else f">= {low:g}"] if low is not None else []
            bounds += [f"<= {high:g}"] if high is not None else []
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"must be {what} {' and '.join(bounds)}, got {text!r}")
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
    train.add_argument("--epochs", type=_number(int, 1), default=10, help="passes over the training images")
    train.add_argument("--batch-size", type=_number(int, 1), default=DEFAULT_RECIPE["batch_size"],
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
    train.add_argument("--seed", type=_number(int, 0), default=0,
                       help="seed of the initial weights, the batch order and the augmentation")
    train.add_argument("--validation", type=_number(int, 0, TRAIN_SIZE - 1), default=VALIDATION_SIZE,
                       metavar="N", help="training images held out as the validation split reported after "
                                         "each epoch (0: train on all 60,000, no validation figures)")
    train.add_argument("--limit", type=_number(int, 1), default=None, metavar="N",
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

def _check_output(path: str, option: str, suffix: str) -> Path:
    """``path`` can be written as a new or replaced file ending in ``suffix``; else :class:`CLIError`
    (usage) naming ``option``. Nothing is left on disk (a probe file in the folder is removed at once)."""
    p = Path(path)
    if not p.name.endswith(suffix):
        raise CLIError(f"{option} must end in {suffix}, got {path!r}", "usage")
    if p.name == suffix:
        raise CLIError(f"{option} {path!r} names no file: give a name such as out{suffix}", "usage")
    if p.is_dir():
        raise CLIError(f"{option} {path}: is a directory", "usage")
    if p.exists() and not p.is_file():
        raise CLIError(f"{option} {path}: exists and is not a regular file", "usage")
    folder = p.absolute().parent
    while not folder.exists() and not folder.is_symlink():
        folder = folder.parent
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: {folder} is not a folder", "usage")
    try:                                        # the name atomic_write's temporary file will have
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{p.name}.", suffix=".tmp"):
            pass
    except OSError as e:
        raise CLIError(f"{option} {path}: cannot write in {folder} ({e.strerror})", "usage") from None
    return p


def _check_train_args(args) -> None:
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
    for option, path in outputs.items():
        key = path.absolute()
        if key in seen:
            raise CLIError(f"{option} and {seen[key]} name the same file {path}", "usage")
        seen[key] = option
    if args.resume is not None and Path(args.resume).absolute() in seen and \
            seen[Path(args.resume).absolute()] != "--checkpoint":
        raise CLIError(f"--resume {args.resume} is also {seen[Path(args.resume).absolute()]}", "usage")
    if args.limit is not None and args.limit > TRAIN_SIZE - args.validation:
        raise CLIError(f"--limit {args.limit} is more than the {TRAIN_SIZE - args.validation:,} training "
                       f"images left after --validation {args.validation}", "usage")


def _check_data_dir(args) -> None:
    if args.data is not None and not Path(args.data).is_dir():
        what = "is not a folder" if Path(args.data).exists() else "does not exist"
        raise CLIError(f"--data {args.data} {what}", "data")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

def _evaluate(args) -> int:
    from ._files import npz_headers
    from .checkpoint import load_checkpoint
    from .data import load_mnist, prepare
    from .model import LeNet5, load_weights
    from .train import evaluate

    def read():
        names = npz_headers(args.weights) if Path(args.weights).is_file() else {}
        if "meta" in names:                                                # a training checkpoint
            model = LeNet5()
            model.load_state_dict(load_checkpoint(args.weights).model, source=args.weights)
            return model
        if "S2.coeff" in names:                          # trainable subsampling: LeNet-5 as in 1998
            from .lenet1998 import LeNet5_1998
            return load_weights(LeNet5_1998(), args.weights)
        return load_weights(LeNet5(), args.weights)

    model = _load(read)                                                    # before any data is read
    mnist = load_mnist(args.data)
    if "S2" in model.layers and hasattr(model["S2"], "window_sums"):
        from .lenet1998 import RBFLoss, evaluate_1998, prepare_1998
        loss, acc = evaluate_1998(model, prepare_1998(mnist.x_test), mnist.y_test, RBFLoss())
    else:
        loss, acc = evaluate(model, prepare(mnist.x_test), mnist.y_test)
    print(f"test loss {loss:.4f}  test accuracy {acc:.2%}  ({len(mnist.y_test)} images)")
    return 0


def _load(read):
    """Run ``read()`` (a weights or checkpoint loader); its expected failures become exit code 4."""
    try:
        return read()
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e), "weights") from None
    except OSError as e:
        raise CLIError(f"{e.filename}: {e.strerror}", "weights") from None


def _train(args, defaults) -> int:
    import numpy as np

    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import load_mnist, split_validation
    from .model import LeNet5
    from .optim import make_optimizer, make_scheduler
    from .train import History, evaluate, fit

    if args.model == "lenet1998":
        return _train_1998(args)
    ckpt = None
    if args.resume is not None:
        ckpt = _load(lambda: load_checkpoint(args.resume))
        for key in RECIPE_ARGS:
            if key not in ckpt.args:
                raise CLIError(f"--resume {args.resume}: the checkpoint does not record {key!r}", "weights")
            if getattr(args, key) not in (defaults[key], ckpt.args[key]):
                raise CLIError(f"--{key.replace('_', '-')} {getattr(args, key)} differs from the checkpoint's "
                               f"{ckpt.args[key]}: a resumed run keeps its recipe", "usage")
            setattr(args, key, ckpt.args[key])
        if args.engine != "numpy":
            raise CLIError(f"--resume {args.resume}: only --engine numpy runs have checkpoints", "usage")
    if args.engine == "torch" and not args.no_checkpoint:
        args.no_checkpoint, args.checkpoint = True, None      # torch's optimizer state is not saved yet
        print("note: --engine torch writes no checkpoint (saving torch's optimizer and schedule state is not "
              "implemented yet)")

    mnist = load_mnist(args.data)
    (x_train, y_train), (x_val, y_val) = split_validation(mnist.x_train, mnist.y_train, args.validation)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    # every split stays uint8 digits: fit and evaluate prepare each batch (float32 copies take 5x the memory)
    validation = (x_val, y_val) if args.validation else None
    model = LeNet5(seed=args.seed)
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else DEFAULT_RECIPE["lr"])
    print(f"LeNet-5 ({model.num_parameters():,} parameters, engine {args.engine}), {args.optimizer} lr={lr:g}, "
          f"weight decay {args.weight_decay:g}, batch {args.batch_size}, {args.schedule} schedule, "
          f"augment={args.augment}, seed={args.seed}, {len(y_train):,} training images, "
          f"{len(y_val):,} validation images")
    start = time.perf_counter()
    if args.engine == "torch":
        model, history = _train_torch(model, x_train, y_train, validation, args, lr)
    else:
        optimizer = make_optimizer(args.optimizer, model.parameters(), lr, weight_decay=args.weight_decay)
        scheduler = make_scheduler(args.schedule, optimizer, args.epochs)
        rng = np.random.default_rng(args.seed)
        history = History()
        if ckpt is not None:
            history = _load(lambda: ckpt.restore(model, optimizer, scheduler, rng))
            print(f"resumed from {args.resume} after epoch {ckpt.epoch} of {args.epochs}")
        run_args = {k: getattr(args, k) for k in RECIPE_ARGS}

        def save(epoch, hist):
            if not args.no_checkpoint:
                save_checkpoint(args.checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, rng=rng,
                                history=hist, args=run_args)
            args.finished = epoch

        args.finished = ckpt.epoch if ckpt is not None else 0
        history = fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=optimizer, scheduler=scheduler, validation=validation, augment=args.augment,
                      seed=rng, progress=not args.quiet, history=history, on_epoch_end=save)
    seconds = time.perf_counter() - start
    loss, acc = evaluate(model, mnist.x_test, mnist.y_test)   # the weights as saved, read once
    _save_and_report(model, history, args, acc, loss, f"{args.epochs} epochs in {seconds:.0f}s")
    peak = _peak_memory_mib()
    if peak is not None:
        print(f"peak memory (max RSS) {peak:.0f} MiB")
    return 0


def _save_and_report(model, history, args, acc, loss, how_long: str) -> None:
    """Save the weights (and the history, if asked), saying where and what the test set read once gave."""
    from .model import save_weights

    save_weights(model, args.out)
    print(f"test accuracy {acc:.2%} (loss {loss:.4f}) on the 10,000 test images, read once at the end of the "
          f"run; {how_long}; weights saved to {args.out}")
    if args.history is not None:
        history.save(args.history)
        print(f"history saved to {args.history}")


def _train_1998(args) -> int:
    """``--model lenet1998``: LeNet-5 as in 1998, trained as in the paper (lenet_core.lenet1998.fit_1998)."""
    from .data import load_mnist, split_validation
    from .lenet1998 import LeNet5_1998, RBFLoss, evaluate_1998, fit_1998, prepare_1998, trainable_parameters
    for option, value, default in (("--engine", args.engine, "numpy"), ("--resume", args.resume, None),
                                   ("--optimizer", args.optimizer, DEFAULT_RECIPE["optimizer"]),
                                   ("--lr", args.lr, None), ("--schedule", args.schedule, DEFAULT_RECIPE["schedule"])):
        if value != default:
            raise CLIError(f"{option} {value} does not apply to --model lenet1998 (it trains with SDLM and the "
                           f"paper's schedule)", "usage")
    mnist = load_mnist(args.data)
    (x_train, y_train), (x_val, y_val) = split_validation(mnist.x_train, mnist.y_train, args.validation)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    validation = (prepare_1998(x_val), y_val) if args.validation else None
    model = LeNet5_1998(seed=args.seed)
    print(f"LeNet-5 as in 1998 ({trainable_parameters(model):,} trainable parameters), SDLM, batch {args.batch_size}, "
          f"distortions {'on' if args.augment else 'off'}, seed={args.seed}, {len(y_train):,} training images, "
          f"{len(y_val):,} validation images")
    start = time.perf_counter()
    history = fit_1998(model, prepare_1998(x_train), y_train, epochs=args.epochs, batch_size=args.batch_size,
                       validation=validation, distort=bool(args.augment), seed=args.seed, progress=not args.quiet)
    seconds = time.perf_counter() - start
    loss, acc = evaluate_1998(model, prepare_1998(mnist.x_test), mnist.y_test, RBFLoss())   # read once
    _save_and_report(model, history, args, acc, loss, f"{args.epochs} passes in {seconds:.0f}s")
    return 0


def _train_torch(model, x_train, y_train, validation, args, lr):
    """Train the PyTorch twin of ``model`` (same initial weights, float32) with the command line's recipe;
    return its weights copied back into ``model`` (a lenet_core LeNet5) and the History."""
    from .twin import fit_torch, from_torch, to_torch     # torch is imported only for --engine torch

    module = to_torch(model)
    recipe = dict(optimizer=args.optimizer, lr=lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                  schedule=args.schedule, augment=args.augment)
    history = fit_torch(module, x_train, y_train, epochs=args.epochs, recipe=recipe, validation=validation,
                        seed=args.seed, quiet=False)       # one line per epoch, as fit; there is no progress bar
    return from_torch(module, model), history


def _peak_memory_mib():
    """The process's peak resident memory in MiB, or ``None`` where ``resource`` does not exist (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 / (1024 if sys.platform == "darwin" else 1)   # bytes on macOS, KiB on Linux


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    defaults = vars(parser.parse_args(["train"]))
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if argv is None else None
    try:
        if args.command == "train":
            _check_train_args(args)
            _check_data_dir(args)
            return _train(args, defaults)
        _check_data_dir(args)
        return _evaluate(args)
    except CLIError as e:
        return _fail(args, str(e), e.code)
    except MNISTError as e:
        return _fail(args, str(e).replace("\n", " "), EXIT_CODES["data"])
    except FloatingPointError as e:                     # DivergenceError, or the torch loop's NaN
        return _fail(args, f"{e}; nothing saved as a result", EXIT_CODES["diverged"])
    except KeyboardInterrupt:
        what = "terminated (SIGTERM)" if isinstance(sys.exc_info()[1], _Terminated) else "interrupted"
        finished = getattr(args, "finished", 0)
        if args.command == "train" and finished and not args.no_checkpoint:
            done = f"epoch 1 is" if finished == 1 else f"epochs 1-{finished} are"
            when = (f"during epoch {finished + 1}" if finished < args.epochs
                    else "after the last epoch, before the weights were saved")
            message = (f"{what} {when}; {done} saved in {args.checkpoint}; "
                       f"resume with: python -m lenet_core train --resume {args.checkpoint} --out {args.out}")
        else:
            message = f"{what}; nothing was saved"
        return _fail(args, message, EXIT_CODES["interrupted"])
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        message = f"could not write{where}: {e.strerror or e}"
        finished = getattr(args, "finished", 0)
        if args.command == "train" and finished and not args.no_checkpoint:
            message += (f"; epochs 1-{finished} are saved in {args.checkpoint}; save them with: python -m "
                        f"lenet_core train --resume {args.checkpoint} --out OTHER.npz")
        return _fail(args, message, EXIT_CODES["output"])
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _fail(args, message: str, code: int) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
