"""The prose check: no number in the book's prose may drift from the computation or record behind it.

Run it from the repository's root::

    python -m tools.prose_check                  # every page; one line per problem, exit 1 if any
    python -m tools.prose_check book/intro.md    # some pages
    python -m tools.prose_check --bookkeeping    # per chapter: visible code lines, bookkeeping lines

Its settings live beside the book, in ``book/_prose_check.yml``: the ``strict`` pages, the figures
that are quotations or definitions (``figures``, per page: the literal and why), the records accepted
although written from a modified tree, and the bookkeeping floor. The conventions it checks
(CONTRIBUTING.md, "Numbers in prose"):

- A figure from a committed record is written ``{record}`FILE KEY FORMAT` `` (the Sphinx role of
  ``tools/record_role.py``, rendered at build time). Every role must resolve
  (:func:`lenet_core.records.record_figure`: file, key, format, not ``--quick``), its record must be
  from a clean tree or accepted in the settings, and the page must be part of the book (a README on
  GitHub would show the role's source).
- A figure computed in a notebook is glued (:func:`lenet_core.records.glue_all`, in a cell tagged
  ``remove-cell``) and shown with ``{glue:text}`name:FORMAT` ``; every glue role must name a figure
  the notebook glued. Figures still glued from records by the older forms (``glue(name,
  record_value(FILE, KEY))``, ``records.glue_record``) must equal the record.
- On a ``strict`` page every percentage, duration, throughput, memory size or ratio in the prose
  (code ignored) must come from a role, or be declared in the settings as a quotation or a
  definition. A hand-typed measured figure fails; so does a declaration whose figure is gone.
- Pages listed under ``legacy_markers`` still use the older HTML-comment markers
  (``99.2%<!-- record: FILE KEY FORMAT -->``, ``<!-- quote: ... -->``, ``<!-- fixed: ... -->``),
  checked as before; anywhere else a marker is an error.
- Bookkeeping: in each chapter of ``bookkeeping.chapters``, the lines of glue calls, record look-ups
  and ``# NBVAL_...`` comments in the code cells a reader sees (not tagged ``remove-cell`` or
  ``remove-input``) are at most ``bookkeeping.max_share`` of those cells' lines.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lenet_core.records import SOURCE_SUFFIX, RecordError, record_figure, record_path, record_value

REPO = Path(__file__).resolve().parents[1]
SETTINGS = REPO / "book" / "_prose_check.yml"

#: what counts as a measured-looking figure: a number with a unit of percent, time, throughput,
#: memory or ratio (``28x28`` and ``5 x 5`` are shapes, not ratios)
FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?(?:%|seconds?\b|images/s\b|MiB\b|GiB\b|"
                    r"MB\b|KB\b|times\b)|\s(?:s|ms)\b|(?:x|×)(?![\w]))"
                    r"|(?<![\w.])\d+\.\d+(?:s|ms)\b")           # "7.8 s", "7.8s"; not the plural "9s"
MARKER = re.compile(r"<!--\s*(record|quote|fixed):\s*(.*?)\s*-->", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
FENCE_LINE = re.compile(r"^(`{3,}|~{3,})(.*)$")
#: a role (``{name}`text` ``) or an inline code span, whichever starts first
ROLE_OR_CODE = re.compile(r"\{([\w:-]+)\}(`+)(?!`)(.*?)(?<!`)\2(?!`)|(`+)(?!`)(.*?)(?<!`)\4(?!`)", re.S)
GLUE_RECORD = re.compile(r"""glue\(\s*["'](\w+)["']\s*,\s*record_value\(\s*["']([^"']+)["']\s*,"""
                         r"""\s*["']([^"']+)["']\s*\)""")
BOOKKEEPING_CALLS = {"glue", "glue_all", "glue_record", "record_value"}
HIDDEN_TAGS = {"remove-cell", "remove_cell", "remove-input", "remove_input"}


# --- settings ------------------------------------------------------------------------------------

@dataclass
class Settings:
    strict: list[str] = field(default_factory=list)
    figures: dict[str, list[dict]] = field(default_factory=dict)   # page -> [{figure, why}]
    dirty_records: dict[str, str] = field(default_factory=dict)    # record -> why it is accepted
    legacy_markers: list[str] = field(default_factory=list)
    bookkeeping_chapters: list[str] = field(default_factory=list)
    bookkeeping_max_share: float = 0.05

    def allowed(self, page: str) -> set[str]:
        return {str(entry["figure"]) for entry in self.figures.get(page, [])}


def load_settings(path: Path = SETTINGS) -> Settings:
    """Read ``book/_prose_check.yml``; a malformed file raises ``ValueError`` naming the entry."""
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"strict", "figures", "dirty_records", "legacy_markers", "bookkeeping"}
    if unknown:
        raise ValueError(f"{path.name}: unknown settings {sorted(unknown)}")
    figures = data.get("figures") or {}
    for page, entries in figures.items():
        for entry in entries or []:
            if not isinstance(entry, dict) or not entry.get("figure") or not entry.get("why"):
                raise ValueError(f"{path.name}: figures.{page}: each entry needs a figure and a why, "
                                 f"got {entry!r}")
    book = data.get("bookkeeping") or {}
    return Settings(strict=list(data.get("strict") or []), figures=figures,
                    dirty_records=dict(data.get("dirty_records") or {}),
                    legacy_markers=list(data.get("legacy_markers") or []),
                    bookkeeping_chapters=list(book.get("chapters") or []),
                    bookkeeping_max_share=float(book.get("max_share", 0.05)))


# --- reading pages --------------------------------------------------------------------------------

def _blank(match: re.Match) -> str:
    """Replace a match by spaces, keeping offsets and line breaks."""
    return re.sub(r"[^\n]", " ", match.group(0))


def blank_code_fences(text: str) -> str:
    """Blank fenced code; MyST directives (```` ```{exercise} ````, ``{solution}``, ``{note}``...)
    keep their body as prose, and only their fence and ``:option:`` lines are blanked."""
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


def roles_of(text: str) -> list[tuple[str, str, int]]:
    """``(role, content, offset)`` of every role in Markdown outside code (fences and inline)."""
    text = blank_code_fences(text)
    return [(m.group(1), m.group(3), m.start()) for m in ROLE_OR_CODE.finditer(text) if m.group(1)]


def prose_of(text: str) -> str:
    """Markdown with fenced code, inline code and roles blanked out (markers and offsets kept)."""
    return ROLE_OR_CODE.sub(_blank, blank_code_fences(text))


def where_of(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def markdown_parts(path: Path) -> list[tuple[str, str]]:
    """``(where, markdown)`` of a page: the file, or each markdown cell of a notebook."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return [(f"{where_of(path)} cell {i}", "".join(c["source"])) for i, c in enumerate(nb["cells"])
                if c["cell_type"] == "markdown"]
    return [(where_of(path), path.read_text())]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def book_pages(repo: Path = REPO) -> set[str]:
    """The pages Sphinx builds: ``_toc.yml``'s root and files (repository-relative, with suffix)."""
    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(toc)
    found = set()
    for name in names:
        for suffix in ("", ".md", ".ipynb"):
            if (repo / (name + suffix)).is_file():
                found.add(name + suffix)
                break
    return found


# --- the checks -----------------------------------------------------------------------------------

def check_roles(where: str, text: str, dirty_ok=(), in_book: bool = True) -> list[str]:
    """Problems with the ``{record}`` roles of one piece of Markdown (empty: all resolve)."""
    problems = []
    for role, body, offset in roles_of(text):
        if role != "record":
            continue
        at = f"{where}:{_line(text, offset)}"
        if not in_book:
            problems.append(f"{at}: {{record}} role in a page the book does not build (it would show "
                            f"as source): link to the book's page instead")
            continue
        try:
            record_figure(body)
        except RecordError as exc:
            problems.append(f"{at}: {{record}}`{body}`: {exc}")
            continue
        file = body.split()[0]
        whole = json.loads(record_path(file).read_text())
        if isinstance(whole, dict) and whole.get("dirty") is True and file not in dirty_ok:
            problems.append(f"{at}: {file} was written from a modified tree (dirty): re-run its "
                            f"script from a clean tree, or accept it under dirty_records in "
                            f"{SETTINGS.name}")
    return problems


def check_markers(where: str, text: str) -> list[str]:
    """The older HTML-comment markers: a ``record`` marker's figure must equal the record, a
    ``quote``/``fixed`` marker must give a reason (pages under ``legacy_markers`` only)."""
    problems = []
    text = prose_of(text)                    # a marker shown as code is an example, not a claim
    for m in MARKER.finditer(text):
        kind, body = m.group(1), m.group(2)
        line = _line(text, m.start())
        if kind != "record":
            if not body:
                problems.append(f"{where}:{line}: `{kind}:` marker without a reason")
            continue
        parts = body.split()
        if len(parts) != 3:
            problems.append(f"{where}:{line}: record marker needs FILE KEY FORMAT, got {body!r}")
            continue
        try:
            expected = record_figure(body)
        except RecordError as exc:
            problems.append(f"{where}:{line}: {exc}")
            continue
        before = text[:m.start()].rstrip().rstrip("*_").rstrip()
        if not before.endswith(expected):
            shown = before[-max(len(expected), 12):]
            problems.append(f"{where}:{line}: the prose says ...{shown!r} but {parts[0]} {parts[1]} "
                            f"formatted {parts[2]!r} is {expected!r}")
    return problems


def no_markers(where: str, text: str) -> list[str]:
    """Markers are gone outside ``legacy_markers`` pages (markers shown as code are examples)."""
    text = prose_of(text)
    return [f"{where}:{_line(text, m.start())}: HTML-comment marker {m.group(0)[:40]!r}...: use the "
            f"{{record}} role, or declare a quotation or definition in {SETTINGS.name}"
            for m in MARKER.finditer(text)]


def unregistered_figures(where: str, text: str, allowed=(), markers: bool = False) -> list[str]:
    """Figures in the prose (outside code and roles) neither declared in ``allowed`` nor (with
    ``markers``) followed by a marker."""
    prose = prose_of(text)
    problems = []
    for m in FIGURE.finditer(COMMENT.sub(_blank, prose)):       # not the figures inside markers
        if m.group(0) in allowed:
            continue
        if markers and MARKER.match(prose[m.end():].lstrip("*_ ")):
            continue
        problems.append(f"{where}:{_line(prose, m.start())}: {m.group(0)!r} is typed by hand (write "
                        f"it with the {{record}} role or glue it; a quotation or a definition is "
                        f"declared in {SETTINGS.name})")
    return problems


def stale_declarations(page: str, texts: list[str], settings: Settings) -> list[str]:
    """Figures declared for a page that its prose no longer contains."""
    prose = "\n".join(COMMENT.sub(_blank, prose_of(t)) for t in texts)
    found = {m.group(0) for m in FIGURE.finditer(prose)}
    return [f"{SETTINGS.name}: figures.{page}: {entry['figure']!r} is not on the page any more: "
            f"remove the declaration" for entry in settings.figures.get(page, [])
            if str(entry["figure"]) not in found]


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
    """Glue roles resolve; figures glued from records by the older forms equal the records."""
    nb = json.loads(path.read_text())
    glued = stored_glue(nb)
    problems = []
    for where, text in markdown_parts(path):
        for role, body, offset in roles_of(text):
            name = body.split(":")[0].strip()
            if role.startswith("glue") and "::" not in body and name not in glued:
                problems.append(f"{where}:{_line(text, offset)}: {{glue}} role names {name!r}, which "
                                f"no cell glued (execute the notebook)")

    def compare(where, name, file, key):
        try:
            expected = repr(record_value(file, key))
            record_figure(f"{file} {key}")                   # refuses a --quick record
        except (OSError, KeyError, RecordError) as exc:
            problems.append(f"{where}: {exc}")
            return
        if glued.get(name) != expected:
            problems.append(f"{where}: glued {name!r} is {glued.get(name)!r} "
                            f"but {file} {key} is {expected}: re-execute the notebook")

    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            for name, file, key in GLUE_RECORD.findall("".join(cell["source"])):
                compare(f"{where_of(path)} cell {i}", name, file, key)
    for source_name, source in glued.items():          # lenet_core.records.glue_record, any name
        if source_name.endswith(SOURCE_SUFFIX) and source is not None:
            compare(where_of(path), source_name[:-len(SOURCE_SUFFIX)], *ast.literal_eval(source).split())
    return problems


# --- bookkeeping ----------------------------------------------------------------------------------

def _bookkeeping_lines(source: str) -> set[int]:
    """Line numbers (1-based) of a cell's statements that glue or look up records, and of
    ``# NBVAL_...`` comments."""
    lines = source.split("\n")
    found = {i + 1 for i, line in enumerate(lines) if line.strip().startswith("# NBVAL_")}
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        pattern = re.compile(r"\b(" + "|".join(BOOKKEEPING_CALLS) + r")\b")
        return found | {i + 1 for i, line in enumerate(lines) if pattern.search(line)}

    def calls(node):
        return {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
                for n in ast.walk(node) if isinstance(n, ast.Call)}

    def visit(body):
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                names = {a.name.split(".")[-1] for a in stmt.names}
                if names <= BOOKKEEPING_CALLS:
                    found.update(range(stmt.lineno, stmt.end_lineno + 1))
                elif names & BOOKKEEPING_CALLS:
                    found.add(stmt.lineno)                  # one name among others on the line
            elif isinstance(stmt, (ast.For, ast.While, ast.If, ast.With, ast.FunctionDef)):
                inner = stmt.body + getattr(stmt, "orelse", [])
                visit(inner)
                if all(s.lineno in found for s in inner):   # a loop that only glues
                    found.update(range(stmt.lineno, stmt.end_lineno + 1))
            elif calls(stmt) & BOOKKEEPING_CALLS:
                found.update(range(stmt.lineno, stmt.end_lineno + 1))

    visit(tree.body)
    return found


def bookkeeping(path: Path) -> tuple[int, int]:
    """``(bookkeeping lines, code lines)`` in the code cells of a notebook that a reader sees."""
    nb = json.loads(path.read_text())
    total = kept = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        source = "".join(cell["source"])
        marked = _bookkeeping_lines(source)
        for i, line in enumerate(source.split("\n"), 1):
            if line.strip():
                total += 1
                kept += i in marked
    return kept, total


def check_bookkeeping(settings: Settings, repo: Path = REPO) -> list[str]:
    problems = []
    for chapter in settings.bookkeeping_chapters:
        kept, total = bookkeeping(repo / chapter)
        if total and kept / total > settings.bookkeeping_max_share:
            problems.append(f"{chapter}: {kept} of the {total} code lines a reader sees are bookkeeping "
                            f"({kept / total:.1%} > {settings.bookkeeping_max_share:.0%}): move glue "
                            f"into a cell tagged remove-cell (glue_all) and quote records with "
                            f"{{record}}")
    return problems


# --- the whole repository -------------------------------------------------------------------------

def pages(repo: Path = REPO) -> list[Path]:
    """Every Markdown page and every chapter notebook the check reads."""
    found = [repo / "README.md", repo / "CONTRIBUTING.md"]
    for folder in ("book", "benchmarks", "results", "assignments"):
        found += sorted((repo / folder).rglob("*.md"))
    found += sorted((repo / "book").glob("*.ipynb"))
    return [p for p in found if p.is_file() and "_build" not in p.parts]


def check_page(path: Path, settings: Settings, in_book: set[str] | None = None) -> list[str]:
    """Every problem of one page (Markdown or notebook)."""
    page = where_of(path)
    in_book = book_pages() if in_book is None else in_book
    legacy = page in settings.legacy_markers
    parts = markdown_parts(path)
    problems = []
    for where, text in parts:
        problems += check_roles(where, text, settings.dirty_records, page in in_book)
        problems += check_markers(where, text) if legacy else no_markers(where, text)
        if page in settings.strict:
            problems += unregistered_figures(where, text, settings.allowed(page), markers=legacy)
    problems += stale_declarations(page, [t for _, t in parts], settings)
    if path.suffix == ".ipynb":
        problems += check_notebook_glue(path)
    return problems


def check_settings(settings: Settings, repo: Path = REPO) -> list[str]:
    named = set(settings.strict) | set(settings.figures) | set(settings.legacy_markers) \
        | set(settings.bookkeeping_chapters)
    problems = [f"{SETTINGS.name} names {p}, which does not exist" for p in sorted(named)
                if not (repo / p).is_file()]
    problems += [f"{SETTINGS.name}: dirty_records names {r}, which does not exist"
                 for r in settings.dirty_records if not record_path(r).is_file()]
    problems += [f"{SETTINGS.name}: legacy_markers names {p}, which has no marker left: remove it"
                 for p in settings.legacy_markers if (repo / p).is_file() and not any(
                     MARKER.search(prose_of(t)) for _, t in markdown_parts(repo / p))]
    return problems


def check_all(paths=None, settings: Settings | None = None) -> list[str]:
    settings = settings or load_settings()
    in_book = book_pages()
    problems = check_settings(settings) if paths is None else []
    for path in paths or pages():
        problems += check_page(Path(path), settings, in_book)
    if paths is None:
        problems += check_bookkeeping(settings)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.prose_check", description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to check (default: all)")
    parser.add_argument("--bookkeeping", action="store_true",
                        help="print each chapter's bookkeeping lines / visible code lines")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"prose_check: cannot read {SETTINGS}: {exc}", file=sys.stderr)
        return 2
    if args.bookkeeping:
        for chapter in sorted((REPO / "book").glob("ch*.ipynb")):
            kept, total = bookkeeping(chapter)
            floor = "checked" if where_of(chapter) in settings.bookkeeping_chapters else "not checked"
            print(f"{where_of(chapter):<40} {kept:4d} / {total:4d} = {kept / max(total, 1):6.1%}  ({floor})")
        return 0
    missing = [p for p in args.pages if not p.is_file()]
    if missing:
        print(f"prose_check: no such page: {missing[0]}", file=sys.stderr)
        return 2
    problems = check_all(args.pages or None, settings)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "prose check: every figure agrees with its source",
          file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
