"""LeNet-5 as LeCun, Bottou, Bengio and Haffner built it in 1998, part by part, with its training.

"Gradient-based learning applied to document recognition", Proc. IEEE 86(11), 1998 (Section II-B
describes LeNet-5, Appendix A the squashing function and the initialisation, Appendix C the
stochastic diagonal Levenberg-Marquardt method). Every part is a layer with ``forward`` and
``backward`` in the contract of :mod:`lenet_core.layers`, gradient-checked in float64:

- :class:`ScaledTanh`: the squashing function ``f(a) = A tanh(S a)``, ``A = 1.7159``, ``S = 2/3``;
- :class:`Subsampling2d`: S2 and S4, the sum of each 2x2 window times a trainable coefficient plus a
  trainable bias, one of each per map (the squashing function follows as its own layer);
- :class:`PartialConv2d`: C3, a convolution whose map ``j`` reads only the input maps of Table I
  (:data:`lenet_core.summary.C3_TABLE`): 1,516 trainable parameters instead of 2,416;
- :class:`RBFOutput`: ten Euclidean RBF units ``y_i = sum_j (x_j - w_ij)^2`` (eq. 7) with fixed
  +1/-1 codes drawn from 7x12 bitmaps of the digits (:data:`DIGIT_BITMAPS`: *our* drawing, not the
  paper's bitmaps, which are not printed in it);
- :class:`RBFLoss`: the discriminative loss of eq. 9, ``y_D + log(exp(-j) + sum_i exp(-y_i))``.

Then :func:`LeNet5_1998` (with switches that turn each part into its modern replacement, for the
ablation lab), the initialisation ``U(-2.4/F_i, 2.4/F_i)``, the paper's input scaling
(:func:`prepare_1998`), :class:`SDLM` (per-parameter steps ``eta / (mu + h_kk)`` from a Gauss-Newton
estimate of the diagonal Hessian, :func:`estimate_curvature`) with the paper's schedule
(:func:`sdlm_learning_rate`), random planar affine distortions (:func:`random_affine`) and the
training loop :func:`fit_1998`.

Where the paper does not say (the constant ``j``, the exact bitmaps, the distortion magnitudes, the
initialisation of biases), the choice is ours and is stated where it is made.
"""

from __future__ import annotations

import numpy as np

from . import functional as Fn
from .data import pad
from .layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, MaxPool2d, ReLU, Sigmoid, Tanh, _rng
from .losses import MSELoss, SoftmaxCrossEntropy, log_softmax
from .model import Sequential
from .optim import make_optimizer, make_scheduler
from .summary import C3_TABLE

__all__ = ["A", "S", "ScaledTanh", "Subsampling2d", "PartialConv2d", "RBFOutput", "RBFLoss",
           "DIGIT_BITMAPS", "rbf_codes", "LeNet5_1998", "MLP", "init_1998", "prepare_1998",
           "trainable_parameters", "SDLM", "sdlm_learning_rate", "SDLM_SCHEDULE", "estimate_curvature",
           "random_affine", "DISTORTION", "scores", "evaluate_1998", "fit_1998", "BACKGROUND", "FOREGROUND"]

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


# ----------------------------------------------------------------------------------------------
# Stochastic diagonal Levenberg-Marquardt (Appendix C)
# ----------------------------------------------------------------------------------------------

#: the paper's global learning rate per pass (Section III-C): (number of passes, eta); 1e-5 thereafter
SDLM_SCHEDULE = ((2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5))
SDLM_LAST_RATE = 1e-5


def sdlm_learning_rate(epoch: int) -> float:
    """eta for pass ``epoch`` (1-based): 0.0005 for 2 passes, 0.0002 for 3, 0.0001 for 3, 0.00005 for 4,
    then 0.00001."""
    if epoch < 1:
        raise ValueError(f"passes are counted from 1, got {epoch}")
    end = 0
    for passes, eta in SDLM_SCHEDULE:
        end += passes
        if epoch <= end:
            return eta
    return SDLM_LAST_RATE


