"""LeNet-5 as LeCun, Bottou, Bengio and Haffner built it in 1998, part by part (chapter 11).

"Gradient-based learning applied to document recognition", Proc. IEEE 86(11), 1998 (Section II-B
describes LeNet-5, Appendix A the squashing function and the initialisation, Appendix C the
stochastic diagonal Levenberg-Marquardt method). Every part is a layer with ``forward`` and
``backward`` in the contract of :mod:`lenet_core.layers`, gradient-checked in float64:

- :class:`ScaledTanh`: the squashing function ``f(a) = A tanh(S a)``, ``A = 1.7159``, ``S = 2/3``;
- :class:`Subsampling2d`: S2 and S4, the sum of each 2x2 window times a trainable coefficient plus a
  trainable bias, one of each per map (the squashing function follows as its own layer);
- :class:`PartialConv2d`: C3, a convolution whose map ``j`` reads only the input maps of Table I
  (:data:`lenet_core.lenet1998.tables.C3_TABLE`): 1,516 trainable parameters instead of 2,416;
- :class:`RBFOutput`: ten Euclidean RBF units ``y_i = sum_j (x_j - w_ij)^2`` (eq. 7) with fixed
  +1/-1 codes drawn from 7x12 bitmaps of the digits (:data:`DIGIT_BITMAPS`: *our* drawing, not the
  paper's bitmaps, which are not printed in it);
- :class:`RBFLoss`: the discriminative loss of eq. 9, ``y_D + log(exp(-j) + sum_i exp(-y_i))``.

Then :func:`LeNet5_1998` (with switches that turn each part into its modern replacement, for the
ablation lab), the initialisation ``U(-2.4/F_i, 2.4/F_i)``, the paper's input scaling
(:func:`prepare_1998`). The training is in the sibling modules: :class:`~.sdlm.SDLM` (per-parameter
steps ``eta / (mu + h_kk)`` from a Gauss-Newton estimate of the diagonal Hessian,
:func:`~.sdlm.estimate_curvature`) with the paper's schedule, random planar affine distortions
(:func:`~.distortions.random_affine`) and the training loop :func:`~.fit.fit_1998`.

Where the paper does not say (the constant ``j``, the exact bitmaps, the distortion magnitudes, the
initialisation of biases), the choice is ours and is stated where it is made.
"""

from __future__ import annotations

import numpy as np

from ..data import pad
from ..layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Tanh, _rng
from ..losses import log_softmax
from ..model import Sequential
from .tables import C3_TABLE

__all__ = ["A", "S", "ScaledTanh", "Subsampling2d", "PartialConv2d", "RBFOutput", "RBFLoss",
           "DIGIT_BITMAPS", "rbf_codes", "LeNet5_1998", "MLP", "init_1998", "prepare_1998",
           "trainable_parameters", "scores", "BACKGROUND", "FOREGROUND"]

#: amplitude and slope of the paper's squashing function f(a) = A tanh(S a) (Appendix A)
A, S = 1.7159, 2.0 / 3.0

#: the paper's input levels: white background -0.1, black ink 1.175 (mean about 0, variance about 1)
BACKGROUND, FOREGROUND = -0.1, 1.175


# ----------------------------------------------------------------------------------------------
# The layers
# ----------------------------------------------------------------------------------------------

class ScaledTanh(Layer):
    """``y = A tanh(S x)`` with ``A = 1.7159``, ``S = 2/3``; any shape.

    ``f(1) = 1`` and ``f(-1) = -1`` (the paper's choice: the targets +-1 sit where the second
    derivative is largest, before saturation), ``f'(0) = A S ~ 1.14``.
    Backward: ``f'(x) = A S (1 - tanh^2) = S (A - y^2 / A)``, from the cached output ``y``.
    """

    def forward(self, x):
        y = np.tanh(S * x)
        y *= A
        self.cache = {"y": y}
        return y

    def derivative(self):
        y = self.cache["y"]
        return S * (A - y * y / A)

    def backward(self, dout):
        return dout * self.derivative()

    def gauss_newton(self, d2out):
        return d2out * self.derivative() ** 2, {}


