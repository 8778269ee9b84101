"""lenet_core.records: the records the book quotes were written from a clean commit."""

import json
import re
from pathlib import Path


from lenet_core.records import RECORDS_DIR
from tools.prose_check import load_settings

from conftest import REPO

#: quoted records written from a dirty tree that this repository has not re-run yet, with the reason:
#: the one list, ``dirty_records`` in book/_prose_check.yml (the prose check accepts the same ones).
#: A record leaves it when it is re-written clean (the test below fails until it does).
AWAITING_CLEAN_RUN = load_settings().dirty_records

#: how prose and code name a record: record_value("x.json", ...), read_record("x.json"),
#: glue_record("name", "x.json", ...), <!-- record: x.json ... --> and the {record}`x.json ...` role
QUOTE = re.compile(r"""(?:record_value|read_record|record_figure)\(\s*\\?["']([\w./-]+\.json)"""
                   r"""|glue_record\(\s*["'][^"']*["'],\s*["']([\w./-]+\.json)"""
                   r"""|<!--\s*record:\s*([\w./-]+\.json)|\{record\}`([\w./-]+\.json)""")


def quoted_records(paths) -> dict[str, list[str]]:
    """``{record name: [files that quote it]}`` over notebooks and Markdown pages."""
    found: dict[str, list[str]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
        for match in QUOTE.finditer(text):
            name = next(g for g in match.groups() if g)
            found.setdefault(name, []).append(path.name)
    return found


def dirty_records(quoted: dict, records_dir: Path) -> dict[str, str]:
    """``{name: why}`` for each quoted record that is missing or not marked ``"dirty": false``."""
    bad = {}
    for name in quoted:
        path = records_dir / name if "/" not in name else REPO / name
        if not path.exists():
            bad[name] = "missing"
            continue
        dirty = json.loads(path.read_text()).get("dirty")
        if dirty is not False:
            bad[name] = f"dirty: {dirty}"
    return bad


def book_pages():
    return sorted([*(REPO / "book").glob("*.ipynb"), *(REPO / "book").glob("*.md"), REPO / "README.md",
                   *(REPO / "benchmarks").glob("*.md")])


def test_quoted_records_were_written_from_a_clean_commit():
    quoted = quoted_records(book_pages())
    assert "seed_ladder.json" in quoted and "lenet1998.json" in quoted       # the scan finds the quotes
    dirty = dirty_records(quoted, RECORDS_DIR)
    unexpected = {k: f"{v} (quoted in {', '.join(sorted(set(quoted[k])))})" for k, v in dirty.items()
                  if k not in AWAITING_CLEAN_RUN}
    assert not unexpected, f"re-run these from a clean commit (a detached worktree): {unexpected}"
    cleaned = [k for k in AWAITING_CLEAN_RUN if k not in dirty]
    assert not cleaned, f"now clean or no longer quoted: remove from AWAITING_CLEAN_RUN: {cleaned}"


def test_the_check_catches_a_dirty_or_missing_record(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('99.1%<!-- record: a.json results.x .1% --> and {record}`b.json results.y .2%`\n'
                    'and `record_value("c.json", "results.z")`')
    quoted = quoted_records([page])
    assert sorted(quoted) == ["a.json", "b.json", "c.json"]
    (tmp_path / "a.json").write_text(json.dumps({"dirty": True}))
    (tmp_path / "b.json").write_text(json.dumps({"dirty": False}))
    assert dirty_records(quoted, tmp_path) == {"a.json": "dirty: True", "c.json": "missing"}


def test_records_awaiting_a_clean_run_are_quoted():
    quoted = quoted_records(book_pages())
    gone = [name for name in sorted(AWAITING_CLEAN_RUN) if name not in quoted]
    assert not gone, f"{gone} no longer quoted: drop them from dirty_records"


def test_a_record_rewriting_itself_leaves_the_tree_clean(tmp_path):
    """A script that rewrites its tracked record after every run: that file alone is not dirt."""
    import subprocess

    from lenet_core.records import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "record.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-qm", "start")
    (tmp_path / "record.json").write_text('{"runs": 1}')
    assert git_commit(tmp_path, ignore=tmp_path / "record.json")[1] is False
    assert git_commit(tmp_path)[1] is True
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path, ignore=tmp_path / "record.json")[1] is True
