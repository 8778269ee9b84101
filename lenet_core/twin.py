"""The PyTorch twin of :func:`lenet_core.model.LeNet5` (chapter 8): the same function, with weights copied
both ways, and trained with the same recipe.

``TorchLeNet5`` has the same layers, names and weight layouts as the scratch model (conv weights
``(out, in, kh, kw)``, linear weights ``(out, in)``), so copying is a one-to-one assignment:
scratch ``"C1.W"`` is torch ``"C1.weight"``, ``"C1.b"`` is ``"C1.bias"``.

:func:`fit_torch` trains the twin the way :func:`lenet_core.train.fit` trains the scratch model:
the recipe is read from :data:`lenet_core.train.DEFAULT_RECIPE` when it is called, the batches come
from the same seeded :func:`lenet_core.data.batches`, augmentation is the same
:func:`lenet_core.data.random_shift` drawn from the same generator, and it returns a
:class:`lenet_core.train.History`. :func:`recipe_optimizer` builds the optimizer and schedule of a
recipe for either side, so a comparison can hand both sides exactly the same settings.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import data
from . import optim as _optim
from . import train as _train
from .model import LeNet5, Sequential

__all__ = ["TorchLeNet5", "to_torch", "from_torch", "torch_name", "scratch_name",
           "resolve_recipe", "recipe_optimizer", "fit_torch", "evaluate_torch", "RECIPE_KEYS",
           "torch_optimizer_state", "load_torch_optimizer"]


class TorchLeNet5(nn.Module):
    """LeNet-5 in PyTorch: (N, 1, 32, 32) -> logits (N, 10); 61,706 parameters, as the scratch model."""

    def __init__(self):
        super().__init__()
        self.C1 = nn.Conv2d(1, 6, 5)
        self.S2 = nn.AvgPool2d(2)
        self.C3 = nn.Conv2d(6, 16, 5)
        self.S4 = nn.AvgPool2d(2)
        self.C5 = nn.Conv2d(16, 120, 5)
        self.F6 = nn.Linear(120, 84)
        self.OUT = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.S2(torch.tanh(self.C1(x)))
        x = self.S4(torch.tanh(self.C3(x)))
        x = torch.flatten(torch.tanh(self.C5(x)), 1)
        return self.OUT(torch.tanh(self.F6(x)))


def torch_name(name: str) -> str:
    """Scratch parameter name -> torch name: ``"C1.W"`` -> ``"C1.weight"``, ``"C1.b"`` -> ``"C1.bias"``."""
    layer, param = name.rsplit(".", 1)
    return f"{layer}.{ {'W': 'weight', 'b': 'bias'}[param] }"


def scratch_name(name: str) -> str:
    """Torch parameter name -> scratch name (the inverse of :func:`torch_name`)."""
    layer, param = name.rsplit(".", 1)
    return f"{layer}.{ {'weight': 'W', 'bias': 'b'}[param] }"


def to_torch(model: Sequential, dtype=None) -> TorchLeNet5:
    """A new :class:`TorchLeNet5` holding a copy of ``model``'s weights (in ``model``'s dtype by default)."""
    params = model.parameters()
    dtype = dtype or {np.dtype(np.float64): torch.float64}.get(model.dtype, torch.float32)
    module = TorchLeNet5().to(dtype)
    expected = {scratch_name(n) for n, _ in module.named_parameters()}
    if set(params) != expected:
        raise ValueError(f"model parameters {sorted(params)} are not LeNet-5's {sorted(expected)}")
    with torch.no_grad():
        for name, p in module.named_parameters():
            value = params[scratch_name(name)]
            if tuple(p.shape) != value.shape:
                raise ValueError(f"{scratch_name(name)} has shape {value.shape}, torch expects {tuple(p.shape)}")
            p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def from_torch(module: nn.Module, model: Sequential | None = None) -> Sequential:
    """Copy a :class:`TorchLeNet5`'s weights into ``model`` (a new :func:`LeNet5` in the module's
    dtype if omitted); names and shapes are checked first, so a mismatch changes nothing."""
    state = {scratch_name(n): p.detach().cpu().numpy() for n, p in module.named_parameters()}
    if model is None:
        dtype = next(iter(state.values())).dtype
        model = LeNet5(dtype=dtype)
    model.load_state_dict(state, source=type(module).__name__)
    return model


# ----------------------------------------------------------------------------------------------
# Training the twin with lenet_core's recipe
# ----------------------------------------------------------------------------------------------

#: the recipe keys the twin knows how to mirror (``augment`` is optional: pixels of random shift)
RECIPE_KEYS = ("optimizer", "lr", "weight_decay", "batch_size", "schedule", "augment")


def resolve_recipe(recipe: dict | None = None) -> dict:
    """:data:`lenet_core.train.DEFAULT_RECIPE` as it is *now*, updated with ``recipe``.

    The default recipe is looked up on every call (not copied at import), so a retuned recipe
    reaches the twin without editing this module. A key the twin cannot mirror raises
    ``ValueError`` naming it, rather than being silently ignored; ``augment`` defaults to 0.
    """
    merged = {"augment": 0, **_train.DEFAULT_RECIPE, **(recipe or {})}
    unknown = sorted(set(merged) - set(RECIPE_KEYS))
    if unknown:
        raise ValueError(f"recipe keys {unknown} are not mirrored by lenet_core.twin "
                         f"(known: {list(RECIPE_KEYS)}); extend fit_torch before using them")
    _optim.check_recipe_names(merged["optimizer"], merged["schedule"])
    return merged


def recipe_optimizer(model, epochs: int, recipe: dict | None = None):
    """``(optimizer, scheduler)`` of a recipe, for a scratch :class:`Sequential` or a torch module.

    Both sides read the same tables, :data:`lenet_core.optim.OPTIMIZERS` and :data:`~lenet_core.optim.SCHEDULES`
    (``scheduler`` is ``None`` for schedule ``"none"``):

    ============ ======================================= ==========================================
    recipe       lenet_core.optim                        torch.optim
    ============ ======================================= ==========================================
    "sgd"        SGD(lr, weight_decay)                   SGD(lr, weight_decay)
    "momentum"   SGD(momentum=0.9, nesterov=True, ...)   SGD(momentum=0.9, nesterov=True, ...)
    "adam"       Adam(lr, weight_decay)                  Adam(lr, weight_decay)
    "cosine"     CosineAnnealingLR(T_max=epochs)         lr_scheduler.CosineAnnealingLR(T_max=epochs)
    "step"       StepLR(max(1, epochs // 3), 0.1)        lr_scheduler.StepLR(max(1, epochs // 3), 0.1)
    ============ ======================================= ==========================================

    ``"step"`` follows the command line (``python -m lenet_core train --schedule step``). Schedules
    are stepped once per epoch.
    """
    r = resolve_recipe(recipe)
    lr, wd, name, schedule = r["lr"], r["weight_decay"], r["optimizer"], r["schedule"]
    if not isinstance(model, nn.Module):
        opt = _optim.make_optimizer(name, model.parameters(), lr, weight_decay=wd)
        return opt, _optim.make_scheduler(schedule, opt, epochs)
    cls, fixed = _optim.OPTIMIZERS[name]                    # the same table, torch's classes
    opt = getattr(torch.optim, cls)(model.parameters(), lr=lr, weight_decay=wd, **fixed)
    entry = _optim.SCHEDULES["none" if schedule is None else schedule]
    if entry is None:
        return opt, None
    cls, settings = entry
    return opt, getattr(torch.optim.lr_scheduler, cls)(opt, **settings(epochs))


def torch_optimizer_state(optimizer, module: nn.Module) -> dict:
    """A torch optimizer's state as a checkpoint holds it (:func:`lenet_core.checkpoint.save_checkpoint`):
    ``{"lr", "steps", "state": {scratch name: {buffer: array}}}``; Adam's per-parameter ``step`` (the same
    for every parameter) is ``steps``."""
    names = [scratch_name(n) for n, _ in module.named_parameters()]
    saved = optimizer.state_dict()
    state, steps = {}, 0
    for i, name in enumerate(names):
        buffers = dict(saved["state"].get(i, {}))
        if "step" in buffers:
            steps = int(buffers.pop("step"))
        state[name] = {k: v.detach().cpu().numpy().copy() for k, v in buffers.items() if v is not None}
    return {"lr": float(saved["param_groups"][0]["lr"]), "steps": steps, "state": state}


def load_torch_optimizer(optimizer, scheduler, module: nn.Module, checkpoint) -> None:
    """Restore a checkpoint's optimizer and scheduler states (:func:`torch_optimizer_state`) into a torch
    ``optimizer`` and ``scheduler`` built by :func:`recipe_optimizer`; ``ValueError`` naming the checkpoint
    when a state does not fit (the objects are then unusable and must be discarded)."""
    saved, names = checkpoint.optimizer, [scratch_name(n) for n, _ in module.named_parameters()]
    current = optimizer.state_dict()
    adam = isinstance(optimizer, torch.optim.Adam)
    try:
        if set(saved["state"]) != set(names):
            raise ValueError(f"optimizer state names {sorted(saved['state'])} are not the model's")
        state = {}
        for i, (name, p) in enumerate(module.named_parameters()):
            buffers = {k: torch.from_numpy(np.array(v, dtype=np.float32 if p.dtype == torch.float32 else None))
                       for k, v in saved["state"][scratch_name(name)].items()}
            if adam:
                buffers["step"] = torch.tensor(float(saved["steps"]))
            state[i] = buffers
        optimizer.load_state_dict({"state": state,
                                   "param_groups": [{**current["param_groups"][0], "lr": float(saved["lr"])}]})
        if (scheduler is None) != (checkpoint.scheduler is None):
            raise ValueError("the run's learning-rate schedule differs")
        if scheduler is not None:
            fresh = scheduler.state_dict()
            if (set(checkpoint.scheduler) != set(fresh)
                    or any(type(checkpoint.scheduler[k]) is not type(v) for k, v in fresh.items())
                    or checkpoint.scheduler["last_epoch"] != checkpoint.epoch):
                raise ValueError(f"scheduler state does not fit {checkpoint.epoch} finished epochs")
            scheduler.load_state_dict(checkpoint.scheduler)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{checkpoint.path}: state does not fit this run ({e})") from None


def _module_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def evaluate_torch(module: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``module`` on images ``x`` (N, 1, 32, 32) and labels ``y`` (N,),
    as :func:`lenet_core.train.evaluate` (computed in the module's dtype, without gradients)."""
    _train.check_data(x, y, "evaluation")
    dtype = _module_dtype(module)
    with torch.no_grad():
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        logits = torch.cat([module(torch.from_numpy(data.gather(x, slice(i, i + batch_size), np_dtype)))
                            for i in range(0, len(x), batch_size)])
        labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
        loss = nn.functional.cross_entropy(logits, labels).item()
        acc = (logits.argmax(dim=1) == labels).double().mean().item()
    return float(loss), float(acc)


def fit_torch(module: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int = 10, recipe: dict | None = None,
              optimizer=None, scheduler=None, validation=None, seed=0, quiet: bool = True, history=None,
              on_epoch_end=None) -> _train.History:
    """Train a torch ``module`` in place exactly as :func:`lenet_core.train.fit` trains a scratch model.

    x: prepared images (N, 1, 32, 32) (:func:`lenet_core.data.prepare`), y: labels (N,); both NumPy.
    ``recipe`` updates :data:`lenet_core.train.DEFAULT_RECIPE` (read at call time, see
    :func:`resolve_recipe`) and sets the optimizer, learning rate, weight decay, batch size, schedule
    and augmentation; ``optimizer``/``scheduler`` (torch objects) override the recipe's.

    It runs the same loop as ``fit``, :func:`lenet_core.train.train_loop`: one
    ``np.random.default_rng(seed)`` drives :func:`lenet_core.data.batches` and
    then :func:`lenet_core.data.random_shift` batch after batch (so seed and ``augment`` give the same
    images in the same order), the loss is the mean cross-entropy of each batch, ``loss`` and
    ``train_acc`` are running averages over the epoch, the schedule steps once per epoch, then
    ``validation=(x_val, y_val)`` is evaluated. Computation happens in the module's dtype.
    Returns a :class:`lenet_core.train.History` (keys ``epoch, loss, train_acc, val_loss, val_acc,
    lr, seconds``; ``seconds`` is training time only). Raises ``FloatingPointError`` when the loss
    stops being finite. ``history`` and ``on_epoch_end`` continue a run and report each epoch, as in ``fit``.
    """
    _train.check_data(x, y, "training")
    if validation is not None:
        _train.check_data(*validation, "validation")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    r = resolve_recipe(recipe)
    if optimizer is None:
        if scheduler is not None:
            raise ValueError("a scheduler needs the optimizer it drives: pass optimizer= as well")
        optimizer, scheduler = recipe_optimizer(module, epochs, r)
    dtype = _module_dtype(module)

    state = {}

    def forward(xb, yb):
        labels = torch.from_numpy(yb)                      # int64 already (y64 below)
        logits = module(torch.from_numpy(np.ascontiguousarray(xb)))
        state["loss"] = loss = nn.functional.cross_entropy(logits, labels)
        return loss.item(), int((logits.detach().argmax(dim=1) == labels).sum()), logits.shape[1]

    def update():
        optimizer.zero_grad(set_to_none=True)
        state.pop("loss").backward()
        optimizer.step()

    def settings():
        group = optimizer.param_groups[0]
        return group["lr"], group.get("weight_decay", 0.0), "betas" in group

    module.train()
    y64 = np.asarray(y, dtype=np.int64)                    # converted once, not per batch
    return _train.train_loop(forward, update, x, y64, epochs=epochs, batch_size=r["batch_size"],
                             dtype=torch.empty(0, dtype=dtype).numpy().dtype,
                             optimizer_settings=settings, scheduler=scheduler,
                             validate=(lambda: evaluate_torch(module, *validation)) if validation is not None else None,
                             augment=r["augment"], seed=seed, quiet=quiet, progress=False, history=history,
                             on_epoch_end=on_epoch_end)