class Subsampling2d(Layer):
    """S2 and S4: ``y[n, c] = coeff[c] * (sum of the 2x2 window of x[n, c]) + b[c]``.

    x: (N, C, H, W) -> (N, C, H//2, W//2) (an odd last row or column is unused).
    Parameters: ``coeff`` (C,), ``b`` (C,): two per map, 12 for S2 and 32 for S4. The squashing
    function is a separate layer after it. Backward: ``dcoeff[c] = sum dout * s``,
    ``db[c] = sum dout``, and every pixel of a window receives ``coeff[c] * dout``.
    """

    def __init__(self, channels, *, rng=None, dtype=np.float32, init="1998"):
        super().__init__()
        self.channels = channels
        rng = _rng(rng)
        self.params = {"coeff": _uniform((channels,), 4, rng, dtype, init, coeff=True),
                       "b": _bias((channels,), 4, rng, dtype, init)}
        self._zero_grads()

    @staticmethod
    def window_sums(x):
        oh, ow = x.shape[2] // 2, x.shape[3] // 2
        x = x[:, :, :2 * oh, :2 * ow]
        return x[:, :, 0::2, 0::2] + x[:, :, 0::2, 1::2] + x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2]

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{self!r} expects input (N, {self.channels}, H, W), got shape {x.shape}")
        s = self.window_sums(x)
        self.cache = {"s": s, "x_shape": x.shape}
        return s * self.params["coeff"][:, None, None] + self.params["b"][:, None, None]

    def _spread(self, d, x_shape):
        """Send each (N, C, OH, OW) value to the 4 pixels of its window: (N, C, H, W)."""
        dx = np.zeros(x_shape, dtype=d.dtype)
        oh, ow = d.shape[2:]
        for p in range(2):
            for q in range(2):
                dx[:, :, p:2 * oh:2, q:2 * ow:2] = d
        return dx

    def backward(self, dout):
        s, x_shape = self.cache["s"], self.cache["x_shape"]
        self.grads["coeff"] = (dout * s).sum(axis=(0, 2, 3))
        self.grads["b"] = dout.sum(axis=(0, 2, 3))
        return self._spread(dout * self.params["coeff"][:, None, None], x_shape)

    def gauss_newton(self, d2out):
        s, x_shape = self.cache["s"], self.cache["x_shape"]
        h = {"coeff": (d2out * s * s).sum(axis=(0, 2, 3)), "b": d2out.sum(axis=(0, 2, 3))}
        return self._spread(d2out * self.params["coeff"][:, None, None] ** 2, x_shape), h

    def extra_repr(self):
        return f"{self.channels}, kernel_size=2, trainable coefficient and bias per map"


class PartialConv2d(Conv2d):
    """A convolution whose output map ``j`` reads only the input maps ``i`` with ``table[i, j]``.

    table: (in_channels, out_channels) booleans (C3 uses Table I, :data:`C3_TABLE`). ``W`` keeps
    PyTorch's full layout (out, in, kh, kw); the connections that the table leaves out are held at
    zero: the forward pass uses ``W * mask`` and the gradient of those entries is always zero, so no
    optimizer ever moves them. Trainable parameters: ``kh*kw*table.sum() + out`` (1,516 for C3),
    see :attr:`num_trainable`. Each map's weights start from ``U(-2.4/F, 2.4/F)`` with ``F`` its own
    fan-in (75, 100 or 150 for C3).
    """

    def __init__(self, table, kernel_size, *, rng=None, dtype=np.float32, init="1998"):
        table = np.asarray(table, dtype=bool)
        super().__init__(table.shape[0], table.shape[1], kernel_size, rng=rng, dtype=dtype)
        self.table = table
        self.mask = table.T[:, :, None, None].astype(dtype)                     # (out, in, 1, 1)
        kh, kw = self.kernel_size
        fan_in = table.sum(axis=0) * kh * kw                                    # (out,)
        _init_conv(self, fan_in, _rng(rng), init)
        self.params["W"] *= self.mask

    @property
    def num_trainable(self) -> int:
        kh, kw = self.kernel_size
        return int(kh * kw * self.table.sum() + self.out_channels)

    def astype(self, dtype):
        super().astype(dtype)
        self.mask = self.mask.astype(dtype)
        return self

    def forward(self, x):
        W = self.params["W"]
        self.params["W"] = W * self.mask
        try:
            return super().forward(x)
        finally:
            self.params["W"] = W

    def backward(self, dout):
        W = self.params["W"]
        self.params["W"] = W * self.mask
        try:
            dx = super().backward(dout)
        finally:
            self.params["W"] = W
        self.grads["W"] = self.grads["W"] * self.mask
        return dx

    def extra_repr(self):
        return f"{super().extra_repr()}, connections={int(self.table.sum())} of {self.table.size} (Table I)"


