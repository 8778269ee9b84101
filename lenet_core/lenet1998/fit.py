"""Training and evaluation of LeNet-5 as in 1998: :func:`fit_1998` (SDLM or the book's recipe,
optional distortions) and :func:`evaluate_1998`."""

from __future__ import annotations

import numpy as np

from ..losses import SoftmaxCrossEntropy
from ..optim import make_optimizer, make_scheduler
from .distortions import random_affine
from .layers import RBFLoss, RBFOutput, scores
from .sdlm import SDLM, estimate_curvature, sdlm_learning_rate

__all__ = ["evaluate_1998", "fit_1998"]


# ----------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------

def evaluate_1998(model, x, y, loss_fn, batch_size=1000) -> tuple[float, float]:
    """Mean loss and accuracy; the prediction is the argmax of :func:`scores` (the smallest RBF penalty)."""
    outs = np.concatenate([model.forward(x[i:i + batch_size].astype(model.dtype, copy=False))
                           for i in range(0, len(x), batch_size)])
    return loss_fn.forward(outs, y), float((scores(outs, loss_fn).argmax(axis=1) == y).mean())


def fit_1998(model, x, y, *, epochs=20, loss_fn=None, optimizer="sdlm", batch_size=32, validation=None,
             distort=False, distortion=None, augment_shift=0, seed=0, hessian_samples=500, mu=0.02, lr=None,
             weight_decay=5e-4, sdlm_reduction="mean", early_curvature_every=10, constant_lr=False,
             progress=True, quiet=False):
    """Train ``model`` in place; return a :class:`lenet_core.train.History`.

    ``optimizer="sdlm"``: the paper's procedure. Before every pass the diagonal Hessian is
    re-estimated on ``hessian_samples`` (500) training samples drawn at random and kept fixed for
    the pass; the global rate follows :func:`sdlm_learning_rate` (the first ``epochs`` passes of the
    paper's 20); ``mu = 0.02``. The paper updates after every sample; we update once per mini-batch
    with the per-sample step applied to the batch's *mean* gradient (``sdlm_reduction="mean"``), so a
    pass makes ``batch_size`` times fewer, less noisy updates. ``"sum"`` (the sum of the batch's
    per-sample updates) diverged into saturation at the paper's eta and mu in our trials.
    During the first pass, ``early_curvature_every=k`` re-estimates the curvature after every ``k``
    updates as well (our departure from the paper, ``None`` turns it off): the first estimate comes
    from the untrained network, whose small upper-layer weights let almost no curvature reach the
    lower layers, and as those weights grow within the pass the lower layers' steps, still at the
    cap ``eta / mu``, become far too large; with the paper's single estimate per pass some seeds
    diverge in their first pass (``experiments/distortion_probe.py``, ``results/lenet1998_probe.json``).
    ``optimizer="momentum"``: the book's recipe (SGD, Nesterov momentum 0.9, lr 0.05, weight decay
    5e-4, cosine schedule over ``epochs``) on the mean loss. ``loss_fn`` defaults to :class:`RBFLoss`
    for an RBF output and :class:`~lenet_core.losses.SoftmaxCrossEntropy` otherwise.
    ``distort`` draws a fresh :func:`random_affine` distortion of every image at every pass, with
    the ranges ``distortion`` (a dict of :func:`random_affine`'s keywords; default :data:`DISTORTION`);
    ``augment_shift=k`` shifts by up to k pixels instead (:func:`lenet_core.train.random_shift`).
    ``validation=(x_val, y_val)`` is evaluated after each pass. ``constant_lr`` keeps the first rate
    throughout (no schedule), for short sanity checks. The loop is :func:`lenet_core.train.train_loop`,
    the one every trainer shares: it stops with a :class:`~lenet_core.train.DivergenceError` when a
    batch's loss is not finite or rises tenfold above its start (an RBF network stuck with F6
    saturated sits there).
    """
    from ..train import train_loop
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if loss_fn is None:
        loss_fn = RBFLoss() if isinstance(list(model)[-1], RBFOutput) else SoftmaxCrossEntropy()
    rng = np.random.default_rng(seed)          # curvature samples, batches and distortions: one stream
    if optimizer == "sdlm":
        opt, sched = SDLM(model.parameters(), lr=sdlm_learning_rate(1), mu=mu), None
    elif optimizer == "momentum":
        opt = make_optimizer("momentum", model.parameters(), lr or 0.05, weight_decay=weight_decay)
        sched = None if constant_lr else make_scheduler("cosine", opt, epochs)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose 'sdlm' or 'momentum'")
    state = {"epoch": 0, "updates": 0}

    def new_curvature():
        idx = rng.choice(len(x), size=min(hessian_samples, len(x)), replace=False)
        opt.set_curvature(estimate_curvature(model, x[idx], y[idx], loss_fn))

    def start_pass(epoch):
        state.update(epoch=epoch, updates=0)
        if optimizer == "sdlm":                      # the paper: eta from the schedule, h on 500 samples
            opt.lr = sdlm_learning_rate(1 if constant_lr else epoch)
            new_curvature()

    def forward(xb, yb):
        out = model.forward(xb)
        return (loss_fn.forward(out, yb), int((scores(out, loss_fn).argmax(axis=1) == yb).sum()),
                out.shape[1])

    def update():
        dout = loss_fn.backward()
        if optimizer == "sdlm" and sdlm_reduction == "sum":
            dout = dout * len(dout)                      # sum of per-sample gradients
        model.backward(dout)
        opt.step(model.gradients())
        state["updates"] += 1
        if (optimizer == "sdlm" and early_curvature_every and state["epoch"] == 1
                and state["updates"] % early_curvature_every == 0):
            new_curvature()                          # our departure: see the docstring

    def distort_batch(xb, generator):
        return random_affine(xb, generator, **(distortion or {}))

    return train_loop(forward, update, x, y, epochs=epochs, batch_size=batch_size, dtype=model.dtype,
                      optimizer_settings=lambda: (opt.lr, getattr(opt, "weight_decay", 0.0), False),
                      scheduler=sched, augment=0 if distort else augment_shift,
                      transform=distort_batch if distort else None, seed=rng, quiet=quiet,
                      progress=progress, on_epoch_start=start_pass,
                      validate=(lambda: evaluate_1998(model, *validation, loss_fn))
                      if validation is not None else None)
