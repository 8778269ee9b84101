"""tools/prose_check.py can fail: hand-typed, stale and unresolvable figures are caught."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lenet_core.records import SOURCE_SUFFIX, RecordError, glue_all, record_figure
from tools import prose_check as pc


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"quick": False, "dirty": False,
                                "results": {"acc": [0.9912, 0.9920], "sec": 7.84}}))
    return path


def test_record_figure_formats_and_refuses(record):
    assert record_figure(f"{record} results.acc.-1 .2%") == "99.20%"
    assert record_figure(f"{record} results.sec") == "7.84"
    with pytest.raises(RecordError, match="no 'results.nope'"):
        record_figure(f"{record} results.nope .1f")
    with pytest.raises(RecordError, match="FILE KEY"):
        record_figure(f"{record}")
    with pytest.raises(RecordError, match="not a figure"):
        record_figure(f"{record} results.acc")
    with pytest.raises(RecordError, match="cannot read"):
        record_figure(f"{record.parent / 'missing.json'} results.sec .1f")
    record.write_text(json.dumps({"quick": False, "results": {"Integrated Gradients": {"auc": 0.125}}}))
    assert record_figure(f"{record} results.Integrated Gradients.auc .3f") == "0.125"   # spaces in a key
    record.write_text(json.dumps({"quick": True, "results": {"sec": 7.84}}))
    with pytest.raises(RecordError, match="--quick"):
        record_figure(f"{record} results.sec .2f")


def test_roles_resolve_and_dirty_records_need_acceptance(record):
    good = f"Accuracy **{{record}}`{record} results.acc.1 .2%`** after 10 epochs."
    assert pc.check_roles("page", good) == []
    (missing,) = pc.check_roles("page", f"took {{record}}`{record} results.nope .1f` s")
    assert "page:1" in missing and "results.nope" in missing
    (outside,) = pc.check_roles("README.md", good, in_book=False)
    assert "does not build" in outside
    record.write_text(json.dumps({"quick": False, "dirty": True, "results": {"acc": [0.99]}}))
    (dirty,) = pc.check_roles("page", f"{{record}}`{record} results.acc.0 .2%`")
    assert "dirty" in dirty
    assert pc.check_roles("page", f"{{record}}`{record} results.acc.0 .2%`",
                          dirty_ok={str(record)}) == []


def test_roles_in_code_are_examples():
    text = "Write ``{record}`nowhere.json results.x .1f` ``.\n```\n{record}`nowhere.json x`\n```\n"
    assert pc.check_roles("page", text) == []


def test_hand_typed_figures_are_found():
    text = ("One epoch takes 7.8 s, 1.7x PyTorch's time, at 17,341 images/s; accuracy 99.2%.\n"
            "The 9s read as 4s; one took 6.5s.\n"
            "A 28x28 digit, 5 x 5 kernels, 3 seeds, `--epochs 10` and\n```\ntook 9 s\n```\n"
            "90.27% (quoted), {glue:text}`acc:.2%` and {record}`headline.json results.x .2%`.\n")
    found = [p.split(": ")[1].split(" is ")[0] for p in
             pc.unregistered_figures("page", text, allowed={"90.27%"})]
    assert found == ["'7.8 s'", "'1.7x'", "'17,341 images/s'", "'99.2%'", "'6.5s'"]


def test_a_stale_figure_in_a_strict_page_fails(tmp_path, record):
    """A page whose typed figure replaced its role (or a role's figure typed back by hand)."""
    page = tmp_path / "page.md"
    page.write_text(f"We reach {{record}}`{record} results.acc.1 .2%` in 10 epochs.\n")
    settings = pc.Settings(strict=[pc.where_of(page)])
    assert pc.check_page(page, settings, in_book={pc.where_of(page)}) == []
    page.write_text("We reach 99.20% in 10 epochs.\n")
    (typed,) = pc.check_page(page, settings, in_book={pc.where_of(page)})
    assert "'99.20%' is typed by hand" in typed


def test_declared_figures_pass_and_stale_declarations_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("The seed paper's model stopped at 90.27%.\n")
    where = pc.where_of(page)
    declared = pc.Settings(strict=[where], figures={where: [{"figure": "90.27%", "why": "quote"}]})
    assert pc.check_page(page, declared, in_book={where}) == []
    page.write_text("The seed paper's model stopped early.\n")
    (stale,) = pc.check_page(page, declared, in_book={where})
    assert "not on the page any more" in stale


def test_markers_are_refused_outside_legacy_pages(tmp_path, record):
    page = tmp_path / "page.md"
    page.write_text(f"Accuracy 99.20%<!-- record: {record} results.acc.1 .2% -->.\n")
    where = pc.where_of(page)
    (marker,) = pc.check_page(page, pc.Settings(), in_book={where})
    assert "HTML-comment marker" in marker
    legacy = pc.Settings(strict=[where], legacy_markers=[where])
    assert pc.check_page(page, legacy, in_book={where}) == []
    page.write_text(f"Accuracy 99.42%<!-- record: {record} results.acc.1 .2% -->.\n")
    (drifted,) = pc.check_page(page, legacy, in_book={where})
    assert "'99.20%'" in drifted


def test_directive_bodies_are_prose_and_their_code_is_not():
    text = ("````{solution} ex-1\n:class: dropdown\n\nIt reached 99.2%.\n```python\nprint('9 s')\n```\n"
            "````\n```python\nx = '7.8 s'\n```\n")
    found = [p.split(": ")[1].split(" is ")[0] for p in pc.unregistered_figures("page", text)]
    assert found == ["'99.2%'"]


def _glue_output(name, plain):
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name}},
            "data": {"application/papermill.record/text/plain": plain}}