#: Our drawing of the ten digits on 7x12 bitmaps ('#' = +1, '.' = -1), row by row. The paper shows
#: that its codes are stylized 7x12 images of the characters but does not print them; these are ours.
DIGIT_BITMAPS = {
    0: ["..###..", ".#...#.", "#.....#", "#.....#", "#.....#", "#.....#",
        "#.....#", "#.....#", "#.....#", ".#...#.", "..###..", "......."],
    1: ["...#...", "..##...", ".#.#...", "...#...", "...#...", "...#...",
        "...#...", "...#...", "...#...", "...#...", ".#####.", "......."],
    2: [".####..", "#....#.", "......#", "......#", ".....#.", "....#..",
        "...#...", "..#....", ".#.....", "#......", "#######", "......."],
    3: [".#####.", "#.....#", "......#", "......#", "....##.", "..##...",
        "....##.", "......#", "......#", "#.....#", ".#####.", "......."],
    4: ["....#..", "...##..", "..#.#..", ".#..#..", "#...#..", "#...#..",
        "#######", "....#..", "....#..", "....#..", "....#..", "......."],
    5: ["#######", "#......", "#......", "#......", "#####..", ".....#.",
        "......#", "......#", "......#", "#....#.", ".####..", "......."],
    6: ["..####.", ".#.....", "#......", "#......", "#.###..", "##...#.",
        "#.....#", "#.....#", "#.....#", ".#...#.", "..###..", "......."],
    7: ["#######", "......#", ".....#.", ".....#.", "....#..", "....#..",
        "...#...", "...#...", "..#....", "..#....", "..#....", "......."],
    8: ["..###..", ".#...#.", "#.....#", ".#...#.", "..###..", ".#...#.",
        "#.....#", "#.....#", "#.....#", ".#...#.", "..###..", "......."],
    9: ["..###..", ".#...#.", "#.....#", "#.....#", "#.....#", ".#...##",
        "..###.#", "......#", "......#", ".....#.", ".####..", "......."],
}


def rbf_codes(dtype=np.float64) -> np.ndarray:
    """The ten fixed RBF parameter vectors, (10, 84): row ``i`` is digit ``i``'s 7x12 bitmap as +-1."""
    return np.array([[1.0 if ch == "#" else -1.0 for row in DIGIT_BITMAPS[d] for ch in row]
                     for d in range(10)], dtype=dtype)


