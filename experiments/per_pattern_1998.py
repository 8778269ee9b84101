"""LeNet-5 of 1998 trained per pattern (batch 1, as the paper does), several seeds at once.

    python -m experiments.per_pattern_1998 --seeds 3 --passes 20 --stop-at 04:40
    python -m experiments.per_pattern_1998 --quick --out /tmp/x.json      # code path only

The faithful network (:func:`lenet_core.lenet1998.LeNet5_1998`, RBF output, eq. 9's loss) and the
faithful update: after every training image, ``w -= eta / (mu + h_kk) * g`` with ``h_kk`` the
Gauss-Newton diagonal estimated on 500 training images before every pass (and every
``--early-every`` images of the first pass, our departure, see :func:`lenet_core.lenet1998.fit_1998`),
``mu = 0.02``, ``eta`` the paper's schedule times ``--eta-scale`` (default 1/4, chosen on the
validation split by experiments/sdlm_experiments.py). It is the update of
``experiments.sdlm_experiments.sdlm_torch`` at batch 1: each seed draws its curvature samples and
its image order from its own ``np.random.default_rng(seed)``, in the same order.

The seeds train side by side as one computation (:class:`lenet_core.lenet1998.twin.StackedLeNet5_1998`,
grouped convolutions), so PyTorch's per-step overhead, most of a batch-1 step, is paid once for all
of them. A non-finite loss is counted and training goes on.

After every pass each seed's validation error is measured (5,000 images held out of the training
set). ``--stop-at HH:MM`` (UTC) starts no pass that would end after that time. Then the pass with
the lowest mean validation error over the seeds is chosen, and only then is the test set read,
once, by each seed's model of that pass (and its training error measured on the training images).

Writes results/lenet1998_per_pattern.json (lenet_core.records), rewritten after every pass.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import torch

from experiments.headline_seeds import mean_sd
from experiments.sdlm_experiments import curvature_steps, sdlm_update
from lenet_core.data import load_splits
from lenet_core.lenet1998 import LeNet5_1998, RBFLoss, evaluate_1998, prepare_1998, sdlm_learning_rate
from lenet_core.lenet1998.twin import StackedLeNet5_1998, rbf_loss_torch, torch_name_1998
from lenet_core.records import RECORDS_DIR, write_record


def stacked_steps(stack, models, rngs, x, y, eta, *, mu=0.02, samples=500) -> list:
    """Each model's SDLM steps from its own curvature sample, stacked in ``stack.names`` order."""
    per_model = []
    for k, (model, rng) in enumerate(zip(models, rngs)):
        stack.to_numpy(k, model)
        steps = curvature_steps(model, x, y, rng, eta, mu=mu, samples=samples)
        per_model.append({torch_name_1998(name): v for name, v in steps.items()})
    return [torch.from_numpy(np.stack([s[n] for s in per_model])) for n in stack.names]


def stacked_update(stack, xb, yb, steps) -> tuple[torch.Tensor, torch.Tensor]:
    """One SDLM update of every model of ``stack`` on its own batch: ``xb`` (K, B, 1, 32, 32),
    ``yb`` (K, B). Returns the (K, B) penalties' argmin predictions and the (K,) mean losses."""
    penalties = stack.forward(xb)
    k, b = yb.shape
    losses = rbf_loss_torch(penalties.reshape(k * b, -1), yb.reshape(-1), reduction="none")
    losses = losses.reshape(k, b).mean(dim=1)
    sdlm_update([stack.params[n] for n in stack.names], losses.sum(), steps)
    return penalties.detach().argmin(dim=2), losses.detach()


