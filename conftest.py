"""Test-run set-up shared by the unit tests and the notebooks that nbval executes.

Notebook kernels inherit this process's environment, so pointing ``LENET_MNIST_DIR`` at
``../shared/mnist`` here (unless it is already set) lets every chapter find MNIST offline.
"""

import os
from pathlib import Path

_shared = Path(__file__).resolve().parent.parent / "shared" / "mnist"
if not os.environ.get("LENET_MNIST_DIR") and _shared.is_dir():
    os.environ["LENET_MNIST_DIR"] = str(_shared)