class RBFOutput(Layer):
    """Euclidean RBF units (eq. 7): ``y[n, i] = sum_j (x[n, j] - w[i, j])^2``. x: (N, 84) -> y: (N, 10).

    ``y_i`` is a penalty: the squared distance between F6's output and class ``i``'s code; the
    prediction is the class with the smallest penalty. The codes ``w`` (10, 84), :func:`rbf_codes`,
    are fixed, so the layer has no trainable parameters (``params`` is empty); they live in
    ``self.codes``. Backward: ``dx[n, j] = 2 sum_i dout[n, i] (x[n, j] - w[i, j])``.
    """

    def __init__(self, codes=None, dtype=np.float32):
        super().__init__()
        self.codes = (rbf_codes() if codes is None else np.asarray(codes)).astype(dtype)

    def astype(self, dtype):
        super().astype(dtype)
        self.codes = self.codes.astype(dtype)
        return self

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.codes.shape[1]:
            raise ValueError(f"{self!r} expects input (N, {self.codes.shape[1]}), got shape {x.shape}")
        w = self.codes
        self.cache = {"x": x}
        return (x * x).sum(axis=1, keepdims=True) - 2 * x @ w.T + (w * w).sum(axis=1)

    def backward(self, dout):
        x = self.cache["x"]
        return 2 * (dout.sum(axis=1, keepdims=True) * x - dout @ self.codes)

    def gauss_newton(self, d2out):
        """Each ``y_i`` is quadratic in x with ``d2 y_i / dx_j^2 = 2``: d2x[n, j] = 2 sum_i d2out[n, i]."""
        x = self.cache["x"]
        return np.broadcast_to(2 * d2out.sum(axis=1, keepdims=True), x.shape).copy(), {}

    def extra_repr(self):
        return f"{self.codes.shape[1]} -> {self.codes.shape[0]}, fixed +-1 codes (7x12 bitmaps)"


class RBFLoss:
    """The paper's discriminative criterion (eq. 9) on RBF penalties y (N, 10), averaged over the batch::

        E = mean_n [ y[n, D_n] + log(exp(-j) + sum_i exp(-y[n, i])) ]

    The first term pulls the correct class's penalty down (alone, it is eq. 8, the maximum-likelihood
    criterion); the second pushes the other penalties up, but only while they are not much larger
    than ``j``: the ``exp(-j)`` term acts as a "rubbish class" so that penalties already far above
    ``j`` are left alone and the codes cannot all collapse together. The paper calls ``j`` a positive
    constant; ``j = 100`` is our choice: it lies above the penalties of the untrained network
    (about 84 = 84 units x 1), so the competition acts from the first update. With ``j = 10`` our
    network never left chance level: the first term alone drags F6's output towards the mean code.

    ``backward()`` returns ``(onehot - q) / N`` with ``q_i = exp(-y_i) / (exp(-j) + sum exp(-y))``;
    ``cache`` holds ``q`` and ``onehot`` (as every loss of :mod:`lenet_core.losses` does).
    :meth:`curvature` (for SDLM) is the per-sample Gauss-Newton second derivative with respect to y:
    1 for the correct class's penalty (the loss is linear in it), 0 for the competitive term.
    """

    def __init__(self, j: float = 100.0):
        self.j = float(j)

    def forward(self, penalties, labels) -> float:
        y = np.asarray(penalties)
        labels = np.asarray(labels)
        if y.ndim != 2 or labels.shape != (y.shape[0],):
            raise ValueError(f"RBFLoss needs penalties (N, K) and labels (N,), got {y.shape} and {labels.shape}")
        n = y.shape[0]
        # log(exp(-j) + sum exp(-y)) as a log-sum-exp over K+1 "scores": -y and -j
        z = np.concatenate([-y, np.full((n, 1), -self.j, dtype=y.dtype)], axis=1)
        log_q = log_softmax(z)
        onehot = np.zeros_like(y)
        onehot[np.arange(n), labels] = 1
        self.cache = {"q": np.exp(log_q[:, :-1]), "onehot": onehot}
        lse = (z[:, :1] - log_q[:, :1])[:, 0]                     # log sum exp(z), row by row
        return float(np.mean(y[np.arange(n), labels] + lse))

    __call__ = forward

    def backward(self):
        q, onehot = self.cache["q"], self.cache["onehot"]
        return (onehot - q) / q.shape[0]

    def curvature(self, penalties, labels):
        d2 = np.zeros_like(penalties)
        d2[np.arange(len(labels)), labels] = 1
        return d2


