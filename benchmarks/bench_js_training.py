"""Time LeNet-5 training in JavaScript, in Chromium, as the playground's Train panel runs it.

The playground (book/playground.md) trains book/_static/live/lenet5.js in a Web Worker built from
a Blob, on the 9,000 training digits the build writes into the page (x_train[:9000]; 1,000 more,
x_train[9000:10000], to validate on). This script runs that very code the same way: it writes the
page's assets into a temporary folder (the weights script, lenet5.js, and the digits scripts from
``tools.export_weights_js.digits_scripts``, as the book build does), opens a page from disk in Debian's
Chromium, starts the worker exactly as the page does, trains ONE pass over the 9,000 digits with the
page's default settings (SGD, lr 0.05, momentum 0.9, batch 32, no weight decay) from the initial
weights of each seed, and records:

- images per second: the worker's own count (training time only) and the wall-clock rate (with
  the validations every 1,000 images and the reports to the page);
- the accuracy on the page's 300 stored test digits (x_test[:300]) after that one pass, and the
  last validation accuracy, per seed, with their mean and sample standard deviation.

    python -m benchmarks.bench_js_training                                      # results/bench_js_training.json
    python -m benchmarks.bench_js_training --quick --out /tmp/bench_js.json     # a smoke run (never to results/)

Speed is not a test: no test reads these numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lenet_core.data import load_mnist
from lenet_core.records import machine_info, write_record
from tools.export_weights_js import digits_scripts

REPO = Path(__file__).resolve().parents[1]

LIVE = REPO / "book" / "_static" / "live"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SETTINGS = {"lr": 0.05, "batch": 32, "momentum": 0.9, "weightDecay": 0}

PAGE = """<!doctype html><meta charset="utf-8"><title>bench</title>
<script src="lenet5_weights.js"></script><script src="mnist_test_digits.js"></script>
<script src="mnist_train_digits.js"></script><script src="lenet5.js"></script>"""

# the worker as the playground builds it (playground.js, TrainPanel.startWorker), trained until `images`
RUN_JS = """async ([settings, images]) => {
    const L = window.LeNet5Live, d = window.MNIST_TRAIN_DIGITS, t = window.MNIST_TEST_DIGITS;
    const pixels = L.decodeDigits(d.pixels), labels = L.bytesFromBase64(d.labels.data), n = Math.min(d.train, images);
    const data = {train: pixels.subarray(0, n * 784), trainLabels: labels.subarray(0, n),
                  val: pixels.subarray(d.train * 784, d.count * 784), valLabels: labels.subarray(d.train, d.count),
                  gallery: L.bytesFromBase64(t.pixels.data).subarray(0, 24 * 784), galleryLabels: Uint8Array.from(t.labels.slice(0, 24))};
    const src = "var LeNet5Live = (" + window.LeNet5LiveFactory + ")(self);\\n(" + L.trainerWorkerMain + ")(self, LeNet5Live);\\n";
    const worker = new Worker(URL.createObjectURL(new Blob([src], {type: "text/javascript"})));
    let last = null, first = null;
    const done = new Promise(resolve => { worker.onmessage = e => {
        const m = e.data;
        if (m.reset) { first = performance.now(); worker.postMessage({cmd: "play", until: n}); return; }
        last = m; last.vals_all = (last.vals_all || []);
        if (!m.playing && m.seen >= n) resolve(performance.now());
    }; });
    const vals = [];
    const collect = worker.onmessage;
    worker.onmessage = e => { vals.push(...e.data.vals); collect(e); };
    worker.postMessage({cmd: "init", data, settings});
    const end = await done;
    worker.terminate();
    const model = {};
    L.PARAMS.forEach(name => { const p = last.params[name], ref = L.loadModel()[name];
        model[name] = {W: p.W, b: p.b, out: ref.out, in: ref.in, k: ref.k}; });
    const test = L.bytesFromBase64(t.pixels.data), testLabels = Uint8Array.from(t.labels);
    const r = L.evaluate(model, test, testLabels);
    return {seen: last.seen, steps: last.steps, rate: last.rate, seconds: (end - first) / 1000,
            test_accuracy: r.accuracy, test_digits: testLabels.length, vals};
}"""
from benchmarks.common import parse_args


def write_assets(folder: Path, mnist) -> Path:
    """The page's scripts in `folder`, as the book build writes them, and a page that loads them."""
    for name in ("lenet5.js", "lenet5_weights.js"):
        shutil.copy(LIVE / name, folder / name)
    for name, text in digits_scripts(mnist).items():
        (folder / name).write_text(text)
    (folder / "bench.html").write_text(PAGE)
    return folder / "bench.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the initial weights and order")
    args = parse_args(parser, argv, "bench_js_training.json", "300 images, one seed: checks the code path only")
    out = args.out
    if not Path(CHROMIUM).is_file():
        print(f"error: {CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    mnist = load_mnist(download=False)
    images = 300 if args.quick else 9000
    seeds = args.seeds[:1] if args.quick else args.seeds
    load_before = os.getloadavg()[0]
    runs = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        page_path = write_assets(Path(tmp), mnist)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        version = browser.version
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        for seed in seeds:
            started = time.perf_counter()
            r = page.evaluate(RUN_JS, [{**SETTINGS, "seed": seed}, images])
            r["seed"] = seed
            runs.append(r)
            print(f"seed {seed}: {r['seen']} images in {r['seconds']:.1f} s ({r['rate']:.0f} images/s training, "
                  f"{r['seen'] / r['seconds']:.0f} wall-clock); test accuracy {r['test_accuracy']:.4f} on "
                  f"{r['test_digits']} stored digits; last validation accuracy {r['vals'][-1][1]:.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        browser.close()
    if errors:
        print("error: the page reported " + "; ".join(errors), file=sys.stderr)
        return 1

    def stats(values):
        return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
                "all": values}

    results = {
        "protocol": {"train_images": images, "passes": 1, "val_images": 1000, "test_digits": runs[0]["test_digits"],
                     "settings": SETTINGS, "seeds": seeds, "where": "a Web Worker built from a Blob, page from file://",
                     "chromium": version, "sd": "sample standard deviation (ddof=1) over seeds"},
        "images_per_s_training": stats([r["rate"] for r in runs]),
        "images_per_s_wall_clock": stats([r["seen"] / r["seconds"] for r in runs]),
        "test_accuracy_after_one_pass": stats([r["test_accuracy"] for r in runs]),
        "val_accuracy_after_one_pass": stats([r["vals"][-1][1] for r in runs]),
        "val_curves": {str(r["seed"]): r["vals"] for r in runs},
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "quiet_machine": False,
        "machine_cores": machine_info().get("cores"),
    }
    path = write_record(out, results, seed=seeds, quick=args.quick)
    acc = results["test_accuracy_after_one_pass"]
    print(f"wrote {path}: test accuracy after one pass {acc['mean']:.4f}"
          + (f" +- {acc['sd']:.4f}" if acc["sd"] is not None else "")
          + f", {results['images_per_s_training']['mean']:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
