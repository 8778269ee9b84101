"""Shared fixtures. MNIST comes from ``$LENET_MNIST_DIR`` (the root conftest.py points it at
``../shared/mnist`` beside the repository when it is not set)."""

import functools
import json
import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from lenet_core.data import ENV_VAR, load_mnist

REPO = Path(__file__).resolve().parents[1]


def run_quick(script: str, out: Path, *options: str, timeout: int = 300, package: str = "experiments") -> dict:
    """Run ``python -m <package>.<script> --quick [options] --out <out>`` from the repository's root
    and return the record it wrote (the run must succeed)."""
    proc = subprocess.run([sys.executable, "-m", f"{package}.{script}", "--quick", *options,
                           "--out", str(out)], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(Path(out).read_text())


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


# ----------------------------------------------------------------------------------------------
# The built book in a browser (tests/test_browser.py, tests/test_browser_live.py)
# ----------------------------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = REPO / "_build" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local(url: str) -> bool:
    """True for a request that stays on this machine (loopback, file://, data:, blob:, about:)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about", "file") or parts.hostname in LOCAL_HOSTS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site(book_build):
    """The built HTML, served on 127.0.0.1 (a free port) for the whole run."""
    handler = functools.partial(_QuietHandler, directory=str(book_build.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(request):
    """Debian's Chromium, headless, for the whole run; None when it is not installed.

    One Playwright for the whole run: its sync API cannot run twice at once in one process.
    """
    if not CHROMIUM.is_file():
        yield None
        return
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    # say where the screenshots are, past pytest's output capture
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nscreenshots of the book's pages: {SCREENSHOTS}")
