"""Chapter 11's hypotheses about the gap to the paper's 0.95%, each a short run on the validation split.

The paper updates after every pattern; experiments/train_1998.py (NumPy) updates once per mini-batch of
32, because a NumPy step on one image costs about as much as a step on 32. This script trains the
PyTorch twin (lenet_core.twin1998, one thread) with the same SDLM: ``eta / (mu + h_kk)`` per
parameter, ``h_kk`` from lenet_core.lenet1998.estimate_curvature on 500 training samples before
every pass (and, with --early, every few updates of the first pass), the paper's schedule for eta
times ``eta_scale``, the mean gradient of each batch. Nothing stops a run: a non-finite loss is
counted and training goes on, so a run that our usual 10x-loss rule would stop shows whether it
recovers. The test set is never read.

Experiments (``--only`` picks some; the default runs them all):

- ``rate_x<k>``: batch 32 (train_1998's setting, early estimates on) with eta times k, seed 0;
- ``batch8_seed<s>``: batch 8, early estimates every 40 updates, one pass, the seeds that
  results/lenet1998_batch8.json stopped as diverged, left to run;
- ``per_pattern``: batch 1, the paper's procedure (one curvature estimate per pass), seed 0, one
  pass over the first SUBSET training images; ``per_pattern_early``: the same with the curvature
  also re-estimated every 320 samples of the pass (the spacing of train_1998's default, 10
  updates of 32); ``batch32_subset``: batch 32 on the same images, for comparison;
  ``per_pattern_early_eta_div<d>``: per-pattern with early estimates and eta divided by d.

    python -m experiments.sdlm_experiments --passes 2
    python -m experiments.sdlm_experiments --quick --out /tmp/x.json      # code path only

Writes results/lenet1998_experiments.json (lenet_core.records), rewritten after every experiment.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import torch

from lenet_core.data import load_splits
from lenet_core.lenet1998 import (LeNet5_1998, RBFLoss, estimate_curvature, evaluate_1998, prepare_1998,
                                  sdlm_learning_rate)
from lenet_core.lenet1998.twin import rbf_loss_torch, to_torch_1998, torch_name_1998
from lenet_core.records import RECORDS_DIR, write_record

RATE_SCALES = (0.5, 1.0, 2.0, 4.0)
#: images of the per-pattern runs' single pass (a NumPy-free pass over all 55,000 takes over an hour
#: on a shared core)
SUBSET = 20000


def experiments(passes):
    """``{key: settings}``: what each run changes, cheapest first (the record is rewritten after each).
    ``images``: the first that many training images (0: all); per-pattern runs make one pass over
    ``SUBSET`` images, beside a batch-32 run on the same images."""
    out = {}
    for k in RATE_SCALES:
        out[f"rate_x{k:g}"] = dict(batch_size=32, early_every=10, seed=0, eta_scale=k)
    for s in (0, 1):
        out[f"batch8_seed{s}"] = dict(batch_size=8, early_every=40, seed=s, passes=1)
    out["batch32_subset"] = dict(batch_size=32, early_every=10, seed=0, passes=1, images=SUBSET)
    out["per_pattern_early"] = dict(batch_size=1, early_every=320, seed=0, passes=1, images=SUBSET)
    out["per_pattern"] = dict(batch_size=1, early_every=None, seed=0, passes=1, images=SUBSET)
    for d in (4, 32):                                # per-pattern at a smaller global rate
        out[f"per_pattern_early_eta_div{d}"] = dict(batch_size=1, early_every=320, seed=0, passes=1,
                                                     images=SUBSET, eta_scale=1 / d)
    return {k: {"passes": passes, "eta_scale": 1.0, "images": 0, **v} for k, v in out.items()}


def curvature_steps(model, x, y, rng, eta, *, mu=0.02, samples=500) -> dict:
    """SDLM's per-parameter steps ``eta / (mu + h_kk)`` (float32, by NumPy name), ``h_kk`` the
    Gauss-Newton diagonal estimated on ``samples`` images of ``x`` drawn with ``rng``."""
    idx = rng.choice(len(x), size=min(samples, len(x)), replace=False)
    h = estimate_curvature(model, x[idx], y[idx], RBFLoss())
    return {k: (eta / (mu + v)).astype(np.float32) for k, v in h.items()}


def sdlm_update(params, loss, steps) -> None:
    """One SDLM update in place: ``p -= step * dloss/dp`` for the tensors ``params``, ``steps``."""
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        torch._foreach_sub_(params, torch._foreach_mul(grads, steps))


def sdlm_torch(x, y, validation, *, passes, batch_size, seed=0, eta_scale=1.0, early_every=None,
               images=0, mu=0.02, hessian_samples=500, progress=False):
    """Train ``LeNet5_1998(seed)`` through its PyTorch twin with SDLM; never stops early.

    ``x`` (N, 1, 32, 32) float32 prepared images (the first ``images`` of them if > 0), ``y`` (N,)
    labels, ``validation=(xv, yv)``.
    Returns per-pass ``val_error``, ``train_loss`` (mean over the pass's finite batch losses),
    ``seconds``, the count of non-finite batch losses and the first update that had one, and the
    final ``train_error`` on ``x``.
    """
    torch.set_num_threads(1)
    if images:
        x, y = x[:images], y[:images]
    rng = np.random.default_rng(seed)
    model = LeNet5_1998(seed=seed)
    net = to_torch_1998(model)
    names = {k: torch_name_1998(k) for k in model.parameters()}
    tparams = dict(net.named_parameters())
    order_names = list(names)
    params = [tparams[names[k]] for k in order_names]
    loss_np = RBFLoss()

    def sync():                                         # torch -> NumPy, for the curvature and evaluation
        for k, p in model.parameters().items():
            p[...] = tparams[names[k]].detach().numpy()

    def step_sizes(eta):
        sync()
        h = curvature_steps(model, x, y, rng, eta, mu=mu, samples=hessian_samples)
        return [torch.from_numpy(h[k]) for k in order_names]

    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))
    out = {"val_error": [], "train_loss": [], "seconds": [], "nonfinite": 0, "first_nonfinite": None}
    updates_total = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=passes * math.ceil(len(x) / batch_size), mininterval=10, file=sys.stdout)
    for epoch in range(1, passes + 1):
        start = time.perf_counter()
        eta = eta_scale * sdlm_learning_rate(epoch)
        steps = step_sizes(eta)
        order = torch.from_numpy(rng.permutation(len(x)))
        losses, updates = [], 0
        for b in range(0, len(x), batch_size):
            idx = order[b:b + batch_size]
            loss = rbf_loss_torch(net(xt[idx]), yt[idx])
            sdlm_update(params, loss, steps)
            value = float(loss.detach())
            updates += 1
            updates_total += 1
            if math.isfinite(value):
                losses.append(value)
            else:
                out["nonfinite"] += 1
                out["first_nonfinite"] = out["first_nonfinite"] or updates_total
            if early_every and epoch == 1 and updates % early_every == 0:
                steps = step_sizes(eta)
            if bar is not None:
                bar.update()
        sync()
        with np.errstate(all="ignore"):
            _, val_acc = evaluate_1998(model, *validation, loss_np)
        out["val_error"].append(1 - val_acc)
        out["train_loss"].append(float(np.mean(losses)) if losses else None)
        out["seconds"].append(round(time.perf_counter() - start, 1))
    if bar is not None:
        bar.close()
    with np.errstate(all="ignore"):
        out["train_error"] = 1 - evaluate_1998(model, x, y, loss_np)[1]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--only", nargs="+", help="experiment keys to run (default: all)")
    p.add_argument("--quick", action="store_true", help="500 images, 1 pass: the code path only")
    p.add_argument("--out", type=Path, default=RECORDS_DIR / "lenet1998_experiments.json")
    args = p.parse_args(argv)
    limit, val_size, passes = 0, 5000, args.passes
    if args.quick:
        limit, val_size, passes = 500, 200, 1
        if args.out.resolve().parent == RECORDS_DIR.resolve():
            p.error("--quick writes to a temporary folder: pass --out elsewhere than results/")
    plan = experiments(passes)
    if args.only:
        unknown = sorted(set(args.only) - set(plan))
        if unknown:
            p.error(f"unknown experiment(s) {unknown}; choose from {sorted(plan)}")
        plan = {k: v for k, v in plan.items() if k in args.only}
    if args.quick:
        plan = {k: {**v, "images": 0} for k, v in plan.items() if k in ("rate_x2", "per_pattern")}
    x, y, xv, yv, _, _ = load_splits(prepare_1998, limit=limit, val_size=val_size)   # the test set unused
    runs = {}
    for key, settings in plan.items():
        print(f"{key}: {settings}", flush=True)
        result = sdlm_torch(x, y, (xv, yv), progress=not args.quick, **settings)
        runs[key] = {"settings": settings, **result}
        print(f"  val error per pass {[round(100 * e, 2) for e in result['val_error']]} %, "
              f"train error {100 * result['train_error']:.2f} %, non-finite {result['nonfinite']}", flush=True)
        write_record(args.out, {"config": {"train_images": len(x), "validation_images": len(xv), "mu": 0.02,
                                           "hessian_samples": 500, "engine": "torch twin, 1 thread",
                                           "torch": torch.__version__},
                                "complete": len(runs) == len(plan), "runs": runs},
                     seed=sorted({s["seed"] for s in plan.values()}), quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
