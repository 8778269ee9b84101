"""Shared fixtures. MNIST comes from ``$LENET_MNIST_DIR`` (the root conftest.py points it at
``../shared/mnist`` beside the repository when it is not set)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lenet_core.data import ENV_VAR, load_mnist

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    folder = os.environ.get(ENV_VAR)
    path = Path(folder or "")
    if not folder or not (path / "train-images-idx3-ubyte.gz").is_file():
        raise RuntimeError(f"MNIST files not found in {folder or '(' + ENV_VAR + ' is not set)'}: "
                           f"set {ENV_VAR} to the folder holding them")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_root):
    return load_mnist(mnist_root, download=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@dataclass(frozen=True)
class BookBuild:
    """One HTML build of the book: what ``jupyter-book build`` returned and where the HTML is."""

    returncode: int
    stdout: str
    stderr: str
    html: Path


@pytest.fixture(scope="session")
def book_build(tmp_path_factory) -> BookBuild:
    """Build the book ONCE per test run, warnings as errors, into a temporary folder.

    Shared by the zero-warning test (tests/test_book.py) and the browser test
    (tests/test_browser.py). ``--keep-going`` writes every page it can even when a warning
    fails the build, so the browser test still checks the pages that did build.
    """
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jupyter_book), "build", str(REPO), "--path-output", str(out),
                             "--warningiserror", "--nitpick", "--keep-going"],
                            capture_output=True, text=True, timeout=600)
    return BookBuild(result.returncode, result.stdout, result.stderr, out / "_build" / "html")
