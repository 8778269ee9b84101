"""Optimizers and learning-rate schedules, with PyTorch's update rules (chapter 6).

An optimizer holds the model's live parameter arrays and updates them in place::

    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss = loss_fn(model.forward(x), y); model.backward(loss_fn.backward())
    opt.step(model.gradients())

Schedules change ``opt.lr``; call ``scheduler.step()`` once per epoch, as in PyTorch.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "StepLR", "CosineAnnealingLR", "OPTIMIZERS", "SCHEDULES",
           "make_optimizer", "make_scheduler", "check_recipe_names"]


class Optimizer:
    """Base class of the optimizers: holds the live parameter arrays by name and updates them in place
    in :meth:`step` (a subclass writes ``_update``).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float):
        if not params:
            raise ValueError("the optimizer got no parameters")
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.params = dict(params)
        self.lr = float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.params}
        self.steps = 0

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """Update every parameter in place from ``grads`` (same names and shapes as the parameters)."""
        if grads.keys() != self.params.keys():
            raise ValueError(f"gradient names {sorted(grads)} do not match parameter names {sorted(self.params)}")
        self.steps += 1
        for name, p in self.params.items():
            g = grads[name]
            if g.shape != p.shape:
                raise ValueError(f"gradient {name!r} has shape {g.shape}, parameter has {p.shape}")
            self._update(p, g.astype(p.dtype, copy=False), self.state[name])

    def _update(self, p, g, state) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What changes while training, copied: ``{"lr", "steps", "state": {param: {buffer: array}}}``
        (a checkpoint saves it; :meth:`load_state_dict` restores it)."""
        return {"lr": self.lr, "steps": self.steps,
                "state": {name: {k: v.copy() for k, v in buffers.items()} for name, buffers in self.state.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; every parameter name and buffer shape is checked first
        (``ValueError`` naming the entry, the optimizer unchanged)."""
        buffers = state["state"]
        if buffers.keys() != self.params.keys():
            raise ValueError(f"optimizer state names {sorted(buffers)} do not match parameter names "
                             f"{sorted(self.params)}")
        for name, group in buffers.items():
            for key, value in group.items():
                if np.shape(value) != self.params[name].shape:
                    raise ValueError(f"optimizer state {name!r}/{key!r} has shape {np.shape(value)}, "
                                     f"parameter has {self.params[name].shape}")
        self.lr, self.steps = float(state["lr"]), int(state["steps"])
        self.state = {name: {k: np.array(v, dtype=self.params[name].dtype) for k, v in group.items()}
                      for name, group in buffers.items()}


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay.

    As ``torch.optim.SGD``: ``g += wd * p``; ``v = momentum * v + g`` (``v = g`` on the first step);
    the step is ``g + momentum * v`` with Nesterov, else ``v``; ``p -= lr * step``.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = state.get("velocity")
            if v is None:
                v = state["velocity"] = g.copy()
            else:
                v *= self.momentum
                v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, as ``torch.optim.Adam`` (L2 ``weight_decay``).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, p, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        if not state:
            state["m"], state["v"] = np.zeros_like(p), np.zeros_like(p)
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1 ** self.steps)
        v_hat = v / (1 - b2 ** self.steps)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class _Schedule:
    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self) -> float:
        """Advance one epoch and set the optimizer's learning rate; returns it."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"epoch", "base_lr"}``: with the optimizer's own state, enough to continue the schedule."""
        return {"epoch": self.epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.base_lr = int(state["epoch"]), float(state["base_lr"])


class StepLR(_Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineAnnealingLR(_Schedule):
    """Cosine decay from the base rate to ``eta_min`` over ``T_max`` epochs, as in PyTorch.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        t = min(epoch, self.T_max) / self.T_max
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t)) / 2


#: The one table of optimizer names (used by :func:`make_optimizer`, :func:`lenet_core.train.fit`, the
#: command line and :func:`lenet_core.twin.recipe_optimizer`): name -> (class name, fixed settings).
#: The class names are PyTorch's, so the twin looks up ``torch.optim.<class name>`` with the same settings.
OPTIMIZERS = {
    "sgd": ("SGD", {}),
    "momentum": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "adam": ("Adam", {}),
}

#: The one table of schedule names: name -> (class name, settings as a function of the number of
#: epochs), or ``None`` for a constant learning rate. ``torch.optim.lr_scheduler`` has the same classes.
SCHEDULES = {
    "cosine": ("CosineAnnealingLR", lambda epochs: {"T_max": epochs}),
    "step": ("StepLR", lambda epochs: {"step_size": max(1, epochs // 3), "gamma": 0.1}),
    "none": None,
}


def _lookup(table: dict, kind: str, name):
    if name not in table:
        choices = ", ".join(repr(k) for k in table)
        raise ValueError(f"unknown {kind} {name!r}; choose one of {choices}")
    return table[name]


def check_recipe_names(optimizer: str, schedule) -> None:
    """``ValueError`` naming the problem unless ``optimizer`` is in :data:`OPTIMIZERS` and ``schedule``
    in :data:`SCHEDULES` (or ``None``).

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    _lookup(OPTIMIZERS, "optimizer", optimizer)
    _lookup(SCHEDULES, "schedule", "none" if schedule is None else schedule)


def make_optimizer(name: str, params, lr: float, **kwargs) -> Optimizer:
    """An optimizer from :data:`OPTIMIZERS`: ``"sgd"``, ``"momentum"`` (SGD, momentum 0.9, Nesterov) or
    ``"adam"``; ``kwargs`` (e.g. ``weight_decay``) are passed on. Unknown names are an error. Chapter 6."""
    cls, fixed = _lookup(OPTIMIZERS, "optimizer", name)
    return globals()[cls](params, lr, **fixed, **kwargs)


def make_scheduler(name, optimizer: Optimizer, epochs: int):
    """A schedule from :data:`SCHEDULES`: ``"cosine"`` (to 0 over ``epochs``), ``"step"`` (x0.1 every
    ``max(1, epochs // 3)`` epochs) or ``"none"``/``None`` (returns ``None``); unknown names are an error.

    Explained in chapter 6 (book/ch06_training.ipynb).
    """
    entry = _lookup(SCHEDULES, "schedule", "none" if name is None else name)
    if entry is None:
        return None
    cls, settings = entry
    return globals()[cls](optimizer, **settings(epochs))
