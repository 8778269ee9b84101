"""Execute notebooks in place, the way they are committed: ``python -m tools.run_notebook book/ch01_mnist.ipynb``.

- runs every cell top to bottom in a fresh kernel of this Python (``LENET_MNIST_DIR`` defaults to
  ``../shared/mnist``), with a 20-minute limit per cell;
- drops stored widget state (the HTML book shows a static figure beside each widget instead, and the
  widget JavaScript would otherwise be fetched from the internet);
- refuses to save a notebook with an error (outside cells tagged ``raises-exception``) or anything
  written to stderr, so warnings never end up in the book.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def problems(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        allowed = "raises-exception" in cell.metadata.get("tags", [])
        for out in cell.get("outputs", []):
            if out.output_type == "error" and not allowed:
                found.append(f"cell {i}: {out.ename}: {out.evalue}")
            if out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {i}: stderr: {out.text[:300]!r}")
    return found


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    env_dir = REPO.parent / "shared" / "mnist"
    if not os.environ.get("LENET_MNIST_DIR") and env_dir.is_dir():
        os.environ["LENET_MNIST_DIR"] = str(env_dir)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    found = problems(nb)
    if found:
        sys.exit(f"{path}: not saved, fix these first:\n  " + "\n  ".join(found))
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - start:.0f}s and saved")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    for p in parser.parse_args().notebooks:
        run(p)
