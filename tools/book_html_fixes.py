"""Small fixes to the HTML that Jupyter Book 1.x writes, so that a page loads with no console error.

sphinx-thebe 0.3.1 adds an inline script (``const THEBE_JS_URL = ...``) while the build is already
running; Sphinx 7.4 then writes it twice into every page, and the second copy throws
"Identifier 'THEBE_JS_URL' has already been declared". This drops exact duplicates of a script
from each page's list of scripts (nothing else changes: thebe keeps working).

tests/test_browser.py opens every page in Chromium and fails on any console error.
"""


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        key = (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
