"""Result records: the committed JSON files that every measured figure in the book comes from.

A long run (benchmarks, training over many seeds, ablations, the seed-paper ladder) ends with
:func:`write_record`, which stores its results together with how they were made: the command line,
the seed(s), the git commit, the machine (CPU, cores, Python, NumPy, torch, whether
``OPENBLAS_CORETYPE`` was set) and the date. Chapters, the intro and the READMEs read the figures back
with :func:`read_record`; a test compares the prose with the records, so a number cannot drift.

Layout of a record::

    {"name": ..., "command": ..., "seed": ..., "commit": ..., "dirty": ..., "machine": {...},
     "date": "2026-11-25T10:40:00+00:00", "quick": false, "results": {...}}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from ._files import atomic_write

__all__ = ["write_record", "read_record", "record_value", "machine_info", "git_commit", "RECORDS_DIR"]

#: where committed records live (one JSON file per measurement)
RECORDS_DIR = Path(__file__).resolve().parents[1] / "results"


def git_commit(repo: Path | None = None) -> tuple[str | None, bool | None]:
    """The current commit hash and whether the work tree has uncommitted changes (``None`` outside git)."""
    repo = repo or RECORDS_DIR.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """What a figure depends on: CPU, core count, OS, Python, NumPy and torch versions, BLAS set-up."""
    import numpy as np
    info = {"cpu": _cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_CORETYPE_set": "OPENBLAS_CORETYPE" in os.environ}
    if "torch" in sys.modules:          # never import torch just to describe the machine
        info["torch"] = sys.modules["torch"].__version__
    return info


def _command_line() -> str:
    """This process's command line as typed: ``python -m experiments.ablation --jobs 2`` for a module
    run with ``-m`` (whose ``sys.argv[0]`` is the module's file path), else ``python script.py ...``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["-m", spec.name] if spec is not None and spec.name else sys.argv[:1]
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *head, *sys.argv[1:]])


def write_record(path, results: dict, *, command: str | None = None, seed=None, quick: bool = False,
                 name: str | None = None) -> Path:
    """Write ``results`` (JSON-serialisable) with its provenance to ``path`` (``.json``), atomically.

    ``command`` defaults to this process's command line; ``quick`` marks a smoke run whose numbers
    must never be quoted (tests write quick records to temporary folders, never to ``results/``).
    """
    commit, dirty = git_commit()
    record = {"name": name or Path(path).stem,
              "command": command or _command_line(),
              "seed": seed, "commit": commit, "dirty": dirty, "machine": machine_info(),
              "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
              "quick": bool(quick), "results": results}
    text = json.dumps(record, indent=1, sort_keys=False) + "\n"
    return atomic_write(path, ".json", lambda f: f.write(text), mode="w")


def read_record(path) -> dict:
    """Read a record written by :func:`write_record`; a file without ``results`` raises ``ValueError``."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = RECORDS_DIR / path
    with open(path) as f:
        record = json.load(f)
    if not isinstance(record, dict) or "results" not in record:
        raise ValueError(f"{path} is not a result record: no 'results'")
    return record


def record_value(path, key: str):
    """One figure of a JSON file (a record, or any JSON such as a training history), by a dotted key.

    ``path`` is relative to the repository's root (a bare file name means ``results/NAME``);
    ``key`` walks dictionaries by name and lists by index: ``record_value("headline.json",
    "results.summary.default.test_acc.mean")``. Notebooks glue figures through this function
    (``glue("name", record_value(path, key), display=False)``) so that tests/test_prose_records.py
    can check the stored figure against the file; a missing key raises ``KeyError`` naming it.
    """
    path = Path(path)
    if not path.is_absolute():
        path = RECORDS_DIR / path if len(path.parts) == 1 else RECORDS_DIR.parent / path
    with open(path) as f:
        value = json.load(f)
    walked = []
    for part in key.split("."):
        walked.append(part)
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"{path}: no {'.'.join(walked)!r}") from None
    return value


#: suffix of the companion glue that names where a figure glued by :func:`glue_record` comes from
SOURCE_SUFFIX = "__record"


def glue_record(name: str, path, key: str):
    """Glue ``record_value(path, key)`` under ``name`` in a notebook (myst-nb), and return it.

    It also glues ``name + "__record"`` = ``"PATH KEY"``, so that tests/test_prose_records.py can
    check the stored figure against the file even when the name and key are built in a loop
    (``glue_record(f"val_{rung}", "ablation.json", f"results.table.{i}.val_error_mean")``).
    """
    from myst_nb import glue
    value = record_value(path, key)
    glue(name, value, display=False)
    glue(name + SOURCE_SUFFIX, f"{path} {key}", display=False)
    return value