class SDLM:
    """Stochastic diagonal Levenberg-Marquardt: ``w_k -= eta / (mu + h_kk) * g_k``.

    ``h_kk`` is an estimate of the diagonal of the Hessian of the per-sample loss (Gauss-Newton:
    second-derivative terms of the squashing functions dropped, so it is never negative), set by
    :meth:`set_curvature` from :func:`estimate_curvature` before every pass and kept fixed during
    the pass, as in the paper. ``mu`` (0.02) keeps the step bounded where the curvature is tiny.
    ``g`` is the gradient handed to :meth:`step`: :func:`fit_1998` passes the mini-batch's mean
    gradient of the per-sample loss (the paper updates after every single sample).
    """

    def __init__(self, params: dict, lr: float = 5e-4, mu: float = 0.02):
        if not params:
            raise ValueError("the optimizer got no parameters")
        self.params, self.lr, self.mu = dict(params), float(lr), float(mu)
        self.curvature = {k: np.zeros_like(p) for k, p in self.params.items()}
        self.steps = 0

    def set_curvature(self, h: dict) -> None:
        if h.keys() != self.params.keys():
            raise ValueError(f"curvature names {sorted(h)} do not match parameter names {sorted(self.params)}")
        self.curvature = {k: np.asarray(v, dtype=self.params[k].dtype) for k, v in h.items()}

    def step_sizes(self) -> dict:
        """The per-parameter learning rates ``eta / (mu + h_kk)``."""
        return {k: self.lr / (self.mu + h) for k, h in self.curvature.items()}

    def step(self, grads: dict) -> None:
        if grads.keys() != self.params.keys():
            raise ValueError(f"gradient names {sorted(grads)} do not match parameter names {sorted(self.params)}")
        self.steps += 1
        for k, p in self.params.items():
            p -= (self.lr / (self.mu + self.curvature[k]) * grads[k]).astype(p.dtype, copy=False)


def _gn_builtin(layer, x, y, d2out):
    """Gauss-Newton backward of lenet_core's own layers, from the layer's input x and output y."""
    if isinstance(layer, Conv2d):                               # PartialConv2d included (masked W)
        W = layer.params["W"] * getattr(layer, "mask", 1)
        cols = Fn.unfold(x, layer.kernel_size, layer.stride, layer.padding)
        d2x, hW, hb = Fn.conv2d_backward(d2out, cols * cols, x.shape, W * W, layer.stride, layer.padding)
        return d2x, {"W": hW * getattr(layer, "mask", 1), "b": hb}
    if isinstance(layer, Linear):
        W = layer.params["W"]
        return d2out @ (W * W), {"W": d2out.T @ (x * x), "b": d2out.sum(axis=0)}
    if isinstance(layer, Tanh):
        return d2out * (1 - y * y) ** 2, {}
    if isinstance(layer, Sigmoid):
        return d2out * (y * (1 - y)) ** 2, {}
    if isinstance(layer, ReLU):
        return d2out * (x > 0), {}
    if isinstance(layer, Flatten):
        return d2out.reshape(x.shape), {}
    if isinstance(layer, AvgPool2d):
        kh, kw = layer.kernel_size
        d2x = Fn.pool2d_backward(d2out, None, x.shape, layer.kernel_size, layer.stride, "avg")
        return d2x / (kh * kw), {}
    if isinstance(layer, MaxPool2d):
        _, argmax = Fn.pool2d(x, layer.kernel_size, layer.stride, "max")
        return Fn.pool2d_backward(d2out, argmax, x.shape, layer.kernel_size, layer.stride, "max"), {}
    raise TypeError(f"no Gauss-Newton backward for {layer!r}")


def _loss_curvature(loss_fn, out, labels):
    """Per-sample Gauss-Newton second derivative of the loss with respect to the model's output."""
    if isinstance(loss_fn, RBFLoss):
        return loss_fn.curvature(out, labels)
    if isinstance(loss_fn, SoftmaxCrossEntropy):
        p = np.exp(log_softmax(out))
        return p * (1 - p)
    if isinstance(loss_fn, MSELoss):                             # per-sample loss mean_k (o - t)^2
        return np.full_like(out, 2.0 / out.shape[1])
    raise TypeError(f"no curvature for loss {type(loss_fn).__name__}")


def estimate_curvature(model, x, labels, loss_fn, batch_size=100) -> dict:
    """Average over the samples ``x`` of the Gauss-Newton diagonal Hessian of the per-sample loss.

    For a unit with weighted sum ``a_i = sum_j w_ij x_j``: ``d2E/da_i^2 = f'(a_i)^2 * sum_k w_ki^2
    d2E/da_k^2`` backwards through the network, and for a (shared) weight
    ``h_kk = sum over its connections of d2E/da_i^2 x_j^2`` (Appendix C). It is the backward pass with
    squared weights, squared inputs and squared derivatives, started from the loss's own second
    derivative. Returns ``{parameter name: h}`` with the shapes of ``model.parameters()``.
    """
    names = list(model.layers)
    total = {k: np.zeros(p.shape, dtype=np.float64) for k, p in model.parameters().items()}
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].astype(model.dtype, copy=False)
        inputs, out = [], xb
        for layer in model:
            inputs.append(out)
            out = layer.forward(out)
        d2 = _loss_curvature(loss_fn, out, labels[start:start + batch_size]).astype(out.dtype)
        outputs = inputs[1:] + [out]
        for name, layer, x_in, y_out in reversed(list(zip(names, model, inputs, outputs))):
            if hasattr(layer, "gauss_newton"):
                d2, h = layer.gauss_newton(d2)
            else:
                d2, h = _gn_builtin(layer, x_in, y_out, d2)
            for pname, value in h.items():
                total[f"{name}.{pname}"] += value
    return {k: v / len(x) for k, v in total.items()}


