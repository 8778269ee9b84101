"""Result records: the committed JSON files that every measured figure in the book comes from.

A long run (benchmarks, training over many seeds, ablations, the seed-paper ladder) ends with
:func:`write_record`, which stores its results together with how they were made: the command line,
the seed(s), the git commit, the machine (CPU, cores, Python, NumPy, torch, whether
``OPENBLAS_CORETYPE`` was set) and the date. Chapters read records with :func:`read_record` to plot
them; the prose quotes a figure with the book's ``{record}`` role, which :func:`record_figure`
resolves at build time, and ``tools/prose_check.py`` checks every quotation, so a number cannot drift.
A figure a chapter computes itself reaches its prose through :func:`glue_all`.

Layout of a record::

    {"name": ..., "command": ..., "seed": ..., "commit": ..., "dirty": ..., "machine": {...},
     "date": "2026-11-25T10:40:00+00:00", "quick": false, "results": {...}}
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from ._files import atomic_write, read_json

__all__ = ["write_record", "read_record", "record_value", "record_figure", "glue_all", "machine_info",
           "git_commit", "RecordError", "RECORDS_DIR"]

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
    record = read_json(path)
    if not isinstance(record, dict) or "results" not in record:
        raise ValueError(f"{path} is not a result record: no 'results'")
    return record


class RecordError(ValueError):
    """A figure that cannot be quoted: no such file or key, a bad spec, or a ``--quick`` record."""


def record_path(path) -> Path:
    """Where a record lives: ``path`` as given if absolute, ``results/NAME`` for a bare file name,
    otherwise relative to the repository's root (``book/weights/lenet5_history.json``)."""
    path = Path(path)
    if path.is_absolute():
        return path
    return RECORDS_DIR / path if len(path.parts) == 1 else RECORDS_DIR.parent / path


def record_value(path, key: str):
    """One figure of a JSON file (a record, or any JSON such as a training history), by a dotted key.

    ``path`` as in :func:`record_path`; ``key`` walks dictionaries by name and lists by index
    (``-1`` is the last item): ``record_value("headline.json", "results.summary.default.test_acc.mean")``.
    A missing key raises ``KeyError`` naming it. Prose quotes records through :func:`record_figure`
    (the book's ``{record}`` role), never by calling this in a chapter.
    """
    path = record_path(path)
    value = read_json(path)
    walked = []
    for part in key.split("."):
        walked.append(part)
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"{path}: no {'.'.join(walked)!r}") from None
    return value


#: a Python format spec (``.2%``, ``,.0f``, ``+.1e``, ``d``): the last word of a role, if it is one
FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[+\- ]?z?#?0?\d*[,_]?(?:\.\d+)?[bcdeEfFgGnosxX%]?")


def record_figure(text: str) -> str:
    """The figure that the book's ``{record}`FILE KEY SPEC` `` role shows, formatted.

    ``text`` is ``FILE KEY`` or ``FILE KEY SPEC``: a record (:func:`record_path`), a dotted key
    (:func:`record_value`; it may contain spaces, ``results.methods.Integrated Gradients.auc``) and a
    Python format spec (``.2%``, ``.1f``, ``,.0f``, ``d``):
    ``record_figure("headline.json results.summary.default.test_acc.mean .2%")`` -> ``'99.22%'``.
    Raises :class:`RecordError` with one line naming the problem: a malformed role, a missing file
    or key, a value the spec cannot format, or a ``--quick`` record (a smoke run's numbers mean
    nothing). Used by the Sphinx role (``tools/record_role.py``) and by ``tools/prose_check.py``.
    """
    parts = text.split()
    if len(parts) < 2:
        raise RecordError(f"needs FILE KEY [FORMAT], got {text!r}")
    spec = parts.pop() if len(parts) > 2 and FORMAT_SPEC.fullmatch(parts[-1]) else ""
    file, key = parts[0], " ".join(parts[1:])          # a key may hold spaces ("Integrated Gradients")
    path = record_path(file)
    try:
        whole = read_json(path)
    except OSError as exc:
        raise RecordError(f"{file}: cannot read {path} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise RecordError(f"{file}: not JSON ({exc})") from None
    if isinstance(whole, dict) and whole.get("quick") is True:
        raise RecordError(f"{file} is a --quick record: re-run its script in full before quoting it")
    try:
        value = record_value(path, key)
    except KeyError as exc:                         # "PATH: no 'KEY'", said with the name as written
        raise RecordError(f"{file}: {exc.args[0].rsplit(': ', 1)[-1]}") from None
    if isinstance(value, (dict, list)) or value is None:
        raise RecordError(f"{file} {key} is {type(value).__name__}, not a figure")
    try:
        return format(value, spec)
    except (ValueError, TypeError) as exc:
        raise RecordError(f"{file} {key} = {value!r} cannot be formatted with {spec!r}: {exc}") from None


def glue_all(figures: dict) -> dict:
    """Glue every ``name: value`` of ``figures`` in a notebook (myst-nb), for ``{glue:text}`name` ``.

    The one way a chapter hands a figure it computed to its prose: call it from a code cell tagged
    ``remove-cell`` right after the cell that computes the figures, so the HTML reader sees the
    teaching code only. NumPy scalars are stored as Python numbers (their text is what the format
    spec of ``{glue:text}`name:.2%` `` formats). Returns ``figures``.
    """
    from myst_nb import glue
    for name, value in figures.items():
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()
        glue(name, value, display=False)
    return figures


#: suffix of the companion glue that names where a figure glued by :func:`glue_record` comes from
SOURCE_SUFFIX = "__record"


def glue_record(name: str, path, key: str):
    """Glue ``record_value(path, key)`` under ``name`` in a notebook (myst-nb), and return it.

    Superseded by the ``{record}`` role (a record's figure goes straight into the prose); kept while
    chapters still call it, and checked by ``tools/prose_check.py``.

    It also glues ``name + "__record"`` = ``"PATH KEY"``, so that tools/prose_check.py can
    check the stored figure against the file even when the name and key are built in a loop
    (``glue_record(f"val_{rung}", "ablation.json", f"results.table.{i}.val_error_mean")``).
    """
    from myst_nb import glue
    value = record_value(path, key)
    glue(name, value, display=False)
    glue(name + SOURCE_SUFFIX, f"{path} {key}", display=False)
    return value
