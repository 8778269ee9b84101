"""The book builds offline with Jupyter Book 1.x, with warnings treated as errors.

The build itself is the session fixture ``book_build`` (tests/conftest.py): it runs once per test
run and tests/test_browser.py opens the same HTML in Chromium.
"""


def test_book_builds_without_warnings(book_build):
    # the warnings are on stderr; stdout's tail says where the build stopped
    output = book_build.stderr[-3000:] + "\n--- stdout (end) ---\n" + book_build.stdout[-1500:]
    assert book_build.returncode == 0, output
    assert "warning" not in book_build.stderr.lower(), book_build.stderr[-3000:]
    html = (book_build.html / "book" / "intro.html").read_text()
    assert "LeNet-5 from Scratch" in html and "61,706" in html
