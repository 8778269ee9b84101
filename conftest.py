"""Test-run set-up shared by the unit tests and the notebooks that nbval executes.

Notebook kernels inherit this process's environment, so pointing ``LENET_MNIST_DIR`` at
``../shared/mnist`` here (unless it is already set) lets every chapter find MNIST offline.
"""

import os
from pathlib import Path

_shared = Path(__file__).resolve().parent.parent / "shared" / "mnist"
if not os.environ.get("LENET_MNIST_DIR") and _shared.is_dir():
    os.environ["LENET_MNIST_DIR"] = str(_shared)


# Per-assignment markers (registered in pyproject.toml): `python -m pytest -m a3` runs assignment 3's tests.
# A test belongs to an assignment when its id names the assignment's folder in assignments/source (the
# source notebook's cells under nbval, a test parametrized by assignment); a test can also carry the
# mark itself (`@pytest.mark.a3`).
_ASSIGNMENTS = sorted(p.name for p in (Path(__file__).resolve().parent / "assignments" / "source").iterdir()
                      if p.is_dir())


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in _ASSIGNMENTS:
            mark = name.split("_", 1)[0]
            if name in item.nodeid and item.get_closest_marker(mark) is None:
                item.add_marker(mark)
