"""The PyTorch twin of :func:`lenet_core.lenet1998.LeNet5_1998`: the same function, weights copied both ways.

PyTorch has no layer for three of the 1998 parts, so they are written here in a few lines of torch
(autograd then provides the backward pass that our NumPy layers derive by hand):

- ``TorchScaledTanh``: ``1.7159 * tanh(2x/3)``;
- ``TorchSubsampling2d``: ``4 * avg_pool2d(x, 2) * coeff + bias``, per map;
- ``TorchPartialConv2d``: ``conv2d(x, weight * mask)`` with Table I as the mask;
- ``TorchRBFOutput``: ``sum_j (x_j - w_ij)^2`` with the fixed codes as a buffer;
- :func:`rbf_loss_torch`: eq. 9.

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
           "rbf_loss_torch", "to_torch_1998", "torch_name_1998"]


class TorchScaledTanh(nn.Module):
    def forward(self, x):
        return L.A * torch.tanh(L.S * x)


class TorchSubsampling2d(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.coeff = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        s = 4 * nn.functional.avg_pool2d(x, 2)
        return s * self.coeff[:, None, None] + self.bias[:, None, None]


class TorchPartialConv2d(nn.Conv2d):
    def __init__(self, table, kernel_size):
        table = np.asarray(table, dtype=bool)
        super().__init__(table.shape[0], table.shape[1], kernel_size)
        self.register_buffer("mask", torch.from_numpy(table.T[:, :, None, None].astype(np.float32)))

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias)


class TorchRBFOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("codes", torch.from_numpy(L.rbf_codes(np.float32)))

    def forward(self, x):
        w = self.codes.to(x.dtype)
        return ((x[:, None, :] - w[None]) ** 2).sum(dim=2)


def rbf_loss_torch(penalties: torch.Tensor, labels: torch.Tensor, j: float = 100.0) -> torch.Tensor:
    """Eq. 9: ``mean_n [ y[n, D_n] + log(exp(-j) + sum_i exp(-y[n, i])) ]``."""
    n = penalties.shape[0]
    z = torch.cat([-penalties, torch.full((n, 1), -j, dtype=penalties.dtype)], dim=1)
    return (penalties[torch.arange(n), labels] + torch.logsumexp(z, dim=1)).mean()


class TorchLeNet5_1998(nn.Module):
    """(N, 1, 32, 32) -> RBF penalties (N, 10) (or logits with ``output="linear"``), the same
    switches as :func:`lenet_core.lenet1998.LeNet5_1998`."""

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
    """``"C1.W"`` -> ``"net.C1.weight"``, ``"S2.b"`` -> ``"net.S2.bias"``, ``"S2.coeff"`` -> ``"net.S2.coeff"``."""
    layer, param = name.rsplit(".", 1)
    return f"net.{layer}.{ {'W': 'weight', 'b': 'bias'}.get(param, param) }"


def to_torch_1998(model: Sequential) -> TorchLeNet5_1998:
    """A :class:`TorchLeNet5_1998` with the same switches and a copy of ``model``'s weights, in its dtype."""
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
