"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``.npz`` file (never pickle), written atomically and durably (a temporary file,
``fsync``\\ ed, renamed into place) after every epoch by ``python -m lenet_core train``:

- ``model/<param>``: the weights (``"model/C1.W"``, ...);
- ``optimizer/<param>/<buffer>``: the optimizer's buffers (momentum ``velocity``, Adam's ``m`` and ``v``;
  the PyTorch twin's ``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``), each of its parameter's shape;
- ``meta``: UTF-8 JSON as a uint8 array: the format tag, the number of finished epochs, the optimizer's
  learning rate and step count (and any other settings it reports), the scheduler's state, the random
  generator's state (batch order and augmentation), the :class:`~lenet_core.train.History` so far, the
  loss the run started from (``start_loss``: divergence is measured against it, so a resumed run stops
  where the whole run would) and the run's arguments.

Restoring all of it into a fresh model, optimizer, scheduler and generator and calling
:func:`lenet_core.train.fit` with the restored history continues the run with bit-identical results::

    ckpt = load_checkpoint("weights.ckpt.npz", model)
    history = ckpt.restore(model, optimizer, scheduler, rng)
    fit(model, x, y, epochs=10, optimizer=optimizer, scheduler=scheduler, seed=rng, history=history)

Reading is bounded and checked like a command line: the archive's size and entries are bounded
before anything is decompressed (:func:`lenet_core._files.npz_headers`), every entry must be one a
checkpoint has (with the model's shapes, when the model is given), every array finite, and the
metadata of the right types and ranges (no NaN, no infinity, no nesting beyond what is written).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_write, check_npz_array, npz_headers, parse_json, read_npz
from .train import History, finite_number

__all__ = ["FORMAT", "Checkpoint", "save_checkpoint", "load_checkpoint", "MAX_META_BYTES"]

#: the tag in every checkpoint's metadata; a file without it is refused
FORMAT = "lenet_core.checkpoint/1"
#: the most metadata a checkpoint may hold (a 10,000-epoch history, --epochs' limit, is about 1.5 MB)
MAX_META_BYTES = 4 << 20


def _state(thing) -> dict | None:
    return thing if thing is None or isinstance(thing, dict) else thing.state_dict()


def save_checkpoint(path, *, model, optimizer, scheduler, rng: np.random.Generator, history, args: dict) -> Path:
    """Write the state of a run after ``len(history["epoch"])`` finished epochs to ``path`` (``.npz``).

    ``optimizer`` and ``scheduler`` are objects with ``state_dict()`` (or those dicts): the optimizer's
    ``{"lr", "steps", "state": {param: {buffer: array}}, ...}`` (other keys are kept in the metadata)."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    opt = _state(optimizer)
    for name, buffers in opt["state"].items():
        for key, value in buffers.items():
            arrays[f"optimizer/{name}/{key}"] = np.asarray(value)
    meta = {"format": FORMAT, "epoch": len(history["epoch"]),
            "optimizer": {k: v for k, v in opt.items() if k != "state"},
            "scheduler": _state(scheduler),
            "rng": rng.bit_generator.state, "history": {k: list(v) for k, v in history.items()},
            "start_loss": history.start_loss, "args": args}
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    return atomic_write(path, ".npz", lambda f: np.savez(f, **arrays))


@dataclass
class Checkpoint:
    """A checkpoint read back: ``epoch`` finished epochs, the run's ``args`` and the states to restore."""

    path: Path
    epoch: int
    args: dict
    model: dict
    optimizer: dict
    scheduler: dict | None
    rng: dict
    history: dict
    start_loss: float

    def restore(self, model, optimizer, scheduler, rng: np.random.Generator):
        """Load every state into ``model``, ``optimizer``, ``scheduler`` (lenet_core's) and ``rng`` (in
        place); return the :class:`~lenet_core.train.History` to continue. A state that does not fit
        raises ``ValueError`` naming the checkpoint."""
        if (scheduler is None) != (self.scheduler is None):
            raise ValueError(f"{self.path}: the checkpoint's run {'had' if self.scheduler else 'had no'} "
                             f"learning-rate schedule")
        try:
            model.load_state_dict(self.model, source=str(self.path))
            optimizer.load_state_dict(self.optimizer)
            if scheduler is not None:
                scheduler.load_state_dict(self.scheduler)
                if scheduler.epoch != self.epoch or not (math.isfinite(scheduler.base_lr) and scheduler.base_lr > 0):
                    raise ValueError(f"scheduler state {self.scheduler} does not fit {self.epoch} finished epochs")
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            message = str(e)
            raise ValueError(message if message.startswith(str(self.path))
                             else f"{self.path}: state does not fit this run ({message})") from None
        return self.restore_rng(rng)

    def restore_rng(self, rng: np.random.Generator):
        """Set ``rng`` to the saved state; return the :class:`~lenet_core.train.History` to continue."""
        try:
            rng.bit_generator.state = self.rng
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{self.path}: random generator state does not fit ({e})") from None
        history = History.from_dict(self.history, self.path)
        history.start_loss = self.start_loss
        return history


def _no_constant(name):
    raise ValueError(f"{name} is not a number a checkpoint holds")


def _fail(path, what):
    raise ValueError(f"{path}: {what}")


def _is_int(value, low=0, high=None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _is_number(value, positive=False) -> bool:
    return finite_number(value) and (value > 0 if positive else True)


def _check_rng(path, state) -> None:
    inner = state.get("state") if isinstance(state, dict) else None
    if not (isinstance(state, dict) and state.get("bit_generator") == "PCG64" and isinstance(inner, dict)
            and _is_int(inner.get("state"), 0, 2 ** 128 - 1) and _is_int(inner.get("inc"), 0, 2 ** 128 - 1)
            and state.get("has_uint32") in (0, 1) and _is_int(state.get("uinteger"), 0, 2 ** 32 - 1)):
        _fail(path, "the random generator state is not a PCG64 state")


def _check_history(path, history, epochs) -> None:
    if (isinstance(history, dict) and all(isinstance(history.get(k), list) for k in History.KEYS)
            and {len(history[k]) for k in History.KEYS} != {epochs}):
        _fail(path, f"the history does not match the checkpoint's {epochs} epochs")
    History.from_dict(history, path)                      # lists of one length, numbers where numbers go
    if history["epoch"] != list(range(1, epochs + 1)):
        _fail(path, f"the history's epochs are not 1, 2, ..., {epochs} (the checkpoint's epochs)")


def load_checkpoint(path, model=None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; headers are checked before any array is read.

    ``model`` (optional): the model the checkpoint must fit; its parameter names and shapes are then
    required of the ``model/`` entries and of every optimizer buffer before anything is decompressed.
    Raises ``FileNotFoundError`` or ``ValueError`` naming the file and what is wrong with it: a special
    or oversized file, an unknown, misshapen, non-real or non-finite entry, unreadable, over-nested or
    non-finite metadata, or metadata of the wrong types or out of range.
    """
    path = Path(path)
    try:
        headers = npz_headers(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    if "meta" not in headers:
        raise ValueError(f"{path} is not a lenet_core checkpoint (no 'meta' entry)")
    params = None if model is None else {k: v.shape for k, v in model.parameters().items()}
    for name, (shape, dtype) in headers.items():
        check_npz_array(path, name, shape, dtype)
        if name == "meta":
            if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_META_BYTES:
                _fail(path, f"'meta' has shape {shape} and dtype {dtype}; expected at most {MAX_META_BYTES:,} "
                            f"bytes of JSON")
            continue
        kind, _, rest = name.partition("/")
        param = rest.rsplit("/", 1)[0] if kind == "optimizer" and "/" in rest else rest
        if kind not in ("model", "optimizer") or not param or (kind == "optimizer" and "/" not in rest):
            _fail(path, f"entry {name!r} is not one a checkpoint has")
        if params is not None:
            if param not in params:
                _fail(path, f"entry {name!r} names no parameter of the model")
            if tuple(shape) != tuple(params[param]):
                _fail(path, f"{name!r} has shape {tuple(shape)}, the model's {param} has {tuple(params[param])}")
    if params is not None:
        missing = [p for p in params if f"model/{p}" not in headers]
        if missing:
            _fail(path, f"the model's weights {missing} are missing")
    arrays = read_npz(path, headers)
    for name, value in arrays.items():
        if name != "meta" and not np.all(np.isfinite(value)):
            _fail(path, f"{name!r} contains NaN or infinite values")
    try:
        meta = parse_json(arrays.pop("meta").tobytes(), parse_constant=_no_constant)
    except ValueError as e:
        raise ValueError(f"{path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        tag = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not a lenet_core checkpoint (format {str(tag)[:40]!r}, expected {FORMAT!r})")
    epoch = meta.get("epoch")
    if not _is_int(epoch, 1, 10 ** 6):
        _fail(path, f"the number of finished epochs is {str(epoch)[:40]}, not a positive integer")
    _check_history(path, meta.get("history"), epoch)
    _check_rng(path, meta.get("rng"))
    if not _is_number(meta.get("start_loss"), positive=True):
        _fail(path, f"the starting loss divergence is measured against is {str(meta.get('start_loss'))[:40]}, "
                    f"not a finite number > 0")
    opt = meta.get("optimizer")
    if not (isinstance(opt, dict) and _is_number(opt.get("lr")) and opt["lr"] >= 0
            and _is_int(opt.get("steps"), 0, 2 ** 53)):
        _fail(path, "the optimizer's state needs a finite learning rate >= 0 and a step count >= 0")
    scheduler = meta.get("scheduler")
    if scheduler is not None and not isinstance(scheduler, dict):
        _fail(path, "the scheduler's state is not a table")
    if not isinstance(meta.get("args"), dict):
        _fail(path, "the run's arguments are missing")
    model_state = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    buffers: dict[str, dict] = {param: {} for param in (params or model_state)}
    for name, value in arrays.items():
        if name.startswith("optimizer/"):
            param, key = name[len("optimizer/"):].rsplit("/", 1)
            buffers.setdefault(param, {})[key] = value
    return Checkpoint(path, epoch, dict(meta["args"]), model_state, {**opt, "state": buffers}, scheduler,
                      meta["rng"], meta["history"], meta["start_loss"])
