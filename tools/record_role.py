"""The ``{record}`` role: a figure of a committed result record, rendered when the book is built.

In a Markdown page or a notebook's markdown cell::

    LeNet-5 reaches {record}`headline.json results.summary.default.test_acc.mean .2%` on average.

renders as plain text, ``99.22%``: the record (``results/NAME`` for a bare name, otherwise a path from
the repository's root), a dotted key (list items by index, ``-1`` for the last) and a Python format
spec, resolved by :func:`lenet_core.records.record_figure`. A page is rebuilt when a record it quotes
changes. A missing file or key, a value the spec cannot format or a ``--quick`` record is an error
naming the page, the line and the problem, and the build fails (even without ``--warningiserror``).
``tools/prose_check.py`` checks the same roles without building the book.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxRole

from lenet_core.records import RecordError, record_figure, record_path

logger = logging.getLogger(__name__)


class RecordRole(SphinxRole):
    """``{record}`FILE KEY SPEC` `` -> the formatted figure, as text."""

    def run(self):
        parts = self.text.split()
        if parts:
            self.env.note_dependency(str(record_path(parts[0])))   # re-read the page when it changes
        try:
            figure = record_figure(self.text)
        except RecordError as exc:
            where = f"{self.env.docname}:{self.lineno}"
            self.env.record_role_failures = getattr(self.env, "record_role_failures", {})
            self.env.record_role_failures.setdefault(self.env.docname, []).append(f"{where}: {exc}")
            logger.error("{record}`%s`: %s", self.text, exc, location=self.get_location())
            return [nodes.Text(self.rawtext)], []
        return [nodes.Text(figure)], []


def _purge(app, env, docname):
    getattr(env, "record_role_failures", {}).pop(docname, None)


def _merge(app, env, docnames, other):
    failures = getattr(other, "record_role_failures", {})
    env.record_role_failures = getattr(env, "record_role_failures", {})
    env.record_role_failures.update({d: failures[d] for d in docnames if d in failures})


def _fail_build(app, exception):
    failures = [f for fs in getattr(app.env, "record_role_failures", {}).values() for f in fs]
    if exception is None and failures:
        raise ExtensionError(f"{len(failures)} {{record}} figure(s) could not be resolved:\n  "
                             + "\n  ".join(failures))


def setup(app):
    app.add_role("record", RecordRole())
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("build-finished", _fail_build)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