# ----------------------------------------------------------------------------------------------
# Distortions (Section III-C): random planar affine transformations, vectorised
# ----------------------------------------------------------------------------------------------

#: our distortion ranges (the paper lists the kinds, not the magnitudes)
DISTORTION = {"shift": 2.0, "scale": 0.1, "squeeze": 0.1, "shear": 0.2}


def random_affine(x: np.ndarray, rng, *, shift=DISTORTION["shift"], scale=DISTORTION["scale"],
                  squeeze=DISTORTION["squeeze"], shear=DISTORTION["shear"]) -> np.ndarray:
    """A random planar affine distortion of every image (N, C, H, W), each its own, bilinear.

    Per image: a translation of up to ``shift`` pixels along each axis, a scaling by ``1 + U(-scale,
    scale)``, a squeezing (width times ``q``, height divided by ``q``, ``q = 1 + U(-squeeze,
    squeeze)``) and a horizontal shear ``x' = x + k y``, ``k ~ U(-shear, shear)``, about the image
    centre: the kinds of distortion the paper lists; the magnitudes (:data:`DISTORTION`) are our
    choice (the paper does not give them). Pixels that come from outside the image take the value
    of the image's corner pixel (the background). No loop over pixels or images.
    """
    n, c, h, w = x.shape
    rng = _rng(rng)
    s = 1 + rng.uniform(-scale, scale, n)
    q = 1 + rng.uniform(-squeeze, squeeze, n)
    k = rng.uniform(-shear, shear, n)
    t = rng.uniform(-shift, shift, (2, n))
    # forward map (col, row) -> [[s q, s q k], [0, s / q]] (col, row) + t about the centre; invert it
    a11, a12, a22 = s * q, s * q * k, s / q
    cy, cx = (h - 1) / 2, (w - 1) / 2
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    u = cols[None] - cx - t[0][:, None, None]                       # (N, H, W)
    v = rows[None] - cy - t[1][:, None, None]
    src_r = v / a22[:, None, None] + cy
    src_c = (u - a12[:, None, None] * (v / a22[:, None, None])) / a11[:, None, None] + cx
    # bilinear sampling from the image padded by one background pixel
    fill = x[:, :, :1, :1]
    padded = np.concatenate([np.broadcast_to(fill, (n, c, h + 2, 1)),
                             np.concatenate([np.broadcast_to(fill, (n, c, 1, w)), x,
                                             np.broadcast_to(fill, (n, c, 1, w))], axis=2),
                             np.broadcast_to(fill, (n, c, h + 2, 1))], axis=3)
    r = np.clip(src_r + 1, 0, h + 1)
    cc = np.clip(src_c + 1, 0, w + 1)
    r0 = np.minimum(np.floor(r).astype(np.intp), h)
    c0 = np.minimum(np.floor(cc).astype(np.intp), w)
    fr, fc = (r - r0)[:, None], (cc - c0)[:, None]
    flat = padded.reshape(n, c, -1)

    def at(rr, ccc):
        idx = (rr * (w + 2) + ccc).reshape(n, 1, -1)
        return np.take_along_axis(flat, np.broadcast_to(idx, (n, c, idx.shape[-1])), axis=2).reshape(n, c, h, w)

    out = ((1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c0 + 1))
           + fr * ((1 - fc) * at(r0 + 1, c0) + fc * at(r0 + 1, c0 + 1)))
    return out.astype(x.dtype, copy=False)


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
             progress=True, quiet=False, history=None, on_epoch_end=None):
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
    diverge in their first pass (``scripts/distortion_probe.py``, ``results/lenet1998_probe.json``).
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
    Resuming (``python -m lenet_core train --model lenet1998 --resume``): SDLM's state is re-made at the
    start of every pass (the rate from the schedule, the curvature from ``seed``'s stream), so the
    weights, ``seed`` as a ``np.random.Generator`` in the saved state and ``history`` (the passes done)
    continue a run bit-identically; ``on_epoch_end(epoch, history)`` is called after every pass.
    """
    from .train import train_loop
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
                      progress=progress, on_epoch_start=start_pass, history=history, on_epoch_end=on_epoch_end,
                      validate=(lambda: evaluate_1998(model, *validation, loss_fn))
                      if validation is not None else None)
