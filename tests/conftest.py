"""Shared fixtures. MNIST comes from ``$LENET_MNIST_DIR`` or ``../shared/mnist`` beside the repository."""

import os
from pathlib import Path

import numpy as np
import pytest

from lenet_core.data import ENV_VAR, load_mnist

REPO = Path(__file__).resolve().parents[1]


def mnist_dir() -> Path:
    path = Path(os.environ.get(ENV_VAR) or REPO.parent / "shared" / "mnist")
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        raise RuntimeError(f"MNIST files not found in {path}: set {ENV_VAR} to the folder holding them")
    return path


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    return mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_root):
    return load_mnist(mnist_root, download=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
