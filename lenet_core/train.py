"""Mini-batch training, evaluation and prediction for a :class:`~lenet_core.model.Sequential` model
(chapter 6).

Inputs are prepared arrays ``(N, 1, 32, 32)`` (see :func:`lenet_core.data.prepare`), or raw uint8
digits ``(N, 28, 28)`` prepared batch by batch, and integer labels ``(N,)``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ._files import atomic_write, read_json
from .data import batches, gather, random_shift
from .layers import input_grad, no_grad
from .losses import SoftmaxCrossEntropy, softmax
from .optim import make_optimizer, make_scheduler
from .parallel import DataParallel

__all__ = ["History", "DivergenceError", "DIVERGENCE_FACTOR", "fit", "train_loop", "evaluate", "predict",
           "predict_proba", "random_shift", "gather", "check_data", "DEFAULT_RECIPE"]

#: what ``fit`` and ``python -m lenet_core train`` use unless told otherwise: SGD with Nesterov momentum
#: 0.9, learning rate 0.05 decayed to 0 along a cosine over the run, L2 weight decay 5e-4 (it keeps the
#: weights small and the tanh units out of saturation; on the validation split its gain is within the
#: spread over seeds: ``results/headline.json``, chapter 6), mini-batches of 64. Inputs are normalised by :func:`lenet_core.data.prepare`, weights start from
#: LeCun's uniform initialisation. Augmentation (random shifts) is off unless asked for.
DEFAULT_RECIPE = dict(optimizer="momentum", lr=0.05, weight_decay=5e-4, batch_size=64, schedule="cosine")


#: training stops as diverged when a batch's loss exceeds this many times its starting value (the first
#: batch's loss, at least the loss of a uniform guess, ln(classes)): healthy runs only go down from there
DIVERGENCE_FACTOR = 10


class DivergenceError(FloatingPointError):
    """Training diverged: the loss became NaN/infinite or rose far above its starting value.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """


def _divergence(loss, reference, epoch, step, settings) -> DivergenceError | None:
    """A :class:`DivergenceError` naming the batch and the likely cause if ``loss`` shows divergence.

    ``settings()``: the optimizer's ``(lr, weight_decay, adaptive)`` (``adaptive`` for Adam), read only
    when there is an error to explain."""
    if math.isfinite(loss) and loss <= DIVERGENCE_FACTOR * reference:
        return None
    what = (f"became {loss}" if not math.isfinite(loss) else
            f"rose to {loss:.4g}, over {DIVERGENCE_FACTOR}x its starting value {reference:.3g},")
    lr, wd, adaptive = settings()
    setting = f"lr={lr:g}" + (f", weight decay {wd:g}" if wd else "")
    if wd and not adaptive and lr * wd >= 1:   # SGD: each step scales w by 1 - lr*wd
        cause = (f"the weight decay is too large: lr x weight decay = {lr * wd:.3g} >= 1 makes every step "
                 f"overshoot; try a smaller weight decay")
    else:
        cause = "the learning rate is likely too large; try a smaller one"
    return DivergenceError(f"training loss {what} at epoch {epoch}, batch {step} ({setting}): {cause}")


class History(dict):
    """Per-epoch lists: ``epoch``, ``loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``, ``seconds``.

    ``loss`` and ``train_acc`` are running averages over the epoch's mini-batches (measured while the
    weights were changing); ``val_*`` are measured after the epoch; ``seconds`` is training time only.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    KEYS = ("epoch", "loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")

    def __init__(self):
        super().__init__({k: [] for k in self.KEYS})
        #: the loss divergence is measured against: the run's first batch's loss (at least log(classes)),
        #: set by :func:`train_loop`; a checkpoint stores it, so a resumed run measures as the whole run would
        self.start_loss = None

    def row(self, i: int) -> str:
        val = (f"  val loss {self['val_loss'][i]:.4f}  val acc {self['val_acc'][i]:.2%}"
               if self["val_acc"][i] is not None else "")
        return (f"epoch {self['epoch'][i]:>2}  loss {self['loss'][i]:.4f}  train acc {self['train_acc'][i]:.2%}"
                f"{val}  lr {self['lr'][i]:.4g}  {self['seconds'][i]:.1f}s")

    def __str__(self) -> str:
        return "\n".join(self.row(i) for i in range(len(self["epoch"])))

    def save(self, path) -> Path:
        """Write the per-epoch lists to ``path`` as JSON (``null`` where there was no validation set),
        atomically: a temporary file is renamed into place. Returns the path."""
        def write(f):                                           # one line per list: easy to diff
            f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(self[k])}" for k in self.KEYS) + "\n}\n")
        return atomic_write(path, ".json", write, mode="w")

    @classmethod
    def from_dict(cls, data, where) -> "History":
        """A history from the lists of a parsed JSON object, checked: a ``ValueError`` starting with
        ``where`` (a file's name) unless every key holds a list, all of one length, of integer epochs and
        finite numbers (``None`` allowed in ``val_*``, for epochs without a validation set)."""
        if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in cls.KEYS):
            missing = [k for k in cls.KEYS if not isinstance(data, dict) or k not in data]
            raise ValueError(f"{where} is not a training history: "
                             + (f"missing {missing}" if missing else f"not every one of {list(cls.KEYS)} is a list"))
        lengths = {k: len(data[k]) for k in cls.KEYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{where}: per-epoch lists of different lengths {lengths}")
        if not all(isinstance(e, int) and not isinstance(e, bool) for e in data["epoch"]):
            raise ValueError(f"{where}: the history's 'epoch' holds something other than integers")
        for key in cls.KEYS[1:]:
            optional = key.startswith("val_")
            if not all((optional and v is None) or finite_number(v) for v in data[key]):
                raise ValueError(f"{where}: the history's {key!r} holds something other than finite numbers")
        history = cls()
        for k in cls.KEYS:
            history[k].extend(data[k])
        return history

    @classmethod
    def load(cls, path) -> "History":
        """Read a history written by :meth:`save`, through the bounded JSON reader (a regular file of at
        most ``lenet_core._files.MAX_JSON_BYTES``); a file that is not one, or not a history
        (:meth:`from_dict`), raises ``ValueError`` naming it."""
        return cls.from_dict(read_json(path), path)


def finite_number(value) -> bool:
    """A real number that is finite (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_data(x, y, what: str) -> None:
    """``ValueError`` naming ``what`` unless ``x`` holds images and ``y`` one integer label per image.

    ``x``: prepared images (N, C, H, W), finite; or raw MNIST digits (N, 28, 28) uint8, which
    :func:`fit`, :func:`evaluate` and :func:`predict` prepare batch by batch (:func:`lenet_core.data.prepare`).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    if not (x.ndim == 4 or (x.ndim == 3 and x.dtype == np.uint8)):
        raise ValueError(f"{what} images must have shape (N, C, H, W) (or uint8 digits (N, 28, 28)), "
                         f"got shape {x.shape} and dtype {x.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{what}: {x.shape[0]} images but labels of shape {y.shape}")
    if x.ndim == 4 and not np.all(np.isfinite(x)):
        raise ValueError(f"{what} images contain NaN or infinite values")


def train_loop(forward, update, x, y, *, epochs: int, batch_size: int, dtype, optimizer_settings,
               scheduler=None, validate=None, augment: int = 0, seed=0, quiet: bool = False,
               progress: bool = True, history=None, on_epoch_end=None, on_epoch_start=None,
               transform=None) -> History:
    """The one training loop of both engines (:func:`fit`, :func:`lenet_core.twin.fit_torch`). Chapter 6.

    Per batch: the indices come from :func:`lenet_core.data.batches`, the images from :func:`gather`
    (``dtype``) and :func:`random_shift` (``augment`` pixels) or ``transform(xb, rng)``, all drawn from one
    ``np.random.default_rng(seed)`` (a Generator is used as is); ``forward(xb, yb) -> (loss, correct,
    classes)``; the loss is checked for divergence; ``update()`` runs backward and the optimizer step.
    Per epoch: ``on_epoch_start(epoch)`` first (the 1998 trainer re-estimates its curvature there),
    then the batches, ``scheduler.step()``, ``validate() -> (loss, acc)``, a row of the :class:`History`,
    ``on_epoch_end(epoch, history)`` (where a checkpoint is written), and only then the epoch's line.
    ``optimizer_settings() -> (lr, weight_decay, adaptive)`` reads the optimizer. ``history`` (epochs already done) is continued up to ``epochs``.
    Raises :class:`DivergenceError` (a ``FloatingPointError``) naming the likely cause as soon as a batch's
    loss is not finite or exceeds :data:`DIVERGENCE_FACTOR` times its starting value.
    """
    rng = np.random.default_rng(seed)                  # a Generator is used as is
    history = History() if history is None else history
    done = len(history["epoch"])
    reference = history.start_loss                      # the run's starting loss, for divergence
    steps = math.ceil(len(x) / batch_size)
    for epoch in range(done + 1, epochs + 1):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        lr = optimizer_settings()[0]
        start = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        bar = None
        if progress and not quiet:
            from tqdm.auto import tqdm
            bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False)
        for step, idx in enumerate(batches(len(x), batch_size, rng=rng), 1):
            xb = random_shift(gather(x, idx, dtype), augment, rng)
            if transform is not None:
                xb = transform(xb, rng)
            loss, right, classes = forward(xb, y[idx])
            if reference is None:
                reference = max(loss, math.log(classes)) if math.isfinite(loss) else math.inf
                history.start_loss = reference
            diverged = _divergence(loss, reference, epoch, step, optimizer_settings)
            if diverged is not None:
                raise diverged
            update()
            total_loss += loss * len(idx)
            correct += right
            seen += len(idx)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        if scheduler is not None:
            scheduler.step()
        val_loss, val_acc = validate() if validate is not None else (None, None)
        for key, value in zip(History.KEYS, (epoch, total_loss / seen, correct / seen, val_loss, val_acc,
                                             lr, seconds)):
            history[key].append(value)
        if on_epoch_end is not None:                  # the checkpoint first: printing can fail
            on_epoch_end(epoch, history)
        if not quiet:
            print(history.row(epoch - 1), flush=True)
    return history