def scores(model_output, loss_fn) -> np.ndarray:
    """Scores whose argmax is the prediction: ``-y`` for RBF penalties, the output itself otherwise."""
    return -model_output if isinstance(loss_fn, RBFLoss) else model_output


# ----------------------------------------------------------------------------------------------
# Initialisation, input, the model
# ----------------------------------------------------------------------------------------------

def _bound(fan_in, init):
    if init == "1998":
        return 2.4 / np.asarray(fan_in, dtype=np.float64)
    if init == "lecun":
        return np.sqrt(3.0 / np.asarray(fan_in, dtype=np.float64))
    raise ValueError(f"unknown init {init!r}; choose '1998' or 'lecun'")


def _uniform(shape, fan_in, rng, dtype, init, coeff=False):
    """U(-b, b) with b = 2.4/F (1998) or sqrt(3/F) (LeCun); ``fan_in`` may vary along the first axis.

    A subsampling coefficient under 'lecun' starts at 1/4 (an average), since LeCun's uniform rule is
    for weights that are summed with others, not for a single multiplier."""
    if coeff and init == "lecun":
        return np.full(shape, 0.25, dtype=dtype)
    b = _bound(fan_in, init).reshape((-1,) + (1,) * (len(shape) - 1)) if np.ndim(fan_in) else _bound(fan_in, init)
    return (rng.uniform(-1, 1, size=shape) * b).astype(dtype)


def _bias(shape, fan_in, rng, dtype, init):
    """Biases: the paper's rule treats a bias as one more weight of the unit, so under '1998' it is drawn
    from the same U(-2.4/F, 2.4/F) (our reading); under 'lecun' biases start at zero, as in lenet_core."""
    if init == "lecun":
        return np.zeros(shape, dtype=dtype)
    return _uniform(shape, fan_in, rng, dtype, init)


def _init_conv(layer, fan_in, rng, init):
    dtype = layer.params["W"].dtype
    layer.params["W"] = _uniform(layer.params["W"].shape, fan_in, rng, dtype, init)
    layer.params["b"] = _bias(layer.params["b"].shape, fan_in, rng, dtype, init)


def init_1998(layer, rng, init="1998"):
    """Redraw a Conv2d's or Linear's weights and biases from U(-2.4/F, 2.4/F), F = the unit's fan-in."""
    W = layer.params["W"]
    fan_in = int(np.prod(W.shape[1:]))
    _init_conv(layer, fan_in, rng, init)
    return layer


def prepare_1998(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 digits (N, 28, 28) -> (N, 1, 32, 32) at the paper's levels: background -0.1, ink 1.175.

    Padded to 32x32 with background first, then pixel ``p`` in 0..255 becomes
    ``-0.1 + 1.275 p / 255`` (the paper: white -0.1, black 1.175, which makes the mean roughly 0 and
    the variance roughly 1).
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"expected digits of shape (N, 28, 28), got shape {images.shape}")
    x = pad(images).astype(dtype)
    x *= dtype((FOREGROUND - BACKGROUND) / 255)
    x += dtype(BACKGROUND)
    return x[:, None]


