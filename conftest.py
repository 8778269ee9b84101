"""Test-run set-up shared by the unit tests and the notebooks that nbval executes.

Notebook kernels inherit this process's environment, so pointing ``LENET_MNIST_DIR`` at
``../shared/mnist`` here (unless it is already set) lets every chapter find MNIST offline.
"""

import os
from pathlib import Path

import pytest

_shared = Path(__file__).resolve().parent.parent / "shared" / "mnist"
if not os.environ.get("LENET_MNIST_DIR") and _shared.is_dir():
    os.environ["LENET_MNIST_DIR"] = str(_shared)


# Per-assignment markers (registered in pyproject.toml): `python -m pytest -m a3` runs assignment 3's tests.
# A test belongs to an assignment when its id names the assignment's folder in assignments/source (the
# source notebook's cells under nbval, a test parametrized by assignment); a test can also carry the
# mark itself (`@pytest.mark.a3`).
_ASSIGNMENTS = sorted(p.name for p in (Path(__file__).resolve().parent / "assignments" / "source").iterdir()
                      if p.is_dir())


def _mark_assignment(item):
    for name in _ASSIGNMENTS:
        mark = name.split("_", 1)[0]
        if name in item.nodeid and item.get_closest_marker(mark) is None:
            item.add_marker(mark)


# ----------------------------------------------------------------------------------------------
# Two workers (pytest-xdist, ``-n 2 --dist loadgroup`` in pyproject.toml): what runs where
# ----------------------------------------------------------------------------------------------

# One BLAS/OpenMP thread per worker (set before NumPy or torch loads; kernels and subprocesses
# inherit it): two workers with two threads each would fight over the two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

# Files that share an expensive session fixture run on one worker, so it is built once:
# the book's HTML build (``book_build``) and the Chromium that opens it (``browser``).
_SHARED_GROUPS = {"test_book.py": "book", "test_browser.py": "book", "test_browser_live.py": "book"}


@pytest.hookimpl(tryfirst=True)           # before xdist reads the marks
def pytest_collection_modifyitems(config, items):
    """Put every test in the group of its file (a notebook is one kernel: its cells must stay in
    order on one worker; a module's fixtures are built once), and the files that share the book's
    build in one group. Each test also gets its assignment's mark (``_mark_assignment``)."""
    for item in items:
        _mark_assignment(item)
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group(_SHARED_GROUPS.get(name, str(item.path.relative_to(config.rootpath)))))
