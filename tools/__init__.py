"""The book's tools, run from the repository's root as modules::

    python -m tools.run_notebook book/ch06_training.ipynb   # execute a notebook in place, as committed
    python -m tools.figure_audit _build/html                # how large every figure is shown
    python -m tools.export_weights_js                       # book/weights/lenet5.npz -> the live pages' script
    python -m tools.prose_check                             # numbers in prose agree with their sources

and the Sphinx extensions the book's ``_config.yml`` loads (``local_extensions``):
:mod:`tools.live_assets` (the live pages' MNIST digits, written at build time),
:mod:`tools.record_role` (the ``{record}`` role: a record's figure, rendered at build time) and
:mod:`tools.book_html_fixes`. The class's grader is ``python -m lenet_core.grading``.
"""
