"""The PyTorch twin of :func:`lenet_core.lenet1998.LeNet5_1998`: the same function, weights copied both ways.

PyTorch has no layer for three of the 1998 parts, so they are written here in a few lines of torch
(autograd then provides the backward pass that our NumPy layers derive by hand):

- ``TorchScaledTanh``: ``1.7159 * tanh(2x/3)``;
- ``TorchSubsampling2d``: ``4 * avg_pool2d(x, 2) * coeff + bias``, per map;
- ``TorchPartialConv2d``: ``conv2d(x, weight * mask)`` with Table I as the mask;
- ``TorchRBFOutput``: ``sum_j (x_j - w_ij)^2`` with the fixed codes as a buffer;
- :func:`rbf_loss_torch`: eq. 9.

:class:`StackedLeNet5_1998` holds K copies of the 1998 network (K seeds) as one computation:
grouped convolutions and a batched F6, so that per-pattern training pays PyTorch's per-step
overhead once for K models instead of K times.

Parameter names match the scratch ones with ``W -> weight``, ``b -> bias`` (``coeff`` stays).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import layers as L
from ..model import Sequential
from .tables import C3_TABLE

__all__ = ["TorchScaledTanh", "TorchSubsampling2d", "TorchPartialConv2d", "TorchRBFOutput", "TorchLeNet5_1998",
           "StackedLeNet5_1998", "rbf_loss_torch", "to_torch_1998", "torch_name_1998"]


class TorchScaledTanh(nn.Module):
    """``A tanh(S x)`` in PyTorch (:class:`lenet_core.lenet1998.ScaledTanh`).

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def forward(self, x):
        return L.A * torch.tanh(L.S * x)


class TorchSubsampling2d(nn.Module):
    """S2/S4 in PyTorch: 2x2 window sums times a coefficient plus a bias, per map
    (:class:`lenet_core.lenet1998.Subsampling2d`).

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def __init__(self, channels):
        super().__init__()
        self.coeff = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        s = 4 * nn.functional.avg_pool2d(x, 2)
        return s * self.coeff[:, None, None] + self.bias[:, None, None]


class TorchPartialConv2d(nn.Conv2d):
    """C3 in PyTorch: a convolution with Table I's connections (:class:`lenet_core.lenet1998.PartialConv2d`).

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def __init__(self, table, kernel_size):
        table = np.asarray(table, dtype=bool)
        super().__init__(table.shape[0], table.shape[1], kernel_size)
        self.register_buffer("mask", torch.from_numpy(table.T[:, :, None, None].astype(np.float32)))

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias)


class TorchRBFOutput(nn.Module):
    """The RBF output units in PyTorch (:class:`lenet_core.lenet1998.RBFOutput`).

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("codes", torch.from_numpy(L.rbf_codes(np.float32)))

    def forward(self, x):
        w = self.codes.to(x.dtype)
        return ((x[:, None, :] - w[None]) ** 2).sum(dim=2)


def rbf_loss_torch(penalties: torch.Tensor, labels: torch.Tensor, j: float = 100.0,
                   reduction: str = "mean") -> torch.Tensor:
    """Eq. 9: ``mean_n [ y[n, D_n] + log(exp(-j) + sum_i exp(-y[n, i])) ]``; the (N,) per-sample
    losses with ``reduction="none"``.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    n = penalties.shape[0]
    z = torch.cat([-penalties, torch.full((n, 1), -j, dtype=penalties.dtype)], dim=1)
    losses = penalties[torch.arange(n), labels] + torch.logsumexp(z, dim=1)
    if reduction == "none":
        return losses
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return losses.mean()


class TorchLeNet5_1998(nn.Module):
    """(N, 1, 32, 32) -> RBF penalties (N, 10) (or logits with ``output="linear"``), the same
    switches as :func:`lenet_core.lenet1998.LeNet5_1998`.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def __init__(self, *, output="rbf", activation="scaled_tanh", c3="partial", pooling="trainable",
                 init="1998"):
        super().__init__()
        act = {"scaled_tanh": TorchScaledTanh, "tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        pool = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}.get(pooling)
        layers = [("C1", nn.Conv2d(1, 6, 5)), ("C1_act", act())]

        def sub(name, channels):
            if pooling == "trainable":
                return [(name, TorchSubsampling2d(channels)), (f"{name}_act", act())]
            return [(name, pool(2))]

        layers += sub("S2", 6)
        layers += [("C3", TorchPartialConv2d(C3_TABLE, 5) if c3 == "partial" else nn.Conv2d(6, 16, 5)),
                   ("C3_act", act())]
        layers += sub("S4", 16)
        layers += [("C5", nn.Conv2d(16, 120, 5)), ("C5_act", act()), ("flatten", nn.Flatten()),
                   ("F6", nn.Linear(120, 84)), ("F6_act", act()),
                   ("OUT", TorchRBFOutput() if output == "rbf" else nn.Linear(84, 10))]
        self.net = nn.Sequential()
        for name, layer in layers:
            self.net.add_module(name, layer)

    def forward(self, x):
        return self.net(x)


def torch_name_1998(name: str) -> str:
    """``"C1.W"`` -> ``"net.C1.weight"``, ``"S2.b"`` -> ``"net.S2.bias"``, ``"S2.coeff"`` -> ``"net.S2.coeff"``.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    layer, param = name.rsplit(".", 1)
    return f"net.{layer}.{ {'W': 'weight', 'b': 'bias'}.get(param, param) }"


