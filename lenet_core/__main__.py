"""Command line: ``python -m lenet_core train ...`` and ``python -m lenet_core evaluate WEIGHTS``.

``train --engine torch`` trains the PyTorch twin (:class:`lenet_core.twin.TorchLeNet5`) instead of the
NumPy model, from the same initial weights, with the same recipe, seed and batches
(:func:`lenet_core.twin.fit_torch`), and saves its weights in the same ``.npz`` format through
:func:`lenet_core.twin.from_torch` and :func:`lenet_core.model.save_weights` (never ``torch.save``).
"""

from __future__ import annotations

import argparse
import sys
import time

from .data import load_mnist, prepare
from .model import LeNet5, load_weights, save_weights
from .optim import OPTIMIZERS, SCHEDULES, make_optimizer, make_scheduler
from .train import DEFAULT_RECIPE, evaluate, fit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lenet_core", description="Train and evaluate LeNet-5 on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "directory with the four MNIST .gz files (default: $LENET_MNIST_DIR, the cache, or download)"

    train = sub.add_parser("train", help="train LeNet-5 (NumPy, or its PyTorch twin) and save its weights")
    train.add_argument("--engine", choices=["numpy", "torch"], default="numpy",
                       help="numpy: lenet_core's LeNet5 (default); torch: its PyTorch twin, same recipe and "
                            "batches, weights saved as the same .npz")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=DEFAULT_RECIPE["batch_size"])
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULT_RECIPE["optimizer"])
    train.add_argument("--lr", type=float, default=None,
                       help=f"learning rate (default {DEFAULT_RECIPE['lr']}, or 1e-3 for adam)")
    train.add_argument("--weight-decay", type=float, default=DEFAULT_RECIPE["weight_decay"])
    train.add_argument("--schedule", choices=list(SCHEDULES), default=DEFAULT_RECIPE["schedule"])
    train.add_argument("--augment", type=int, default=0, metavar="PIXELS",
                       help="shift each training image randomly by up to this many pixels per axis (0: off; 2 works well)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=int, default=None, metavar="N",
                       help="train on the first N training images only (quick checks; default: all 60,000)")
    train.add_argument("--data", default=None, help=data_help)
    train.add_argument("--out", default="weights.npz", help="where to save the weights (.npz)")
    train.add_argument("--history", default=None, metavar="PATH.json",
                       help="also write the per-epoch loss, accuracies, learning rate and seconds as JSON")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = sub.add_parser("evaluate", help="test accuracy of saved weights")
    ev.add_argument("weights")
    ev.add_argument("--data", default=None, help=data_help)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        if args.epochs < 1 or args.batch_size < 1:
            raise SystemExit("error: --epochs and --batch-size must be at least 1")
        if args.limit is not None and args.limit < 1:
            raise SystemExit(f"error: --limit must be at least 1, got {args.limit}")
        if not args.out.endswith(".npz"):
            raise SystemExit(f"error: --out must end in .npz, got {args.out}")
        if args.history is not None and not args.history.endswith(".json"):
            raise SystemExit(f"error: --history must end in .json, got {args.history}")
    mnist = load_mnist(args.data)
    x_test, y_test = prepare(mnist.x_test), mnist.y_test
    if args.command == "evaluate":
        model = load_weights(LeNet5(), args.weights)
        loss, acc = evaluate(model, x_test, y_test)
        print(f"test loss {loss:.4f}  test accuracy {acc:.2%}  ({len(y_test)} images)")
        return 0

    x_train, y_train = mnist.x_train, mnist.y_train
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    # x_train stays uint8 (47 MB): fit prepares each batch, never the whole set as float (246 MB)
    model = LeNet5(seed=args.seed)
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else DEFAULT_RECIPE["lr"])
    print(f"LeNet-5 ({model.num_parameters():,} parameters, engine {args.engine}), {args.optimizer} lr={lr:g}, "
          f"weight decay {args.weight_decay:g}, batch {args.batch_size}, {args.schedule} schedule, "
          f"augment={args.augment}, seed={args.seed}, {len(y_train):,} training images")
    start = time.perf_counter()
    if args.engine == "torch":
        model, history = _train_torch(model, x_train, y_train, (x_test, y_test), args, lr)
    else:
        optimizer = make_optimizer(args.optimizer, model.parameters(), lr, weight_decay=args.weight_decay)
        scheduler = make_scheduler(args.schedule, optimizer, args.epochs)
        history = fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=optimizer, scheduler=scheduler, validation=(x_test, y_test), augment=args.augment,
                      seed=args.seed, progress=not args.quiet)
    loss, acc = evaluate(model, x_test, y_test)          # the weights as saved, evaluated by lenet_core
    save_weights(model, args.out)
    print(f"test accuracy {acc:.2%} (loss {loss:.4f}) after {args.epochs} epochs in "
          f"{time.perf_counter() - start:.0f}s; weights saved to {args.out}")
    if args.history is not None:
        history.save(args.history)
        print(f"history saved to {args.history}")
    peak = _peak_memory_mib()
    if peak is not None:
        print(f"peak memory (max RSS) {peak:.0f} MiB")
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


if __name__ == "__main__":
    sys.exit(main())
