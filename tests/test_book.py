"""The book builds offline with Jupyter Book 1.x, with warnings treated as errors."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_book_builds_without_warnings(tmp_path):
    result = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(REPO), "--path-output", str(tmp_path),
                             "--warningiserror", "--nitpick", "--keep-going"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "warning" not in result.stderr.lower(), result.stderr[-3000:]
    html = (tmp_path / "_build" / "html" / "book" / "intro.html").read_text()
    assert "LeNet-5 from Scratch" in html and "61,706" in html