def test_glue_roles_must_name_glued_figures(tmp_path):
    path = tmp_path / "nb.ipynb"

    def write(role):
        path.write_text(json.dumps({"cells": [
            {"cell_type": "code", "metadata": {"tags": ["remove-cell"]},
             "source": ['glue_all({"acc": acc})'], "outputs": [_glue_output("acc", "0.9912")]},
            {"cell_type": "markdown", "source": [f"Accuracy {{glue:text}}`{role}:.2%`."]}]}))
    write("acc")
    assert pc.check_notebook_glue(path) == []
    write("accuracy")
    (missing,) = pc.check_notebook_glue(path)
    assert "'accuracy'" in missing


def test_older_record_glue_is_compared_with_the_record(tmp_path, record):
    """glue(name, record_value(...)) and records.glue_record, until the last chapter drops them."""
    path = tmp_path / "nb.ipynb"

    def write(stored):
        path.write_text(json.dumps({"cells": [
            {"cell_type": "code", "source": [f'glue("acc", record_value("{record}", "results.acc.0"), '
                                             'display=False)'],
             "outputs": [_glue_output("acc", stored)]},
            {"cell_type": "code", "source": ["for k in keys: glue_record(f'b_{k}', F, K)"],
             "outputs": [_glue_output("b_0", stored),
                         _glue_output("b_0" + SOURCE_SUFFIX, repr(f"{record} results.acc.0"))]}]}))
    write("0.9912")
    assert pc.check_notebook_glue(path) == []
    write("0.99")
    stale = pc.check_notebook_glue(path)
    assert len(stale) == 2 and all("re-execute" in p for p in stale)


def test_bookkeeping_counts_glue_lookups_and_nbval_comments(tmp_path):
    teaching = "acc = evaluate(model)\nprint(acc)\n"
    glue = ("# NBVAL_CHECK_OUTPUT\nfrom myst_nb import glue\nglue('a', acc, display=False)\n"
            "for k in ks:\n    glue(k, 1, display=False)\nx = record_value(\n    'h.json', 'k')\n")
    hidden = "glue_all({'a': acc,\n          'b': 2})\n"
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": "code", "metadata": {}, "source": [teaching + glue]},
        {"cell_type": "code", "metadata": {"tags": ["remove-cell"]}, "source": [hidden]},
        {"cell_type": "markdown", "metadata": {}, "source": ["glue(prose)"]}]}))
    assert pc.bookkeeping(path) == (7, 9)      # all but the two teaching lines
    settings = pc.Settings(bookkeeping_chapters=[path.name], bookkeeping_max_share=0.05)
    (problem,) = pc.check_bookkeeping(settings, repo=tmp_path)
    assert "7 of the 9" in problem