def fit(model, x, y, *, epochs=10, batch_size=None, optimizer=None, scheduler=None, loss_fn=None,
        validation=None, augment=0, seed=0, quiet=False, progress=True, history=None,
        on_epoch_end=None) -> History:
    """Train ``model`` in place on images ``x`` (N, C, H, W) and labels ``y`` (N,); return a :class:`History`.

    Chapter 6. ``x`` may also be raw uint8 digits (N, 28, 28), prepared batch by batch (:func:`gather`).
    Without an ``optimizer``, uses :data:`DEFAULT_RECIPE` (SGD with Nesterov momentum, weight decay
    and the recipe's schedule over ``epochs``). ``validation=(x_val, y_val)`` is evaluated after each epoch.
    ``augment=k`` shifts every training image by up to ``k`` pixels. ``seed`` fixes the batch order
    and the augmentation. ``quiet`` silences the per-epoch lines and the progress bar.
    Raises :class:`DivergenceError` (a ``FloatingPointError``) naming the likely cause as soon as a batch's
    loss is not finite or exceeds :data:`DIVERGENCE_FACTOR` times its starting value.
    The loop itself is :func:`train_loop`, shared with the PyTorch twin.

    Resuming (what a checkpoint needs, :mod:`lenet_core.checkpoint`): ``history`` (a :class:`History` of the
    epochs already done) is continued from epoch ``len(history["epoch"]) + 1`` up to ``epochs``; ``seed``
    may be a ``np.random.Generator`` (used as is, so a restored generator state continues the batch order).
    ``on_epoch_end(epoch, history)`` is called after every epoch, once its row is in the history.
    """
    check_data(x, y, "training")
    if validation is not None:
        check_data(*validation, "validation")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    batch_size = batch_size or DEFAULT_RECIPE["batch_size"]
    if optimizer is None:
        if scheduler is not None:
            raise ValueError("a scheduler needs the optimizer it drives: pass optimizer= as well")
        optimizer = make_optimizer(DEFAULT_RECIPE["optimizer"], model.parameters(), DEFAULT_RECIPE["lr"],
                                   weight_decay=DEFAULT_RECIPE["weight_decay"])
        scheduler = make_scheduler(DEFAULT_RECIPE["schedule"], optimizer, epochs)
    loss_fn = SoftmaxCrossEntropy() if loss_fn is None else loss_fn

    def forward(xb, yb):
        logits = net.forward(xb)
        return loss_fn.forward(logits, yb), int((logits.argmax(axis=1) == yb).sum()), logits.shape[1]

    def update():
        net.backward(loss_fn.backward())
        optimizer.step(model.gradients())

    def settings():
        return optimizer.lr, getattr(optimizer, "weight_decay", 0.0), hasattr(optimizer, "betas")

    def validate():
        return evaluate(model, *validation, loss_fn=loss_fn)

    # nobody reads d(loss)/d(image) while training; each batch runs as shards on the cores
    with input_grad(model, False), DataParallel(model) as net:
        return train_loop(forward, update, x, y, epochs=epochs, batch_size=batch_size, dtype=model.dtype,
                          optimizer_settings=settings, scheduler=scheduler,
                          validate=validate if validation is not None else None, augment=augment,
                          seed=seed, quiet=quiet, progress=progress, history=history,
                          on_epoch_end=on_epoch_end)