def to_torch_1998(model: Sequential) -> TorchLeNet5_1998:
    """A :class:`TorchLeNet5_1998` with the same switches and a copy of ``model``'s weights, in its dtype.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """
    dtype = {np.dtype(np.float64): torch.float64}.get(model.dtype, torch.float32)
    module = TorchLeNet5_1998(**getattr(model, "config", {})).to(dtype)
    torch_params = dict(module.named_parameters())
    params = {torch_name_1998(k): v for k, v in model.parameters().items()}
    if params.keys() != torch_params.keys():
        raise ValueError(f"parameters {sorted(params)} do not match the twin's {sorted(torch_params)}")
    with torch.no_grad():
        for name, p in torch_params.items():
            p.copy_(torch.from_numpy(np.ascontiguousarray(params[name])))
    return module


class StackedLeNet5_1998:
    """K LeNet-5s of 1998 (the paper's network, default switches) evaluated as one computation.

    ``params[name]`` is a (K, *shape) tensor per twin parameter name (``"net.C1.weight"``: (K, 6,
    1, 5, 5)), stacked from ``models`` (K :func:`lenet_core.lenet1998.LeNet5_1998`, one per seed).
    :meth:`forward` maps (K, B, 1, 32, 32), model k's own B images, to (K, B, 10) RBF penalties:
    C1, C3 and C5 are grouped convolutions (``groups=K``) over the K models' maps side by side, F6
    a batched matrix product. The same functions as :class:`TorchLeNet5_1998` (checked to 1e-6 by
    tests/test_lenet1998_twin.py); model k's gradient is that of its own loss, as the K losses share no
    parameter.

    Explained in chapter 11 (book/ch11_lenet1998.ipynb).
    """

    def __init__(self, models):
        models = list(models)
        paper = dict(output="rbf", activation="scaled_tanh", c3="partial", pooling="trainable")
        if not models or any({k: getattr(m, "config", {}).get(k) for k in paper} != paper
                             for m in models):
            raise ValueError("StackedLeNet5_1998 takes one or more LeNet5_1998 models with the "
                             "paper's switches (rbf, scaled_tanh, partial C3, trainable pooling)")
        nets = [to_torch_1998(m) for m in models]
        self.k = len(nets)
        self.names = [n for n, _ in nets[0].named_parameters()]
        self.params = {n: torch.stack([dict(net.named_parameters())[n].detach() for net in nets])
                       .clone().requires_grad_(True) for n in self.names}
        self.mask = nets[0].net.C3.mask
        self.codes = nets[0].net.OUT.codes

    def _conv(self, h, layer, weight=None):
        w = self.params[f"net.{layer}.weight"] if weight is None else weight
        return nn.functional.conv2d(h, w.flatten(0, 1), self.params[f"net.{layer}.bias"].flatten(),
                                    groups=self.k)

    def _sub(self, h, layer):
        c = self.params[f"net.{layer}.coeff"].flatten()[:, None, None]
        b = self.params[f"net.{layer}.bias"].flatten()[:, None, None]
        return 4 * nn.functional.avg_pool2d(h, 2) * c + b

    def forward(self, x):
        """(K, B, 1, 32, 32) -> (K, B, 10) penalties."""
        k, b = x.shape[:2]
        if k != self.k:
            raise ValueError(f"input holds images for {k} models, the stack has {self.k}")
        f = TorchScaledTanh()
        h = x.transpose(0, 1).reshape(b, k, *x.shape[-2:])           # (B, K, 32, 32)
        h = f(self._conv(h, "C1"))
        h = f(self._sub(h, "S2"))
        h = f(self._conv(h, "C3", self.params["net.C3.weight"] * self.mask))
        h = f(self._sub(h, "S4"))
        h = f(self._conv(h, "C5")).reshape(b, k, -1).transpose(0, 1)  # (K, B, 120)
        w, bias = self.params["net.F6.weight"], self.params["net.F6.bias"]
        h = f(torch.baddbmm(bias[:, None, :], h, w.transpose(1, 2)))  # (K, B, 84)
        return ((h[:, :, None, :] - self.codes.to(h.dtype)) ** 2).sum(dim=3)

    def to_numpy(self, index: int, model: Sequential) -> Sequential:
        """Copy model ``index``'s weights into the NumPy ``model`` (in place); return it."""
        for name, p in model.parameters().items():
            p[...] = self.params[torch_name_1998(name)][index].detach().numpy()
        return model
