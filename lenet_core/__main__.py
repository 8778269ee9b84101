"""Command line: ``python -m lenet_core train ...`` and ``python -m lenet_core evaluate WEIGHTS``."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .data import load_mnist, prepare
from .model import LeNet5, load_weights, save_weights
from .optim import CosineAnnealingLR, StepLR, make_optimizer
from .train import DEFAULT_RECIPE, evaluate, fit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lenet_core", description="Train and evaluate LeNet-5 on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "directory with the four MNIST .gz files (default: $LENET_MNIST_DIR, the cache, or download)"

    train = sub.add_parser("train", help="train LeNet-5 from scratch and save its weights")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=DEFAULT_RECIPE["batch_size"])
    train.add_argument("--optimizer", choices=["sgd", "momentum", "adam"], default=DEFAULT_RECIPE["optimizer"])
    train.add_argument("--lr", type=float, default=None,
                       help=f"learning rate (default {DEFAULT_RECIPE['lr']}, or 1e-3 for adam)")
    train.add_argument("--weight-decay", type=float, default=DEFAULT_RECIPE["weight_decay"])
    train.add_argument("--schedule", choices=["cosine", "step", "none"], default=DEFAULT_RECIPE["schedule"])
    train.add_argument("--augment", type=int, default=0, metavar="PIXELS",
                       help="shift training images randomly by up to this many pixels (0: off)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data", default=None, help=data_help)
    train.add_argument("--out", default="weights.npz", help="where to save the weights (.npz)")
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
        if not args.out.endswith(".npz"):
            raise SystemExit(f"error: --out must end in .npz, got {args.out}")
    mnist = load_mnist(args.data)
    x_test, y_test = prepare(mnist.x_test), mnist.y_test
    if args.command == "evaluate":
        model = load_weights(LeNet5(), args.weights)
        loss, acc = evaluate(model, x_test, y_test)
        print(f"test loss {loss:.4f}  test accuracy {acc:.2%}  ({len(y_test)} images)")
        return 0

    model = LeNet5(seed=args.seed)
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else DEFAULT_RECIPE["lr"])
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr, weight_decay=args.weight_decay)
    scheduler = {"cosine": lambda: CosineAnnealingLR(optimizer, T_max=args.epochs),
                 "step": lambda: StepLR(optimizer, step_size=max(1, args.epochs // 3)),
                 "none": lambda: None}[args.schedule]()
    print(f"LeNet-5 ({model.num_parameters():,} parameters), {args.optimizer} lr={lr:g}, "
          f"batch {args.batch_size}, {args.schedule} schedule, augment={args.augment}, seed={args.seed}")
    start = time.perf_counter()
    fit(model, prepare(mnist.x_train), mnist.y_train, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=optimizer, scheduler=scheduler, validation=(x_test, y_test), augment=args.augment,
        seed=args.seed, progress=not args.quiet)
    loss, acc = evaluate(model, x_test, y_test)
    save_weights(model, args.out)
    print(f"test accuracy {acc:.2%} (loss {loss:.4f}) after {args.epochs} epochs in "
          f"{time.perf_counter() - start:.0f}s; weights saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
