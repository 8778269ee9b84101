"""The seed paper's training pipeline, reproduced choice by choice.

The seed paper is A. Bhattarai and B. Rijal, "Construction and Analysis of LeNet 5 Model From
Strach on Mnist Dataset" (no year printed). Its Appendix B prints a NumPy script whose output
format matches its Fig. 9 ("TRAIN--> Correct: 54076 out of 60000 ... TEST--> Correct: 9027 out of
10000"). This module rebuilds that script with lenet_core's layers, so that each of its choices is
one named option of :class:`SeedConfig` and can be changed on its own (``experiments/seed_ladder.py``
removes them one at a time). What the printed script does:

- **data**: pixels divided by 255, then ``X_train -= np.mean(X_train)`` and
  ``X_test -= np.mean(X_test)``: one scalar each, the test set centred by *its own* mean
  (``test_centring="own"``);
- **model**: ``ThreeLayerNet(batch_size, 784, 300, 100, 10)``, an MLP with ReLU (``model="mlp"``),
  not its ``LeNet5`` class (``model="seed_lenet5"``: ReLU, max pooling, 28x28 input, ``FC(16*4*4,
  120)``, a softmax at the end of ``forward``);
- **init**: ``W ~ N(0, sqrt(2/D_in))`` and biases ``~ N(0, 1)``; for convolutions the fan-in is
  ``Cin`` alone, not ``Cin*F*F`` (``init="seed"``);
- **batches**: ``get_batch`` takes 64 *consecutive* images from a random start
  ``random.randint(1, N - batch_size)``, ``ITER = 2500`` times (about 2.7 epochs;
  ``sampling="window"``);
- **loss**: ``CrossEntropyLoss.get`` applies a softmax, then returns ``prob - onehot``, *summed*
  over the batch (not divided by N). On ``LeNet5``, whose ``forward`` already ends in a softmax, the
  softmax is applied twice and the first one's backward is skipped (``#dout =
  self.Softmax._backward(dout)``) (``softmax_output=True``);
- **optimizer**: ``SGDMomentum(lr=0.0001, momentum=0.80, reg=0.00003)``: ``v = rho v + (1 - rho) g``
  and ``p -= lr v + reg p`` (a damped momentum, and a weight decay not scaled by the learning rate);
- **conv backward** (``seed_lenet5`` only): ``Conv._backward`` computes ``dW`` and ``db`` in its
  loops and returns ``dX``, but never assigns ``self.W['grad']`` or ``self.b['grad']``: they keep
  the ``0`` they were built with, so ``SGDMomentum`` only shrinks the convolutions' weights by the
  factor ``1 - reg`` at every step (``conv_grads="discarded"``). Its ``dX`` pads ``dout`` by ``F``
  (not ``F - 1``) and turns the kernel by ``np.rot90(np.rot90(W))``, which rotates axes (0, 1), the
  *channel* axes, instead of the two kernel axes (``conv_backward="printed"``); see
  :func:`conv_input_grad_as_printed`. With the gradients discarded, that ``dX`` reaches no weight;
- **arithmetic**: float64 (NumPy's default for ``X_train/float(255)``; ``dtype="float64"``);
- **NaN**: nothing checks the loss; a run whose loss becomes NaN goes on to the end and its
  accuracy is the arg-max of NaN outputs (class 0 for every image) (``on_nan="carry"``).

The printed ``LeNet5`` cannot run under the printed script, for two reasons, each repaired by a
named option: the script passes images of shape (N, 784) (``load`` reshapes them to ``28*28``) and
``Conv._forward`` pads four axes, so ``np.pad`` raises (``input_shape="flat"``; ``"image"`` reshapes to
(N, 1, 28, 28)); and its ``MaxPool`` defines ``forward`` while ``LeNet5.forward`` calls
``pool1._forward``, an ``AttributeError`` (``maxpool="printed"``; ``"renamed"`` calls it). With both
repairs it runs with lenet_core's ``MaxPool2d``, whose forward and backward equal what the printed
``MaxPool`` computes for 2x2 windows of stride 2. Not reproduced: NumPy's global random state (we
seed a ``np.random.Generator``), and ``NLLLoss``'s ``500`` for a probability of exactly 0 (it changes
only the printed loss, never a gradient).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from . import functional
from .data import batches, normalize, pad
from .layers import Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, _rng, input_grad
from .losses import SoftmaxCrossEntropy, softmax
from .model import LeNet5, Sequential
from .optim import Optimizer, make_optimizer, make_scheduler
from .train import DEFAULT_RECIPE, predict

__all__ = ["SEED_PAPER", "SeedConfig", "SEED_AS_PRINTED", "ThreeLayerNet", "SeedLeNet5", "SeedSoftmax",
           "SeedConv2d", "SeedCrossEntropy", "SeedSGDMomentum", "seed_init", "window_batches",
           "conv_backward_as_printed", "conv_input_grad_as_printed", "preprocess", "build_model",
           "train_model", "accuracy", "run"]

#: what the seed paper's Fig. 9 prints for its scratch model
SEED_PAPER = {"train_correct": 54076, "train_total": 60000, "test_correct": 9027, "test_total": 10000,
              "train_acc": 54076 / 60000, "test_acc": 9027 / 10000}


@dataclass(frozen=True)
class SeedConfig:
    """One training pipeline; the defaults are the seed's Appendix B script as printed.

    model:          ``"mlp"`` (the seed's ``ThreeLayerNet`` 784-300-100-10, ReLU), ``"seed_lenet5"`` (the
                    seed's ``LeNet5`` class: ReLU, max pooling, 28x28) or ``"lenet5"`` (lenet_core's
                    :func:`~lenet_core.model.LeNet5`: tanh, average pooling, 32x32).
    init:           ``"seed"`` (``N(0, sqrt(2/fan_in))`` weights with the seed's fan-ins, ``N(0, 1)``
                    biases) or ``"lecun"`` (lenet_core's LeCun uniform weights, zero biases).
    softmax_output: ``seed_lenet5`` only: its forward ends in a softmax whose backward is skipped,
                    so the loss's softmax is a second one.
    conv_backward:  ``seed_lenet5`` only: ``"printed"`` or ``"true"`` input gradient of the convolutions.
    conv_grads:     ``seed_lenet5`` only: ``"discarded"`` (as printed: ``dW``, ``db`` never stored, the
                    convolutions change only by weight decay) or ``"stored"``.
    input_shape:    ``seed_lenet5`` only: ``"flat"`` (as printed: (N, 784); the model cannot run) or
                    ``"image"`` ((N, 1, 28, 28)).
    maxpool:        ``seed_lenet5`` only: ``"printed"`` (``_forward`` called, ``forward`` defined: the
                    model cannot run) or ``"renamed"``.
    dtype:          ``"float64"`` (as printed) or ``"float32"``.
    on_nan:         ``"carry"`` (as printed: training goes on, accuracy is read from NaN outputs) or
                    ``"stop"`` (the run stops at the first non-finite loss and reports no accuracy).
    preprocessing:  ``"seed"`` (/255, minus the scalar mean of the training pixels) or ``"book"``
                    (:func:`lenet_core.data.normalize`, and padding to 32x32 for ``"lenet5"``).
    test_centring:  ``"own"`` (every evaluated set but the training set centred by its own mean, as
                    printed) or ``"train"`` (by the training mean). Only with ``preprocessing="seed"``.
    sampling:       ``"window"`` (``steps`` batches of consecutive images from a random start) or
                    ``"shuffle"`` (``epochs`` passes over a shuffled training set).
    optimizer:      ``"seed"`` (:class:`SeedSGDMomentum` with ``lr``, ``momentum``, ``reg`` on gradients
                    summed over the batch) or ``"book"`` (:data:`lenet_core.train.DEFAULT_RECIPE`:
                    mean gradients, Nesterov momentum, cosine schedule over ``epochs``).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    model: str = "mlp"
    init: str = "seed"
    softmax_output: bool = True
    conv_backward: str = "printed"
    conv_grads: str = "discarded"
    input_shape: str = "flat"
    maxpool: str = "printed"
    dtype: str = "float64"
    on_nan: str = "carry"
    preprocessing: str = "seed"
    test_centring: str = "own"
    sampling: str = "window"
    steps: int = 2500
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "seed"
    lr: float = 1e-4
    momentum: float = 0.8
    reg: float = 3e-5

    def __post_init__(self):
        choices = {"model": ("mlp", "seed_lenet5", "lenet5"), "init": ("seed", "lecun"),
                   "conv_backward": ("printed", "true"), "conv_grads": ("discarded", "stored"),
                   "input_shape": ("flat", "image"), "maxpool": ("printed", "renamed"),
                   "dtype": ("float64", "float32"), "on_nan": ("carry", "stop"), "preprocessing": ("seed", "book"),
                   "test_centring": ("own", "train"), "sampling": ("window", "shuffle"),
                   "optimizer": ("seed", "book")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"SeedConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("steps", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SeedConfig.{name} must be at least 1, got {getattr(self, name)}")

    def replace(self, **changes) -> "SeedConfig":
        return dataclasses.replace(self, **changes)

    @property
    def outputs_probabilities(self) -> bool:
        return self.model == "seed_lenet5" and self.softmax_output

    def cannot_run(self) -> str | None:
        """Why the printed code could not run this pipeline (``None`` if it can)."""
        if self.model != "seed_lenet5":
            return None
        if self.input_shape == "flat":
            return ("LeNet5.forward gets the script's (N, 784) images; Conv._forward pads four axes of a "
                    "2-D array, so np.pad raises ValueError")
        if self.maxpool == "printed":
            return "LeNet5.forward calls pool1._forward, but MaxPool defines forward: AttributeError"
        return None


#: the Appendix B script as printed
SEED_AS_PRINTED = SeedConfig()


# ----------------------------------------------------------------------------------------------
# Layers, loss and optimizer where the seed's maths differs from lenet_core's
# ----------------------------------------------------------------------------------------------

class SeedSoftmax(Layer):
    """The softmax that ends the seed's ``LeNet5.forward``. (N, K) -> (N, K) probabilities.

    Its backward passes ``dout`` through unchanged, as the seed's ``LeNet5.backward`` does (its line
    ``#dout = self.Softmax._backward(dout)`` is commented out): the loss's gradient with respect to
    the probabilities is used as if it were the gradient with respect to the logits.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """

    def forward(self, x):
        return softmax(x)

    def backward(self, dout):
        return dout


def conv_input_grad_as_printed(dout, W, x_shape, dout_padding=None, rotate_axes=(0, 1)):
    """The input gradient of the seed's ``Conv._backward``, vectorised. dout (N, Cout, OH, OW) -> (N, Cin, H, W).

    As printed: ``W_rot = np.rot90(np.rot90(W))`` (axes (0, 1), the out/in channel axes) and
    ``dout_pad = np.pad(dout, F)``, then ``dX[n, ci, h, w] = sum(W_rot[:, ci] * dout_pad[n, :, h:h+F,
    w:w+F])`` for every input pixel. The true gradient needs ``dout_padding=F - 1`` and
    ``rotate_axes=(2, 3)`` (the kernel turned by 180 degrees); both arguments exist to show that.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    _, cin, h, w = x_shape
    f = W.shape[2]
    p = f if dout_padding is None else dout_padding
    w_rot = np.rot90(W, 2, axes=rotate_axes)                  # rot90 twice == a half turn
    dout_pad = np.pad(dout, ((0, 0), (0, 0), (p, p), (p, p)))
    # dX[n, ci] = sum_co correlate(dout_pad[n, co], w_rot[co, ci]): a convolution with in/out swapped
    kernel = np.ascontiguousarray(w_rot.transpose(1, 0, 2, 3))
    dx, _ = functional.conv2d(dout_pad, kernel, np.zeros(cin, dtype=kernel.dtype))
    return dx[:, :, :h, :w]


def conv_backward_as_printed(dout, x, W):
    """The seed's ``Conv._backward`` in its own loops (stride 1, no padding): ``(dX, dW, db)``.

    Slow; for small gradient checks and for testing :func:`conv_input_grad_as_printed`.
    ``dW`` and ``db`` are right; ``dX`` is what the printed code computes.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    n_img, cin, h, w = x.shape
    cout, _, f, _ = W.shape
    oh, ow = h - f + 1, w - f + 1
    w_rot = np.rot90(np.rot90(W))
    dx, dW = np.zeros(x.shape), np.zeros(W.shape)
    db = np.array([dout[:, co].sum() for co in range(cout)])
    for co in range(cout):
        for ci in range(cin):
            for p in range(f):
                for q in range(f):
                    dW[co, ci, p, q] = np.sum(x[:, ci, p:p + oh, q:q + ow] * dout[:, co])
    dout_pad = np.pad(dout, ((0, 0), (0, 0), (f, f), (f, f)))
    for n in range(n_img):
        for ci in range(cin):
            for i in range(h):
                for j in range(w):
                    dx[n, ci, i, j] = np.sum(w_rot[:, ci] * dout_pad[n, :, i:i + f, j:j + f])
    return dx, dW, db


class SeedConv2d(Conv2d):
    """lenet_core's ``Conv2d`` (stride 1, no padding) with the seed's backward pass.

    Forward equals the seed's ``Conv``. ``backward`` returns :func:`conv_input_grad_as_printed` with
    ``dout_padding`` (default ``F``, as printed) and ``rotate_axes`` (default (0, 1), as printed);
    ``input_grad="true"`` returns the true input gradient instead. ``keep_grads=False`` (as printed)
    leaves ``grads`` at zero: the printed loops compute ``dW`` and ``db`` and never store them, so
    they are not computed here at all; ``keep_grads=True`` stores them.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, dout_padding=None, rotate_axes=(0, 1),
                 input_grad="printed", keep_grads=False, rng=None, dtype=np.float32):
        super().__init__(in_channels, out_channels, kernel_size, rng=rng, dtype=dtype)
        if input_grad not in ("printed", "true"):
            raise ValueError(f"SeedConv2d: input_grad must be 'printed' or 'true', got {input_grad!r}")
        self.dout_padding, self.rotate_axes = dout_padding, tuple(rotate_axes)
        self.input_grad, self.keep_grads = input_grad, keep_grads

    def backward(self, dout):
        W, cache = self.params["W"], self.cache
        if self.input_grad == "true" and self.keep_grads:
            return super().backward(dout)
        if self.keep_grads:
            _, self.grads["W"], self.grads["b"] = self.gradients_of(dout, need_dx=False)
        if not self.need_input_grad:
            return None
        if self.input_grad == "true":
            return self.gradients_of(dout, need_dx=True)[0]
        return conv_input_grad_as_printed(dout, W, cache["x_shape"], self.dout_padding, self.rotate_axes)

    def extra_repr(self):
        p = "F" if self.dout_padding is None else self.dout_padding
        kept = "stored" if self.keep_grads else "discarded"
        grad = (f"dout padded by {p}, rot180 on axes {self.rotate_axes}" if self.input_grad == "printed"
                else "true input gradient")
        return super().extra_repr() + f", backward: {grad}, dW and db {kept}"


class SeedCrossEntropy(SoftmaxCrossEntropy):
    """The seed's ``CrossEntropyLoss``: softmax, mean NLL; backward ``softmax - onehot`` *summed* over
    the batch (lenet_core's :class:`SoftmaxCrossEntropy` divides by N). (N, K) -> scalar.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """

    def backward(self):
        return self.cache["p"] - self.cache["t"]


class SeedSGDMomentum(Optimizer):
    """The seed's ``SGDMomentum``: ``v = momentum v + (1 - momentum) g``; ``p -= lr v + reg p``.

    Unlike ``torch.optim.SGD`` (and :class:`lenet_core.optim.SGD`), the velocity is an average, not a
    sum (the step does not grow by ``1 / (1 - momentum)``), and the decay ``reg p`` is not multiplied
    by the learning rate: every step shrinks the weights by the factor ``1 - reg``.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """

    def __init__(self, params, lr=1e-4, momentum=0.8, reg=3e-5):
        super().__init__(params, lr)
        self.momentum, self.reg = momentum, reg

    def _update(self, p, g, state):
        v = state.get("velocity")
        if v is None:
            v = state["velocity"] = np.zeros_like(p)
        v *= self.momentum
        v += (1 - self.momentum) * g
        p -= self.lr * v + self.reg * p


# ----------------------------------------------------------------------------------------------
# Models and initialisation
# ----------------------------------------------------------------------------------------------

def seed_init(model: Sequential, rng) -> Sequential:
    """The seed's initialisation, in place: weights ``N(0, sqrt(2/fan_in))``, biases ``N(0, 1)``.

    ``fan_in`` is ``D_in`` for a linear layer and, as printed (``np.sqrt(2/Cin)``), ``Cin`` alone for a
    convolution (the kernel's ``F*F`` inputs per channel are not counted).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    rng = _rng(rng)
    for layer in model:
        if isinstance(layer, Linear):
            fan_in = layer.in_features
        elif isinstance(layer, Conv2d):
            fan_in = layer.in_channels
        else:
            continue
        W, b = layer.params["W"], layer.params["b"]
        W[...] = rng.normal(0.0, np.sqrt(2 / fan_in), W.shape)
        b[...] = rng.standard_normal(b.shape)
    return model


def ThreeLayerNet(seed=0, dtype=np.float32) -> Sequential:
    """The MLP the seed's script trains: (N, 1, 28, 28) -> flatten -> 300 -> ReLU -> 100 -> ReLU -> 10 logits.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    rng = _rng(seed)
    return Sequential(("flatten", Flatten()),
                      ("FC1", Linear(784, 300, rng=rng, dtype=dtype)), ("ReLU1", ReLU()),
                      ("FC2", Linear(300, 100, rng=rng, dtype=dtype)), ("ReLU2", ReLU()),
                      ("FC3", Linear(100, 10, rng=rng, dtype=dtype)))


def SeedLeNet5(seed=0, softmax_output=True, conv_backward="printed", conv_grads="discarded",
               dtype=np.float32) -> Sequential:
    """The seed's ``LeNet5`` class: (N, 1, 28, 28) -> conv 6@5x5 -> ReLU -> max 2x2 -> conv 16@5x5 -> ReLU
    -> max 2x2 -> 256 -> 120 -> ReLU -> 84 -> ReLU -> 10, then (``softmax_output``) a :class:`SeedSoftmax`.
    ``conv_backward="printed"`` gives both convolutions the printed input gradient;
    ``conv_grads="discarded"`` (as printed) never stores their ``dW`` and ``db``. With
    ``conv_backward="true"`` and ``conv_grads="stored"`` the convolutions are lenet_core's ``Conv2d``.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    rng = _rng(seed)

    def conv(cin, cout):
        if conv_backward == "true" and conv_grads == "stored":
            return Conv2d(cin, cout, 5, rng=rng, dtype=dtype)
        return SeedConv2d(cin, cout, 5, input_grad=conv_backward, keep_grads=conv_grads == "stored",
                          rng=rng, dtype=dtype)
    layers = [("conv1", conv(1, 6)), ("ReLU1", ReLU()), ("pool1", MaxPool2d(2)),
              ("conv2", conv(6, 16)), ("ReLU2", ReLU()), ("pool2", MaxPool2d(2)),
              ("flatten", Flatten()),
              ("FC1", Linear(16 * 4 * 4, 120, rng=rng, dtype=dtype)), ("ReLU3", ReLU()),
              ("FC2", Linear(120, 84, rng=rng, dtype=dtype)), ("ReLU4", ReLU()),
              ("FC3", Linear(84, 10, rng=rng, dtype=dtype))]
    if softmax_output:
        layers.append(("softmax", SeedSoftmax()))
    return Sequential(*layers)


def build_model(config: SeedConfig, seed=0) -> Sequential:
    """The model ``config`` asks for, initialised as it asks (weights drawn from ``seed``).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    dtype = np.dtype(config.dtype).type
    if config.model == "mlp":
        model = ThreeLayerNet(seed, dtype)
    elif config.model == "seed_lenet5":
        model = SeedLeNet5(seed, config.softmax_output, config.conv_backward, config.conv_grads, dtype)
    else:
        model = LeNet5(seed, dtype)
    if config.init == "seed":
        seed_init(model, np.random.default_rng([seed, 1]))
    return model


# ----------------------------------------------------------------------------------------------
# Data, training, evaluation
# ----------------------------------------------------------------------------------------------

def preprocess(config: SeedConfig, x_train, others=()):
    """uint8 digits (N, 28, 28) -> model inputs (N, 1, 28, 28) (32x32 for ``"lenet5"``) of ``config.dtype``.

    Returns ``(x_train, [each of others])``. With ``preprocessing="seed"``: ``x / 255`` minus the
    training set's scalar mean; ``others`` (held-out sets) minus their own mean
    (``test_centring="own"``, as printed) or the training mean (``"train"``). The printed script
    passes (N, 784) rows; the image axes are kept here, since every model but ``seed_lenet5``
    flattens them itself and ``seed_lenet5`` cannot run on rows (:meth:`SeedConfig.cannot_run`).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    dtype = np.dtype(config.dtype).type
    if config.preprocessing == "book":
        prep = (lambda a: normalize(pad(a), dtype=dtype)) if config.model == "lenet5" else (
            lambda a: normalize(a, dtype=dtype))
        return prep(x_train)[:, None], [prep(o)[:, None] for o in others]
    if config.model == "lenet5":
        scale = (lambda a: pad(a).astype(dtype) / 255)
    else:
        scale = (lambda a: a.astype(dtype) / 255)
    train = scale(x_train)
    train_mean = train.mean(dtype=np.float64)
    held = [scale(o) for o in others]
    held = [h - dtype(h.mean(dtype=np.float64) if config.test_centring == "own" else train_mean)
            for h in held]
    return (train - dtype(train_mean))[:, None], [h[:, None] for h in held]


def window_batches(n: int, batch_size: int, steps: int, rng):
    """The seed's ``get_batch``: ``steps`` slices of ``batch_size`` consecutive indices starting at
    ``randint(1, n - batch_size)`` (both ends included, so image 0 is never drawn).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    if n <= batch_size:
        raise ValueError(f"window batches need more than batch_size={batch_size} images, got {n}")
    rng = _rng(rng)
    for _ in range(steps):
        start = int(rng.integers(1, n - batch_size + 1))
        yield slice(start, start + batch_size)


def _optimizer(config: SeedConfig, model):
    if config.optimizer == "seed":
        return SeedSGDMomentum(model.parameters(), config.lr, config.momentum, config.reg), None, SeedCrossEntropy()
    opt = make_optimizer(DEFAULT_RECIPE["optimizer"], model.parameters(), DEFAULT_RECIPE["lr"],
                         weight_decay=DEFAULT_RECIPE["weight_decay"])
    epochs = config.epochs if config.sampling == "shuffle" else 1
    return opt, make_scheduler(DEFAULT_RECIPE["schedule"], opt, epochs), SoftmaxCrossEntropy()


def _batch_plan(config: SeedConfig, n: int, seed):
    """The batches of a run, epoch by epoch: one list of ``steps`` windows, or ``epochs`` shuffled passes."""
    if config.sampling == "window":
        yield list(window_batches(n, config.batch_size, config.steps, [seed, 2]))
        return
    rng = np.random.default_rng([seed, 3])
    for _ in range(config.epochs):
        yield list(batches(n, config.batch_size, rng=rng))


def _outputs_all_nan(model) -> bool:
    """True when a parameter tensor of the last layer that has parameters is NaN throughout: every
    output is then NaN whatever the input, and every later update keeps it so."""
    last = [layer for layer in model if layer.params][-1]
    return any(np.isnan(p).all() for p in last.params.values())


def train_model(config: SeedConfig, model, x, y, seed=0, progress=True):
    """Train ``model`` in place on prepared ``x`` (N, 1, H, W) and labels ``y`` as ``config`` says.

    Returns ``(losses, info)``: the mini-batch losses and ``{"nan_step": first step whose loss was not
    finite or None, "steps": steps planned, "steps_skipped": ...}``. With ``on_nan="stop"`` raises
    ``FloatingPointError`` (naming the step and the learning rate) at the first non-finite loss.
    With ``on_nan="carry"`` (as printed) training goes on; once the last layer's parameters are all
    NaN the remaining steps cannot change any output, so they are counted in ``steps_skipped`` and
    not computed.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    optimizer, scheduler, loss_fn = _optimizer(config, model)
    plan = list(_batch_plan(config, len(x), seed))
    total = sum(len(epoch) for epoch in plan)
    info = {"nan_step": None, "steps": total, "steps_skipped": 0}
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="steps", leave=False)
    with input_grad(model, False):                 # nobody reads d(loss)/d(image) while training
        for epoch in plan:
            for idx in epoch:
                loss = loss_fn.forward(model.forward(x[idx]), y[idx])
                if not math.isfinite(loss) and info["nan_step"] is None:
                    info["nan_step"] = len(losses) + 1
                    if config.on_nan == "stop":
                        raise FloatingPointError(f"training loss became {loss} at step {len(losses) + 1} "
                                                 f"(lr={optimizer.lr:g})")
                model.backward(loss_fn.backward())
                optimizer.step(model.gradients())
                losses.append(loss)
                if bar is not None:
                    bar.update()
                if info["nan_step"] is not None and _outputs_all_nan(model):
                    info["steps_skipped"] = total - len(losses)
                    break
            if info["steps_skipped"]:
                break
            if scheduler is not None:
                scheduler.step()
    if bar is not None:
        bar.close()
    return losses, info


def accuracy(model, x, y) -> float:
    """Fraction of ``x`` (N, C, H, W) whose arg-max output is the label ``y`` (N,).

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    return float((predict(model, x) == y).mean())


def run(config: SeedConfig, x_train, y_train, held_out: dict, *, seed=0, train_accuracy=False,
        progress=True) -> dict:
    """Preprocess, build, train and evaluate one pipeline.

    ``x_train`` (N, 28, 28) uint8 and ``y_train`` (N,); ``held_out``: ``{name: (images, labels)}``,
    e.g. ``{"val": ..., "test": ...}``. Returns ``{"ran": True, "<name>_acc": ..., "train_acc": ... (if
    asked), "final_loss": mean of the last 100 finite batch losses (None if none), "nan_step": ...,
    "steps": ..., "steps_skipped": ..., "stopped": False}``. A pipeline the printed code could not run
    returns ``{"ran": False, "error": why}``; a run stopped by ``on_nan="stop"`` returns
    ``{"ran": True, "stopped": True, "nan_step": ..., "error": message}`` and no accuracies.

    Explained in chapter 7 (book/ch07_seed_paper.ipynb).
    """
    why = config.cannot_run()
    if why is not None:
        return {"ran": False, "stopped": False, "error": why}
    x, held = preprocess(config, x_train, [images for images, _ in held_out.values()])
    model = build_model(config, seed)
    try:
        with np.errstate(over="ignore", invalid="ignore"):         # NaN is carried or caught just below
            losses, info = train_model(config, model, x, y_train, seed=seed, progress=progress)
    except FloatingPointError as e:
        step = int(str(e).split(" at step ")[1].split()[0])
        return {"ran": True, "stopped": True, "nan_step": step, "error": str(e)}
    finite = [v for v in losses if math.isfinite(v)][-100:]
    result = {"ran": True, "stopped": False, "final_loss": float(np.mean(finite)) if finite else None, **info}
    with np.errstate(over="ignore", invalid="ignore"):             # NaN outputs rank as class 0, as printed
        if train_accuracy:
            result["train_acc"] = accuracy(model, x, y_train)
        for (name, (_, labels)), xh in zip(held_out.items(), held):
            result[f"{name}_acc"] = accuracy(model, xh, labels)
    return result
