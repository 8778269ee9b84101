"""The book builds offline with Jupyter Book 1.x, with warnings treated as errors.

The build itself is the session fixture ``book_build`` (tests/conftest.py): it runs once per test
run and tests/test_browser.py opens the same HTML in Chromium.
"""

import re


def test_book_builds_without_warnings(book_build):
    # the warnings are on stderr; stdout's tail says where the build stopped
    output = book_build.stderr[-3000:] + "\n--- stdout (end) ---\n" + book_build.stdout[-1500:]
    assert book_build.returncode == 0, output
    assert "warning" not in book_build.stderr.lower(), book_build.stderr[-3000:]
    html = (book_build.html / "book" / "intro.html").read_text()
    assert "LeNet-5 from Scratch" in html and "61,706" in html


def test_record_roles_render_as_figures(book_build):
    """The {record} role (_ext/record_role.py) leaves the figure itself in the HTML, no source."""
    from lenet_core.records import record_figure
    assert book_build.returncode == 0, book_build.stderr[-3000:]
    html = (book_build.html / "book" / "intro.html").read_text()
    mean = record_figure("headline.json results.summary.default.test_acc.mean .2%")
    sd = record_figure("headline.json results.summary.default.test_acc.sd .2%")
    assert re.search(rf"{re.escape(mean)}\s*</strong>\s*±\s*{re.escape(sd)}", html), mean
    leftovers = [p.name for p in book_build.html.rglob("*.html") if "{record}" in p.read_text()]
    assert not leftovers, f"unrendered {{record}} roles in {leftovers}"