def _activation(name):
    try:
        return {"scaled_tanh": ScaledTanh, "tanh": Tanh, "relu": ReLU}[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose 'scaled_tanh', 'tanh' or 'relu'") from None


def LeNet5_1998(seed=0, dtype=np.float32, *, output="rbf", activation="scaled_tanh", c3="partial",
                pooling="trainable", init="1998") -> Sequential:
    """LeNet-5 as in LeCun et al. (1998): (N, 1, 32, 32) -> RBF penalties (N, 10); 60,000 trainable parameters.

    ====== ========================================= ============ ==========
    layer  operation                                 output       trainable
    ====== ========================================= ============ ==========
    C1     conv 6@5x5, then f                        6 x 28 x 28  156
    S2     2x2 sum x coeff + bias, then f            6 x 14 x 14  12
    C3     conv 16@5x5, Table I connections, then f  16 x 10 x 10 1,516
    S4     2x2 sum x coeff + bias, then f            16 x 5 x 5   32
    C5     conv 120@5x5, then f                      120 x 1 x 1  48,120
    F6     linear 84, then f                         84           10,164
    OUT    10 Euclidean RBF units, fixed codes       10           0
    ====== ========================================= ============ ==========

    ``f`` is :class:`ScaledTanh`; weights and biases start from ``U(-2.4/F, 2.4/F)``. Train it with
    :class:`RBFLoss` (:func:`fit_1998` does). The keyword switches replace one part at a time by its
    modern counterpart, for the ablation lab: ``output="linear"`` (dense 84 -> 10, 850 parameters, for
    softmax cross-entropy or MSE), ``activation="tanh"``/``"relu"``, ``c3="full"``,
    ``pooling="avg"``/``"max"`` (no parameters, no activation after it, as in :func:`LeNet5`),
    ``init="lecun"`` (``U(-sqrt(3/F), sqrt(3/F))``, zero biases).
    """
    rng = _rng(seed)
    if pooling not in ("trainable", "avg", "max"):
        raise ValueError(f"unknown pooling {pooling!r}; choose 'trainable', 'avg' or 'max'")
    if c3 not in ("partial", "full"):
        raise ValueError(f"unknown c3 {c3!r}; choose 'partial' or 'full'")
    if output not in ("rbf", "linear"):
        raise ValueError(f"unknown output {output!r}; choose 'rbf' or 'linear'")

    def conv(cin, cout):
        return init_1998(Conv2d(cin, cout, 5, rng=rng, dtype=dtype), rng, init)

    def sub(name, channels):
        if pooling == "trainable":
            return [(name, Subsampling2d(channels, rng=rng, dtype=dtype, init=init)),
                    (f"{name}_act", _activation(activation))]
        return [(name, (AvgPool2d if pooling == "avg" else MaxPool2d)(2))]

    c3_layer = (PartialConv2d(C3_TABLE, 5, rng=rng, dtype=dtype, init=init) if c3 == "partial"
                else conv(6, 16))
    layers = [("C1", conv(1, 6)), ("C1_act", _activation(activation)), *sub("S2", 6),
              ("C3", c3_layer), ("C3_act", _activation(activation)), *sub("S4", 16),
              ("C5", conv(16, 120)), ("C5_act", _activation(activation)), ("flatten", Flatten()),
              ("F6", init_1998(Linear(120, 84, rng=rng, dtype=dtype), rng, init)),
              ("F6_act", _activation(activation))]
    if output == "rbf":
        layers.append(("OUT", RBFOutput(dtype=dtype)))
    else:
        layers.append(("OUT", init_1998(Linear(84, 10, rng=rng, dtype=dtype), rng, init)))
    model = Sequential(*layers)
    model.config = dict(output=output, activation=activation, c3=c3, pooling=pooling, init=init)
    return model


def MLP(hidden=57, seed=0, dtype=np.float32, *, activation="tanh") -> Sequential:
    """A one-hidden-layer perceptron on the 32x32 input: 1024 -> ``hidden`` -> 10 (LeCun uniform).

    ``hidden=57`` gives 59,005 parameters, about LeNet-5's 60,000: the ablation lab's answer to "is it
    the convolutions, or just the parameters?".
    """
    rng = _rng(seed)
    return Sequential(("flatten", Flatten()), ("H", Linear(1024, hidden, rng=rng, dtype=dtype)),
                      ("H_act", _activation(activation)), ("OUT", Linear(hidden, 10, rng=rng, dtype=dtype)))


def trainable_parameters(model) -> int:
    """Trainable parameters: every parameter entry, minus the entries a partial table holds at zero."""
    total = 0
    for layer in model:
        n = sum(p.size for p in layer.params.values())
        if isinstance(layer, PartialConv2d):
            n = layer.num_trainable
        total += n
    return int(total)
