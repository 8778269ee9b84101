"""Every page of the table of contents, opened in headless Chromium as a reader would see it.

The HTML is the one build of the test run (fixture ``book_build`` in tests/conftest.py), served by
a loopback HTTP server on 127.0.0.1. For each entry of ``_toc.yml`` (the intro, every chapter,
the references) the page must:

- load with no console error and no uncaught JavaScript error (a missing image or script is a
  console error too);
- ask for nothing outside this machine: every non-local request is refused and fails the test
  (the book is read offline, and the machines that run this have no internet);
- show its title: an ``<h1>`` equal to the first heading of its source file and (for every page
  but the root, which the sidebar shows as the book's title) to its entry in the navigation sidebar;
- show a rendered figure when it is a notebook chapter (``book/chNN_*``): at least one ``<img>``
  with ``naturalWidth > 0``; every image on any page must have loaded. The intro and the
  references are prose and may have no figure;
- show no error output: no stderr or error (traceback) output block, no "Traceback" in any cell
  output or in the page's text, and no math that MathJax failed to typeset. A cell that catches an
  exception on purpose and prints it ("ValueError: kernel 5 does not fit ...") is teaching, not
  an error, and passes.

A full-page screenshot of each page goes to ``_build/screenshots/`` (git-ignored); the path is
printed at the end of the run. The server (``site``) and the browser (``browser``) are fixtures of
tests/conftest.py, shared with tests/test_browser_live.py (one Playwright per run).

Chromium is Debian's (``apt-get install -y chromium``), never a browser that Playwright downloads.
Without it this test FAILS with that instruction: skipping would hide a broken set-up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import CHROMIUM, REPO, SCREENSHOTS, is_local

CHAPTER = re.compile(r"ch\d\d_")


def toc_entries(toc: Path = REPO / "_toc.yml") -> list[str]:
    """The documents of ``_toc.yml`` in reading order: the root, then every ``file`` entry."""
    data = yaml.safe_load(toc.read_text())
    entries = [data["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    walk(data.get("chapters"))
    for part in data.get("parts") or []:
        walk(part.get("chapters"))
    return [str(Path(entry).with_suffix("")) for entry in entries]


def source_of(entry: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        path = REPO / (entry + suffix)
        if path.is_file():
            return path
    return None


def first_heading(source: Path) -> str | None:
    """The text of the first level-1 heading of a MyST Markdown file or notebook, inline markup removed."""
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text())["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        text = source.read_text()
    match = re.search(r"^# +(.+?)\s*$", text, re.MULTILINE)
    if not match:
        return None
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1))  # [text](link) -> text
    title = re.sub(r"<!--.*?-->", "", title)                            # markers are not shown
    return normalize(re.sub(r"[`*]", "", title))


def normalize(text: str) -> str:
    return " ".join(text.replace("#", " ").replace("¶", " ").split())


PAGES = toc_entries()


@pytest.mark.parametrize("entry", PAGES)
def test_page_in_browser(entry, book_build, site, browser):
    if browser is None:  # a failure, not a skip: a machine without Chromium has a broken set-up
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's Chromium. Install it as "
                    "root with `apt-get update && apt-get install -y chromium` (Playwright must not "
                    "download a browser of its own).", pytrace=False)
    html = book_build.html / (entry + ".html")
    source = source_of(entry)
    assert source is not None, f"_toc.yml lists {entry}, but neither {entry}.ipynb nor {entry}.md exists"
    assert html.is_file(), f"{entry} has no page in the build ({html}); build output:\n{book_build.stderr[-2000:]}"

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    outside: list[str] = []

    def refuse_outside(route):
        if is_local(route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", refuse_outside)
    page = context.new_page()
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"uncaught JavaScript error: {error}"))
    page.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 else None)
    page.on("request", lambda req: None if is_local(req.url) else outside.append(req.url))
    screenshot = SCREENSHOTS / (entry.replace("/", "__") + ".png")
    try:
        page.goto(f"{site}/{entry}.html", wait_until="load", timeout=30_000)
        # MathJax typesets after the load event: wait for it (if it loaded at all), then for fonts
        page.evaluate("""async () => {
            if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
            await document.fonts.ready;
        }""")
        page.screenshot(path=str(screenshot), full_page=True)
        info = page.evaluate("""() => {
            const main = document.querySelector("main") || document.body;
            const h1 = main.querySelector("h1");
            // the deepest "current" entry of the navigation is this page (its parents are current too)
            const current = [...document.querySelectorAll(".bd-sidebar-primary li.current > a")].pop();
            return {
                h1: h1 ? h1.innerText : null,
                sidebar: current ? current.innerText : null,
                images: [...main.querySelectorAll("img")].map(img => ({
                    src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth})),
                stderr: main.querySelectorAll(".output.stderr, .output.traceback, .output.error").length,
                outputs: [...main.querySelectorAll(".cell_output, .output")].map(o => o.innerText),
                text: main.innerText,
                math: main.querySelectorAll(".math").length,
                typeset: main.querySelectorAll("mjx-container").length,
                mathErrors: [...main.querySelectorAll("mjx-merror")].map(e => e.getAttribute("data-mjx-error") || e.textContent),
            };
        }""")
    finally:
        context.close()

    where = f"{entry} (screenshot: {screenshot})"
    assert not outside, f"{where}: requests to hosts outside this machine: {sorted(set(outside))}"
    assert not problems, f"{where}:\n" + "\n".join(problems)

    expected = first_heading(source)
    assert info["h1"] and normalize(info["h1"]), f"{where}: the page shows no <h1> title"
    assert expected is not None, f"{source} has no '# title' heading"
    assert normalize(info["h1"]) == expected, f"{where}: <h1> {info['h1']!r} is not the source's title {expected!r}"
    if entry != PAGES[0]:  # the root is the book's title link, not an item of the sidebar
        assert info["sidebar"] and normalize(info["sidebar"]) == expected, (
            f"{where}: the sidebar's entry {info['sidebar']!r} is not the title {expected!r}")

    broken = [img["src"] for img in info["images"] if not (img["complete"] and img["width"] > 0)]
    assert not broken, f"{where}: images that did not load: {broken}"
    if CHAPTER.match(Path(entry).name):
        assert info["images"], f"{where}: a chapter must show at least one rendered figure; it has no <img>"

    assert info["stderr"] == 0, f"{where}: {info['stderr']} stderr/traceback output block(s) on the page"
    bad = [text[:300] for text in info["outputs"] if "Traceback" in text]
    assert not bad, f"{where}: error output in cells:\n" + "\n---\n".join(bad)
    assert "Traceback (most recent call last)" not in info["text"], f"{where}: a traceback is shown"
    assert not info["mathErrors"], f"{where}: MathJax could not typeset: {info['mathErrors']}"
    assert info["typeset"] >= info["math"], (
        f"{where}: {info['math']} math element(s) but only {info['typeset']} typeset by MathJax")