def stop_time(text: str | None) -> float | None:
    """``"HH:MM"`` (UTC, today) -> a ``time.time()`` value; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        hour, minute = (int(v) for v in text.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()
    except ValueError:
        raise SystemExit(f"error: --stop-at takes HH:MM (UTC), got {text!r}") from None


def train(x, y, validation, *, seeds, passes, eta_scale, early_every, mu=0.02, hessian_samples=500,
          stop_at=None, on_pass=None, progress=True):
    """Train ``LeNet5_1998(seed)`` for every seed per pattern; returns (per-pass results,
    snapshots, the stack, the NumPy models).

    Per pass: ``val_error`` (K,), ``train_loss`` (mean of the finite losses), ``running_error``
    (errors on the images as they were trained on), ``nonfinite`` counts, ``seconds``, ``eta``.
    ``snapshots[p]`` holds the stacked weights after pass p + 1.
    """
    loss_np = RBFLoss()
    models = [LeNet5_1998(seed=s) for s in seeds]
    rngs = [np.random.default_rng(s) for s in seeds]
    stack = StackedLeNet5_1998(models)
    k, n = len(seeds), len(x)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    history, snapshots = [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=passes * n, mininterval=10, file=sys.stdout, unit="step",
                   desc=f"{k} models per pattern")
    for epoch in range(1, passes + 1):
        if stop_at is not None and history and time.time() + history[-1]["seconds"] > stop_at:
            break
        start = time.perf_counter()
        eta = eta_scale * sdlm_learning_rate(epoch)
        steps = stacked_steps(stack, models, rngs, x, y, eta, mu=mu, samples=hessian_samples)
        orders = torch.from_numpy(np.stack([rng.permutation(n) for rng in rngs], axis=1))   # (n, K)
        losses, wrong = torch.empty(n, k), torch.zeros(k, dtype=torch.int64)
        for i in range(n):
            idx = orders[i]
            labels = yt[idx][:, None]
            pred, losses[i] = stacked_update(stack, xt[idx][:, None], labels, steps)
            wrong += (pred != labels)[:, 0]
            if early_every and epoch == 1 and (i + 1) % early_every == 0:
                steps = stacked_steps(stack, models, rngs, x, y, eta, mu=mu, samples=hessian_samples)
            if bar is not None:
                bar.update()
        finite = torch.isfinite(losses)
        val_error = []
        for j, model in enumerate(models):
            with np.errstate(all="ignore"):
                val_error.append(1 - evaluate_1998(stack.to_numpy(j, model), *validation, loss_np)[1])
        history.append({
            "pass": epoch, "eta": eta, "val_error": val_error,
            "train_loss": [float(losses[finite[:, j], j].mean()) if finite[:, j].any() else None
                           for j in range(k)],
            "running_error": (wrong / n).tolist(), "nonfinite": (~finite).sum(0).tolist(),
            "seconds": round(time.perf_counter() - start, 1)})
        snapshots.append({name: p.detach().clone() for name, p in stack.params.items()})
        if bar is not None:
            bar.write(f"pass {epoch}: val error " + ", ".join(f"{100 * e:.2f}%" for e in val_error)
                      + f" ({history[-1]['seconds']:.0f} s)")
        if on_pass is not None:
            on_pass(history)
    if bar is not None:
        bar.close()
    return history, snapshots, stack, models


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, trained together (default 3)")
    p.add_argument("--passes", type=int, default=20, help="passes over the training images (default 20)")
    p.add_argument("--eta-scale", type=float, default=0.25, help="times the paper's global rate")
    p.add_argument("--early-every", type=int, default=320,
                   help="first pass: re-estimate the curvature every N images (0: never)")
    p.add_argument("--images", type=int, default=0, help="the first N training images (0: all)")
    p.add_argument("--stop-at", default=None, metavar="HH:MM",
                   help="UTC time: start no pass that would end after it")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    p.add_argument("--quick", action="store_true", help="300 images, 2 passes: the code path only")
    p.add_argument("--out", type=Path, default=RECORDS_DIR / "lenet1998_per_pattern.json")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.passes < 1 or args.images < 0 or args.eta_scale <= 0:
        p.error("need --seeds >= 1, --passes >= 1, --images >= 0 and --eta-scale > 0")
    stop_at = stop_time(args.stop_at)
    limit, val_size, test_size = args.images, 5000, None
    if args.quick:
        limit, val_size, test_size, args.passes, args.early_every = 300, 200, 200, 2, 100
        if args.out.resolve().parent == RECORDS_DIR.resolve():
            p.error("--quick writes to a temporary folder: pass --out elsewhere than results/")
    torch.set_num_threads(args.threads)
    x, y, xv, yv, xt, yt = load_splits(prepare_1998, limit=limit, val_size=val_size)
    if test_size:
        xt, yt = xt[:test_size], yt[:test_size]
    seeds = list(range(args.seeds))
    config = {"train_images": len(x), "validation_images": len(xv), "test_images": len(yt),
              "passes_planned": args.passes, "eta_scale": args.eta_scale,
              "early_every": args.early_every, "mu": 0.02, "hessian_samples": 500, "batch_size": 1,
              "stop_at": args.stop_at, "threads": args.threads,
              "engine": "PyTorch, the seeds stacked (StackedLeNet5_1998)", "torch": torch.__version__,
              "choice": "the pass with the lowest mean validation error over the seeds; then the "
                        "test set is read once per seed"}

    def record(history, **extra):
        return write_record(args.out, {"config": config, "passes": history, **extra},
                            seed=seeds, quick=args.quick)

    history, snapshots, stack, models = train(
        x, y, (xv, yv), seeds=seeds, passes=args.passes, eta_scale=args.eta_scale,
        early_every=args.early_every, stop_at=stop_at, progress=not args.quick,
        on_pass=lambda h: record(h, complete=False))
    mean_val = [float(np.mean(h["val_error"])) for h in history]
    chosen = int(np.argmin(mean_val))                   # first pass of the lowest mean
    with torch.no_grad():
        for name, value in snapshots[chosen].items():
            stack.params[name].copy_(value)
    loss_np = RBFLoss()
    test_error, train_error = [], []
    for j, model in enumerate(models):
        stack.to_numpy(j, model)
        with np.errstate(all="ignore"):
            test_error.append(1 - evaluate_1998(model, xt, yt, loss_np)[1])    # read once
            train_error.append(1 - evaluate_1998(model, x, y, loss_np)[1])
    chosen_pass = history[chosen]
    summary = {"passes_done": len(history), "stopped_for_time": len(history) < args.passes,
               "chosen_pass": chosen_pass["pass"],
               "val_error": mean_sd(chosen_pass["val_error"]), "test_error": mean_sd(test_error),
               "train_error": mean_sd(train_error), "test_error_per_seed": test_error,
               "train_error_per_seed": train_error,
               "nonfinite_total": int(sum(sum(h["nonfinite"]) for h in history))}
    path = record(history, summary=summary, complete=True)
    print(f"chosen pass {summary['chosen_pass']} of {summary['passes_done']}: validation error "
          f"{100 * summary['val_error']['mean']:.2f}% ± {100 * summary['val_error']['sd']:.2f}%, "
          f"test {100 * summary['test_error']['mean']:.2f}% ± {100 * summary['test_error']['sd']:.2f}%, "
          f"training {100 * summary['train_error']['mean']:.2f}%; record {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
