"""How large the book's figures are shown: ``python -m tools.figure_audit _build/html``.

Builds nothing: give it the HTML folder of a built book (``jupyter-book build . --path-output
/tmp/jb --keep-going`` writes ``/tmp/jb/_build/html``). Every chapter page (``chNN_*.html``) is
opened from file:// in Debian's Chromium (never a browser Playwright downloads) at a 1280 px wide
window, with every dropdown opened. For each cell output image it prints the page, the notebook
cell index (found from the image's name, the SHA-256 of its bytes, in the copied source), the
natural and displayed widths, their ratio, and the height in screen pixels of a 10-pt label
(from the PNG's dpi); ratios below ``--min-ratio`` (0.6) are flagged with ``<<``.
"""

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
MEASURE = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  document.querySelectorAll('.toggle-hidden').forEach(
      e => e.classList.remove('toggle-hidden'));
  return [...document.querySelectorAll('.cell_output img, .output img')].map(
      img => [img.src, img.naturalWidth, img.getBoundingClientRect().width]);
}"""


def image_cells(notebook: Path) -> dict[str, int]:
    """SHA-256 of every PNG output of ``notebook`` -> index of its cell."""
    if not notebook.is_file():
        return {}
    cells = json.loads(notebook.read_text())["cells"]
    found = {}
    for i, cell in enumerate(cells):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                data = base64.b64decode("".join(png))
                found[hashlib.sha256(data).hexdigest()] = i
    return found


def audit(html: Path, min_ratio: float) -> int:
    from playwright.sync_api import sync_playwright

    pages = sorted(html.glob("**/ch[0-9][0-9]_*.html"))
    if not pages:
        sys.exit(f"no chapter page (chNN_*.html) under {html}: is it a built book's HTML folder?")
    flagged = total = 0
    print(f"{'page':<28}{'cell':>5}{'natural':>9}{'shown':>7}{'ratio':>7}{'10pt px':>9}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", lambda route: route.continue_()
                      if urlsplit(route.request.url).scheme in ("file", "data")
                      else route.abort())
        for path in pages:
            rel = path.relative_to(html)
            cells = image_cells(html / "_sources" / rel.with_suffix(".ipynb"))
            page = context.new_page()
            page.goto(path.resolve().as_uri(), wait_until="load")
            for src, natural, shown in page.evaluate(MEASURE):
                file = Path(unquote(urlsplit(src).path))
                cell = cells.get(file.stem, "?")
                dpi = Image.open(file).info.get("dpi", (100, 100))[0]
                ratio = shown / natural if natural else 0.0
                label = 10 / 72 * dpi * ratio
                flag = "  <<" if ratio < min_ratio else ""
                flagged += bool(flag)
                total += 1
                print(f"{rel.stem:<28}{cell:>5}{natural:>9}{shown:>7.0f}"
                      f"{ratio:>7.2f}{label:>9.1f}{flag}")
            page.close()
        browser.close()
    print(f"{flagged} of {total} figures shown below {min_ratio:.0%} of their natural width")
    return flagged


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the built book's HTML folder")
    parser.add_argument("--min-ratio", type=float, default=0.6)
    options = parser.parse_args()
    if not options.html.is_dir():
        sys.exit(f"{options.html}: no such folder (give the built book's _build/html)")
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    audit(options.html, options.min_ratio)
