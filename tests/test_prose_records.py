"""No number in the prose may drift from the computation or record that produced it.

How a figure is registered (CONTRIBUTING.md, "Numbers in prose"):

- **Markdown pages** (intro, READMEs): a measured figure is followed by a marker naming its
  source, ``99.12%<!-- record: headline.json results.summary.default.test_acc.mean .2% -->``:
  a JSON file (relative to the repository's root; a bare name means ``results/NAME``), a dotted
  key (list items by index) and a Python format spec. The text just before the marker (after
  stripping ``*``, ``_`` and spaces) must end with ``format(value, spec)``, so changing a record
  without updating the prose fails here. HTML comments are invisible in the book and on GitHub.
- A figure that is not our measurement (a published figure, a definition, a threshold) is followed
  by ``<!-- quote: where it comes from -->`` or ``<!-- fixed: why it is not measured -->``.
- **Notebooks**: figures computed in the chapter go through myst-nb's ``glue`` and the
  ``{glue:text}`` role; a figure read from a record is glued as
  ``glue("name", record_value("headline.json", "results...."), display=False)``, and the stored
  glue output must equal the record's value (re-execute the notebook after re-running a script).
  Every ``{glue...}`` role must name a figure glued in the same notebook.
- On the pages in :data:`STRICT` every percentage, duration, throughput, memory size or ratio in
  the prose (outside code) must be glued or followed by one of the markers above: a hand-typed
  measured figure fails.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from lenet_core.records import SOURCE_SUFFIX, record_value

REPO = Path(__file__).resolve().parents[1]

#: pages (Markdown or notebooks) where every figure must be registered. Add yours.
STRICT = ["book/intro.md", "book/weights/README.md", "README.md", "book/ch01_mnist.ipynb",
          "book/ch02_convolution.ipynb", "book/ch03_pooling.ipynb", "book/ch04_backprop.ipynb",
          "book/ch05_lenet5.ipynb", "book/ch06_training.ipynb", "book/ch07_seed_paper.ipynb",
          "book/ch08_pytorch_twin.ipynb", "book/ch09_integrated_gradients.ipynb",
          "book/ch10_trust_attributions.ipynb",
          "book/ch11_lenet1998.ipynb", "book/ch12_ablation.ipynb", "book/playground.md",
          "book/instructor.md", "benchmarks/README.md", "CONTRIBUTING.md"]

MARKER = re.compile(r"<!--\s*(record|quote|fixed):\s*(.*?)\s*-->", re.S)
#: what counts as a measured-looking figure: a number with a unit of percent, time, throughput,
#: memory or ratio (``28x28`` and ``5 x 5`` are shapes, not ratios)
FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?(?:%|seconds?\b|images/s\b|MiB\b|GiB\b|"
                    r"MB\b|KB\b|times\b)|\s(?:s|ms)\b|(?:x|×)(?![\w]))"
                    r"|(?<![\w.])\d+\.\d+(?:s|ms)\b")           # "7.8 s", "7.8s"; not the plural "9s"
COMMENT = re.compile(r"<!--.*?-->", re.S)
FENCE_LINE = re.compile(r"^(`{3,}|~{3,})(.*)$")
INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.S)
GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
GLUE_RECORD = re.compile(r"""glue\(\s*["'](\w+)["']\s*,\s*record_value\(\s*["']([^"']+)["']\s*,"""
                         r"""\s*["']([^"']+)["']\s*\)""")


def _blank(match: re.Match) -> str:
    """Replace code by spaces, keeping offsets and line breaks."""
    return re.sub(r"[^\n]", " ", match.group(0))


def _blank_code_fences(text: str) -> str:
    """Blank fenced code; MyST directives (```` ```{exercise} ````, ``{solution}``, ``{note}``...) keep
    their body as prose, and only their fence and ``:option:`` lines are blanked."""
    lines, stack = text.split("\n"), []             # stack of (fence, is_code)
    for i, line in enumerate(lines):
        m = FENCE_LINE.match(line.strip())
        in_code = any(code for _, code in stack)
        if m and stack and m.group(1)[0] == stack[-1][0][0] and len(m.group(1)) >= len(stack[-1][0]) \
                and not m.group(2).strip():
            stack.pop()                                  # a closing fence
        elif m and not in_code:
            info = m.group(2).strip()
            stack.append((m.group(1), not info.startswith("{") or info.startswith("{code")))
        elif not (in_code or (stack and line.startswith(":"))):
            continue
        lines[i] = " " * len(line)
    return "\n".join(lines)


def prose_of(text: str) -> str:
    """Markdown with fenced and inline code blanked out (markers and offsets kept)."""
    return INLINE_CODE.sub(_blank, _blank_code_fences(text))


def _where(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return path.name


def markdown_parts(path: Path) -> list[tuple[str, str]]:
    """``(where, markdown)`` of a page: the file, or each markdown cell of a notebook."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return [(f"{_where(path)} cell {i}", "".join(c["source"])) for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "markdown"]
    return [(_where(path), path.read_text())]


def source_value(file: str, key: str):
    """``record_value(file, key)``, refusing a quick (smoke-run) record: its numbers mean nothing."""
    if key.split(".")[0] == "results" and record_value(file, "quick") is True:
        raise ValueError(f"{file} is a --quick record: re-run its script in full")
    return record_value(file, key)


def check_markers(where: str, text: str) -> list[str]:
    """Problems with the ``record`` markers of one piece of Markdown (empty: all figures agree)."""
    problems = []
    text = prose_of(text)                    # a marker shown as code is an example, not a claim
    for m in MARKER.finditer(text):
        kind, body = m.group(1), m.group(2)
        line = text.count("\n", 0, m.start()) + 1
        if kind != "record":
            if not body:
                problems.append(f"{where}:{line}: `{kind}:` marker without a reason")
            continue
        parts = body.split()
        if len(parts) != 3:
            problems.append(f"{where}:{line}: record marker needs FILE KEY FORMAT, got {body!r}")
            continue
        file, key, spec = parts
        try:
            expected = format(source_value(file, key), spec)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            problems.append(f"{where}:{line}: {file} {key}: {exc}")
            continue
        before = text[:m.start()].rstrip().rstrip("*_").rstrip()
        if not before.endswith(expected):
            shown = before[-max(len(expected), 12):]
            problems.append(f"{where}:{line}: the prose says ...{shown!r} but {file} {key} "
                            f"formatted {spec!r} is {expected!r}")
    return problems


def unregistered_figures(where: str, text: str) -> list[str]:
    """Figures in the prose (outside code and glue roles) not followed by a marker."""
    prose = prose_of(text)
    problems = []
    for m in FIGURE.finditer(COMMENT.sub(_blank, prose)):       # not the figures inside markers
        after = prose[m.end():].lstrip("*_ ")
        if not MARKER.match(after):
            line = prose.count("\n", 0, m.start()) + 1
            problems.append(f"{where}:{line}: {m.group(0)!r} is not registered "
                            f"(glue it, or add <!-- record: FILE KEY FORMAT --> or "
                            f"<!-- quote: SOURCE --> after it)")
    return problems


def stored_glue(nb: dict) -> dict[str, str]:
    """name -> stored ``text/plain`` of every ``glue`` output of an executed notebook."""
    found = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                plain = [v for k, v in out.get("data", {}).items() if k.endswith("text/plain")]
                found[name] = "".join(plain[0]) if plain else None
    return found


def check_notebook_glue(path: Path) -> list[str]:
    """Glue roles resolve; figures glued from records equal the records (stored outputs)."""
    nb = json.loads(path.read_text())
    glued = stored_glue(nb)
    problems = []
    for where, text in markdown_parts(path):
        for name in GLUE_ROLE.findall(text):
            name = name.split(":")[0].strip()
            if "::" not in name and name not in glued:
                problems.append(f"{where}: {{glue}} role names {name!r}, which no cell glued "
                                f"(execute the notebook)")
    def compare(where, name, file, key):
        try:
            expected = repr(source_value(file, key))
        except (OSError, KeyError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            return
        if glued.get(name) != expected:
            problems.append(f"{where}: glued {name!r} is {glued.get(name)!r} "
                            f"but {file} {key} is {expected}: re-execute the notebook")

    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            for name, file, key in GLUE_RECORD.findall("".join(cell["source"])):
                compare(f"{path.name} cell {i}", name, file, key)
    for source_name, source in glued.items():          # lenet_core.records.glue_record, any name
        if source_name.endswith(SOURCE_SUFFIX) and source is not None:
            compare(path.name, source_name[:-len(SOURCE_SUFFIX)], *ast.literal_eval(source).split())
    return problems


def pages() -> list[Path]:
    found = [REPO / "README.md", REPO / "CONTRIBUTING.md"]
    for folder in ("book", "benchmarks", "results", "assignments"):
        found += sorted((REPO / folder).rglob("*.md"))
    return [p for p in found if p.is_file() and "_build" not in p.parts]


NOTEBOOKS = sorted((REPO / "book").glob("*.ipynb"))


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- the checks on the repository -------------------------------------------------------------

@pytest.mark.parametrize("path", pages() + NOTEBOOKS, ids=_id)
def test_record_markers_agree_with_records(path):
    problems = [p for where, text in markdown_parts(path) for p in check_markers(where, text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", STRICT, ids=str)
def test_every_figure_is_registered(page):
    path = REPO / page
    problems = [p for where, text in markdown_parts(path) for p in unregistered_figures(where, text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_glued_figures_match_records(path):
    problems = check_notebook_glue(path)
    assert not problems, "\n".join(problems)


def test_strict_pages_exist():
    missing = [p for p in STRICT if not (REPO / p).is_file()]
    assert not missing, f"STRICT names pages that do not exist: {missing}"


# --- the checker itself can fail --------------------------------------------------------------

@pytest.fixture
def record(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"quick": False, "results": {"acc": [0.9912, 0.9920], "sec": 7.84}}))
    return path


def test_markers_catch_a_drifted_figure(record):
    good = f"Accuracy **99.20%**<!-- record: {record} results.acc.1 .2% --> after 10 epochs."
    assert check_markers("page", good) == []
    drifted = good.replace("99.20%", "99.42%")
    (problem,) = check_markers("page", drifted)
    assert "'99.20%'" in problem and "results.acc.1" in problem


def test_markers_report_a_missing_key_or_bad_marker(record):
    (missing,) = check_markers("page", f"7.8 s<!-- record: {record} results.nope .1f -->")
    assert "results.nope" in missing
    (bad,) = check_markers("page", f"7.8 s<!-- record: {record} results.sec -->")
    assert "FILE KEY FORMAT" in bad
    (empty,) = check_markers("page", "90.27%<!-- quote: -->")
    assert "without a reason" in empty
    record.write_text(json.dumps({"quick": True, "results": {"sec": 7.84}}))
    (quick,) = check_markers("page", f"7.84<!-- record: {record} results.sec .2f -->")
    assert "--quick" in quick


def test_markers_in_code_are_examples():
    assert check_markers("page", "Write `7.8 s<!-- record: nowhere.json results.x .1f -->`.") == []


def test_directive_bodies_are_prose_and_their_code_is_not():
    text = ("````{solution} ex-1\n:class: dropdown\n\nIt reached 99.2%.\n```python\nprint('9 s')\n```\n````\n"
            "```python\nx = '7.8 s'\n```\n")
    found = [p.split(": ")[1].split(" is ")[0] for p in unregistered_figures("page", text)]
    assert found == ["'99.2%'"]


def test_unregistered_figures_are_found():
    text = ("One epoch takes 7.8 s, 1.7x PyTorch's time, at 17,341 images/s; accuracy 99.2%.\n"
            "The 9s read as 4s; one took 6.5s.\n"
            "A 28x28 digit, 5 x 5 kernels, 3 seeds, `--epochs 10` and\n```\ntook 9 s\n```\n"
            "90.27%<!-- quote: seed paper, 9.5% --> and {glue:text}`acc:.2%`.\n")
    found = [p.split(": ")[1].split(" is ")[0] for p in unregistered_figures("page", text)]
    assert found == ["'7.8 s'", "'1.7x'", "'17,341 images/s'", "'99.2%'", "'6.5s'"]


def test_glue_checks_catch_stale_and_missing_figures(tmp_path, record):
    def notebook(stored, role="acc"):
        return {"cells": [
            {"cell_type": "code", "source": [f'glue("acc", record_value("{record}", "results.acc.0"), '
                                             'display=False)'],
             "outputs": [{"output_type": "display_data", "metadata": {"scrapbook": {"name": "acc"}},
                          "data": {"application/papermill.record/text/plain": stored}}]},
            {"cell_type": "markdown", "source": [f"Accuracy {{glue:text}}`{role}:.2%`."]}]}

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook("0.9912")))
    assert check_notebook_glue(path) == []
    path.write_text(json.dumps(notebook("0.99")))
    (stale,) = check_notebook_glue(path)
    assert "re-execute" in stale
    path.write_text(json.dumps(notebook("0.9912", role="accuracy")))
    (missing,) = check_notebook_glue(path)
    assert "'accuracy'" in missing


def test_glue_record_is_checked_whatever_its_name(tmp_path, record):
    """Figures glued by lenet_core.records.glue_record (names built in a loop) are checked too."""
    def notebook(stored):
        def out(name, plain):
            return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name}},
                    "data": {"application/papermill.record/text/plain": plain}}
        return {"cells": [{"cell_type": "code", "source": ['for k in keys: glue_record(f"acc_{k}", F, K)'],
                           "outputs": [out("acc_0", stored), out("acc_0" + SOURCE_SUFFIX,
                                                                 repr(f"{record} results.acc.0"))]}]}

    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook("0.9912")))
    assert check_notebook_glue(path) == []
    path.write_text(json.dumps(notebook("0.99")))
    (stale,) = check_notebook_glue(path)
    assert "'acc_0'" in stale and "re-execute" in stale