def test_glue_all_stores_python_numbers(monkeypatch):
    import numpy as np
    glued = {}
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display: glued.update({name: value}))
    glue_all({"a": np.float32(0.5), "n": np.int64(3), "s": "text"})
    assert glued == {"a": 0.5, "n": 3, "s": "text"} and type(glued["n"]) is int


def test_settings_refuse_an_undeclared_reason(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text("figures:\n  book/intro.md:\n    - {figure: '90.27%'}\n")
    with pytest.raises(ValueError, match="needs a figure and a why"):
        pc.load_settings(path)
    path.write_text("strikt: []\n")
    with pytest.raises(ValueError, match="unknown settings"):
        pc.load_settings(path)


def test_command_line_reports_and_exits(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("fine\n")
    run = subprocess.run([sys.executable, "-m", "tools.prose_check", str(page)], cwd=pc.REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([sys.executable, "-m", "tools.prose_check", str(tmp_path / "nope.md")],
                         cwd=pc.REPO, capture_output=True, text=True)
    assert run.returncode == 2 and "no such page" in run.stderr
    run = subprocess.run([sys.executable, "-m", "tools.prose_check", "--bookkeeping"], cwd=pc.REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "book/ch01_mnist.ipynb" in run.stdout


def test_nbval_honours_the_check_output_tag(tmp_path):
    """The tag `nbval-check-output` replaces the visible `# NBVAL_CHECK_OUTPUT` comment: with
    --nbval-lax (pyproject.toml) only the tagged cell's stale output fails."""
    def cell(i, tags):
        return {"cell_type": "code", "execution_count": i, "id": f"c{i}", "metadata": {"tags": tags},
                "source": [f"print({i} * 7)"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["41\n"]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({
        "cells": [cell(1, []), cell(2, ["nbval-check-output"])],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5}))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "-o", "addopts=", "--rootdir", str(tmp_path), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "1 failed, 1 passed" in run.stdout, run.stdout[-2000:]
    assert "Cell 1" in run.stdout and "14" in run.stdout              # the tagged cell: 14, not 41


def test_role_extension_renders_and_fails_the_build(tmp_path, record):
    pytest.importorskip("myst_parser")
    (tmp_path / "conf.py").write_text('extensions = ["myst_parser", "tools.record_role"]\n')
    (tmp_path / "index.md").write_text(f"# T\n\nAccuracy **{{record}}`{record} results.acc.1 .2%`**.\n")
    build = [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(tmp_path), str(tmp_path / "_b")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pc.REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(build, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert "Accuracy <strong>99.20%</strong>." in (tmp_path / "_b" / "index.html").read_text()
    (tmp_path / "index.md").write_text(f"# T\n\nAccuracy {{record}}`{record} results.nope .2%`.\n")
    run = subprocess.run(build, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode != 0
    assert "index:3" in run.stderr and "no 'results.nope'" in run.stderr


def test_settings_name_existing_pages_and_pages_still_on_markers(tmp_path):
    (tmp_path / "on_markers.md").write_text("It took 9 s<!-- fixed: a timeout -->.\n")
    (tmp_path / "converted.md").write_text("It took 9 s.\n")
    settings = pc.Settings(strict=["gone.md"], legacy_markers=["on_markers.md", "converted.md"])
    problems = pc.check_settings(settings, repo=tmp_path)
    assert len(problems) == 2
    assert "gone.md, which does not exist" in problems[0]
    assert "converted.md, which has no marker left" in problems[1]
