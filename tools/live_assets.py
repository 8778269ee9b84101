"""Write the MNIST digits of the live pages into the built HTML, at build time.

The playground (book/playground.md) lets a reader pick one of a few hundred stored MNIST test
digits, and the live explorers of chapters 2 and 3 start from the training digits their figures
use. MNIST is never part of the repository, so these digits are not committed: when the HTML
build finishes, this extension reads them with ``lenet_core.data.load_mnist(download=False)``
(``$LENET_MNIST_DIR`` or the user cache; it never downloads) and writes
``_static/live/mnist_test_digits.js`` and ``_static/live/mnist_explorer_digits.js`` into the
output, through ``tools/export_weights_js.py``'s :func:`digits_scripts`.

Without MNIST on the building machine the two scripts set their variables to ``null``: the pages
still load with no error, the playground offers drawing only and the explorers use a digit drawn
from strokes (each page says so).
"""

from __future__ import annotations

from pathlib import Path

from sphinx.util import logging

from tools.export_weights_js import digits_scripts

logger = logging.getLogger(__name__)
EMPTY = ("// No MNIST on the machine that built this book: no stored digits.\n"
         "window.{variable} = null;\n")


def _write_digits(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    from lenet_core.data import MNISTError, load_mnist

    folder = Path(app.outdir) / "_static" / "live"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        scripts = digits_scripts(load_mnist(download=False))
    except MNISTError as error:
        logger.info(f"live pages: MNIST not found ({error}); the playground will offer drawing only")
        scripts = {"mnist_test_digits.js": EMPTY.format(variable="MNIST_TEST_DIGITS"),
                   "mnist_explorer_digits.js": EMPTY.format(variable="MNIST_EXPLORER_DIGITS")}
    for name, text in scripts.items():
        (folder / name).write_text(text)


def setup(app):
    app.connect("build-finished", _write_digits)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
