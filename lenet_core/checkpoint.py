"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``.npz`` file (never pickle), written atomically (a temporary file renamed into
place) after every epoch by ``python -m lenet_core train``:

- ``model/<param>``: the weights (``"model/C1.W"``, ...);
- ``optimizer/<param>/<buffer>``: the optimizer's buffers (momentum ``velocity``, Adam's ``m`` and ``v``);
- ``meta``: UTF-8 JSON as a uint8 array: the format tag, the number of finished epochs, the optimizer's
  learning rate and step count, the scheduler's state, the random generator's state (batch order and
  augmentation), the :class:`~lenet_core.train.History` so far and the run's arguments.

Restoring all of it into a fresh model, optimizer, scheduler and generator and calling
:func:`lenet_core.train.fit` with the restored history continues the run with bit-identical results::

    ckpt = load_checkpoint("weights.ckpt.npz")
    history = ckpt.restore(model, optimizer, scheduler, rng)
    fit(model, x, y, epochs=10, optimizer=optimizer, scheduler=scheduler, seed=rng, history=history)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._files import atomic_write, check_npz_array, npz_headers, read_npz

__all__ = ["FORMAT", "Checkpoint", "save_checkpoint", "load_checkpoint"]

#: the tag in every checkpoint's metadata; a file without it is refused
FORMAT = "lenet_core.checkpoint/1"


def save_checkpoint(path, *, model, optimizer, scheduler, rng: np.random.Generator, history, args: dict) -> Path:
    """Write the state of a run after ``len(history["epoch"])`` finished epochs to ``path`` (``.npz``)."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    opt = optimizer.state_dict()
    for name, buffers in opt["state"].items():
        for key, value in buffers.items():
            arrays[f"optimizer/{name}/{key}"] = value
    meta = {"format": FORMAT, "epoch": len(history["epoch"]),
            "optimizer": {"lr": opt["lr"], "steps": opt["steps"]},
            "scheduler": None if scheduler is None else scheduler.state_dict(),
            "rng": rng.bit_generator.state, "history": {k: list(v) for k, v in history.items()},
            "args": args}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
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

    def restore(self, model, optimizer, scheduler, rng: np.random.Generator):
        """Load every state into ``model``, ``optimizer``, ``scheduler`` and ``rng`` (in place); return the
        :class:`~lenet_core.train.History` to continue. A state that does not fit raises ``ValueError``
        naming the checkpoint."""
        from .train import History

        if (scheduler is None) != (self.scheduler is None):
            raise ValueError(f"{self.path}: the checkpoint's run {'had' if self.scheduler else 'had no'} "
                             f"learning-rate schedule")
        try:
            model.load_state_dict(self.model, source=str(self.path))
            optimizer.load_state_dict(self.optimizer)
            if scheduler is not None:
                scheduler.load_state_dict(self.scheduler)
            rng.bit_generator.state = self.rng
        except (KeyError, TypeError, ValueError) as e:
            message = str(e)
            raise ValueError(message if message.startswith(str(self.path))
                             else f"{self.path}: state does not fit this run ({message})") from None
        history = History()
        for key in History.KEYS:
            history[key].extend(self.history[key])
        return history


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; headers are checked before any array is read.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    headers = npz_headers(path)
    if "meta" not in headers:
        raise ValueError(f"{path} is not a lenet_core checkpoint (no 'meta' entry)")
    for name, (shape, dtype) in headers.items():
        check_npz_array(path, name, shape, dtype)
    arrays = read_npz(path, headers)
    try:
        meta = json.loads(arrays.pop("meta").astype(np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable checkpoint metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a lenet_core checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    from .train import History

    history = meta.get("history")
    if (not isinstance(history, dict) or any(k not in history for k in History.KEYS)
            or {len(history[k]) for k in History.KEYS} != {meta.get("epoch")}):
        raise ValueError(f"{path}: the history does not match the checkpoint's {meta.get('epoch')} epochs")
    model = {name[len("model/"):]: value for name, value in arrays.items() if name.startswith("model/")}
    buffers: dict[str, dict] = {}
    for name, value in arrays.items():
        if name.startswith("optimizer/"):
            param, key = name[len("optimizer/"):].rsplit("/", 1)
            buffers.setdefault(param, {})[key] = value
    for param in model:
        buffers.setdefault(param, {})
    try:
        optimizer = {"lr": meta["optimizer"]["lr"], "steps": meta["optimizer"]["steps"], "state": buffers}
        return Checkpoint(path, int(meta["epoch"]), dict(meta["args"]), model, optimizer, meta["scheduler"],
                          meta["rng"], history)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: incomplete checkpoint metadata ({type(e).__name__}: {e})") from None