#: images per forward pass when evaluating: the convolutions' scratch buffers grow to the largest batch
#: they see and are kept, so 256 (not 1000) keeps a training run's memory low at the same speed
EVAL_BATCH = 256


def _logits(model, x, batch_size):
    dtype = model.dtype
    # forward passes only: two shards in turn, here (one BLAS thread); for forward passes alone a
    # worker process costs more than it saves on a few thousand images, and saves little on more
    # (benchmarks/bench_shards.py, "predictions")
    with no_grad(model), DataParallel(model, workers=0) as net:
        return np.concatenate([net.forward(gather(x, slice(i, i + batch_size), dtype))
                               for i in range(0, len(x), batch_size)])


def predict_proba(model, x, batch_size=EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, 10) for images (N, C, H, W), computed in batches.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    return softmax(_logits(model, x, batch_size))


def predict(model, x, batch_size=EVAL_BATCH) -> np.ndarray:
    """Predicted class labels (N,) for images (N, C, H, W).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    return _logits(model, x, batch_size).argmax(axis=1)


def evaluate(model, x, y, batch_size=EVAL_BATCH, loss_fn=None) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on images ``x`` (N, C, H, W) and labels ``y`` (N,).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    check_data(x, y, "evaluation")
    logits = _logits(model, x, batch_size)
    loss_fn = SoftmaxCrossEntropy() if loss_fn is None else loss_fn
    return loss_fn.forward(logits, y), float((logits.argmax(axis=1) == y).mean())
