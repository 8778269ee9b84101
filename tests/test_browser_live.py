"""The book's live pages in Chromium: LeNet-5 in JavaScript checked against lenet_core, the digit
playground, and the explorers of chapters 2 and 3.

The HTML is the test run's one build (fixture ``book_build``), served on 127.0.0.1 and also opened
from disk (file://), with every request that would leave the machine refused (as in
tests/test_browser.py, whose Chromium and flags this reuses).

- Parity: the JavaScript model's logits for the first 1,000 MNIST test digits equal lenet_core's
  float32 logits to 1e-4 (max abs); its accuracy over all 10,000 equals lenet_core's (the digits
  are handed to the page from here, in chunks; the book ships only 300); its Integrated Gradients
  for 20 digits (three baselines, two rules, several step counts and classes) equal
  ``lenet_core.attribution.integrated_gradients`` to 1e-4 of their L1 norm.
- The exported weights (book/_static/live/lenet5_weights.js) are regenerated in memory and must
  equal the committed file byte for byte.
- Interaction: mouse strokes (a vertical bar, then a closed loop) change the shown prediction and
  probabilities; the steps slider, moved with the keyboard, changes the shown completeness gap;
  nothing on the page moves while it updates.
- Every live page loads over HTTP and from file:// with no console error.

Screenshots of every state go to ``_build/screenshots/live/`` (git-ignored): look at them.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from conftest import CHROMIUM, REPO, SCREENSHOTS, is_local
from lenet_core import LeNet5, load_weights
from lenet_core.attribution import integrated_gradients, make_baseline
from lenet_core.data import prepare
from tools import export_weights_js

SHOTS = SCREENSHOTS / "live"
LIVE_PAGES = ["book/playground", "book/ch02_convolution", "book/ch03_pooling"]
WEIGHTS = REPO / "book" / "weights" / "lenet5.npz"


def _b64(array) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode("ascii")


@pytest.fixture(scope="module")
def chromium(browser):
    """The run's Chromium (tests/conftest.py); screenshots of this module go to _build/screenshots/live/."""
    if browser is None:
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium (apt-get install -y chromium)", pytrace=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    return browser


class LivePage:
    """One page in a fresh context that refuses non-local requests and records console errors."""

    def __init__(self, browser, url: str, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.problems: list[str] = []
        self.outside: list[str] = []

        def refuse_outside(route):
            if is_local(route.request.url):
                route.continue_()
            else:
                self.outside.append(route.request.url)
                route.abort()

        self.context.route("**/*", refuse_outside)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"uncaught JavaScript error: {e}"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 else None)
        self.page.on("request", lambda r: None if is_local(r.url) else self.outside.append(r.url))
        self.page.goto(url, wait_until="load", timeout=30_000)

    def shot(self, name: str, selector: str = "#lenet-playground"):
        """A screenshot of the live part of the page (full-page shots repeat the sticky header)."""
        self.page.locator(selector).screenshot(path=str(SHOTS / f"{name}.png"))

    def check_clean(self, where: str):
        assert not self.outside, f"{where}: requests leaving the machine: {sorted(set(self.outside))}"
        assert not self.problems, f"{where}:\n" + "\n".join(self.problems)

    def close(self):
        self.context.close()


@pytest.fixture
def open_page(chromium):
    pages = []

    def _open(url, **kwargs):
        page = LivePage(chromium, url, **kwargs)
        pages.append(page)
        return page

    yield _open
    for page in pages:
        page.close()


# ----------------------------------------------------------------------------------------------
# The exported assets
# ----------------------------------------------------------------------------------------------

def test_exported_weights_are_fresh(mnist):
    exporter = export_weights_js
    expected = exporter.weights_script(WEIGHTS, mnist.x_train)
    committed = exporter.OUT.read_text()
    assert committed == expected, (f"{exporter.OUT} is stale (it is not what {WEIGHTS.name} exports to): "
                                   "run `python -m tools.export_weights_js`")


def test_build_writes_the_stored_digits(book_build, mnist):
    text = (book_build.html / "_static" / "live" / "mnist_test_digits.js").read_text()
    payload = json.loads(text.split("window.MNIST_TEST_DIGITS = ", 1)[1].rstrip().rstrip(";"))
    pixels = np.frombuffer(base64.b64decode(payload["pixels"]["data"]), dtype=np.uint8).reshape(-1, 28, 28)
    assert payload["count"] == len(pixels) == 300
    np.testing.assert_array_equal(pixels, mnist.x_test[:300])
    assert payload["labels"] == mnist.y_test[:300].tolist()


def test_export_script_check_and_errors(tmp_path, capsys):
    exporter = export_weights_js
    out = tmp_path / "weights.js"
    out.write_text("window.LENET5_WEIGHTS = {};\n")
    assert exporter.main(["--out", str(out), "--check"]) == 1                 # stale: says so, writes nothing
    assert "stale" in capsys.readouterr().err and out.read_text() == "window.LENET5_WEIGHTS = {};\n"
    assert exporter.main(["--out", str(out)]) == 0
    assert exporter.main(["--out", str(out), "--check"]) == 0
    assert out.read_text() == exporter.OUT.read_text()
    assert exporter.main(["--weights", str(tmp_path / "none.npz"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{"C1.W": np.zeros((6, 1, 5, 5), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        exporter.weights_script(bad)


def test_build_without_mnist_writes_empty_digit_scripts(tmp_path, monkeypatch):
    """No MNIST where the book is built: the digit scripts say null (the pages fall back), no error."""
    import lenet_core.data
    from lenet_core.data import MNISTError

    def missing(*args, **kwargs):
        raise MNISTError("t10k-images-idx3-ubyte.gz: file not found")

    monkeypatch.setattr(lenet_core.data, "load_mnist", missing)
    from tools import live_assets
    app = type("App", (), {"outdir": str(tmp_path), "builder": type("B", (), {"format": "html"})()})()
    live_assets._write_digits(app, None)
    for name, variable in (("mnist_test_digits.js", "MNIST_TEST_DIGITS"), ("mnist_explorer_digits.js", "MNIST_EXPLORER_DIGITS")):
        assert f"window.{variable} = null;" in (tmp_path / "_static" / "live" / name).read_text()


# ----------------------------------------------------------------------------------------------
# Parity with lenet_core
# ----------------------------------------------------------------------------------------------

PARITY_JS = """(args) => {
    const L = window.LeNet5Live;
    const model = window.__parityModel || (window.__parityModel = L.loadModel());
    const bytes = L.bytesFromBase64(args.pixels), n = bytes.length / 784;
    const preds = [], logits = [];
    for (let i = 0; i < n; i++) {
        const z = L.logits(model, L.prepare(bytes.subarray(i * 784, (i + 1) * 784)));
        preds.push(L.argmax(z));
        if (i < args.keep) logits.push(Array.from(z));
    }
    return {preds, logits};
}"""

IG_JS = """(args) => {
    const L = window.LeNet5Live, model = L.loadModel();
    const bytes = L.bytesFromBase64(args.pixels);
    return args.cases.map((c, i) => {
        const x = L.prepare(bytes.subarray(i * 784, (i + 1) * 784));
        const r = L.integratedGradients(model, x, c.target, L.makeBaseline(model, c.baseline, x), c.steps, c.method);
        return {attributions: Array.from(r.attributions), delta: r.delta};
    });
}"""


def test_javascript_logits_and_accuracy_equal_lenet_core(open_page, site, mnist):
    x_test, y_test = mnist.x_test, mnist.y_test
    model = load_weights(LeNet5(), WEIGHTS)                         # float32, as trained
    chunk = 1000
    ours = np.concatenate([model.forward(prepare(x_test[i:i + chunk])) for i in range(0, len(x_test), chunk)])
    live = open_page(f"{site}/book/playground.html")
    preds, logits = [], []
    for i in range(0, len(x_test), chunk):
        out = live.page.evaluate(PARITY_JS, {"pixels": _b64(x_test[i:i + chunk]), "keep": 1000 if i == 0 else 0})
        preds += out["preds"]
        logits += out["logits"]
    live.check_clean("playground (parity)")
    logits, preds = np.array(logits), np.array(preds)
    diff = float(np.abs(logits - ours[:1000]).max())
    acc_js, acc_np = float((preds == y_test).mean()), float((ours.argmax(1) == y_test).mean())
    disagree = int((preds != ours.argmax(1)).sum())
    print(f"\nparity: max |JS - lenet_core float32| logit over 1,000 digits = {diff:.2e}; "
          f"accuracy JS {acc_js:.4f}, lenet_core {acc_np:.4f} over 10,000; {disagree} different predictions")
    assert logits.shape == (1000, 10) and len(preds) == len(y_test)
    assert diff <= 1e-4, f"JavaScript logits differ from lenet_core's by up to {diff:.3g} (> 1e-4)"
    assert acc_js == acc_np, f"accuracy in the browser {acc_js:.4f} != lenet_core's {acc_np:.4f}"


QUADRATURE_JS = """(cases) => cases.map(([method, steps]) => {
    const q = window.LeNet5Live.quadrature(method, steps);
    return [Array.from(q.alphas), Array.from(q.weights)];
})"""


def test_javascript_quadrature_equals_lenet_core(open_page, site):
    from lenet_core.attribution import METHODS, quadrature

    cases = [(method, steps) for method in METHODS for steps in (2, 3, 5, 16, 50, 64, 199, 200)]
    live = open_page(f"{site}/book/playground.html")
    got = live.page.evaluate(QUADRATURE_JS, cases)
    live.check_clean("playground (quadrature)")
    for (method, steps), (alphas, weights) in zip(cases, got):
        want_a, want_w = quadrature(method, steps)
        np.testing.assert_allclose(alphas, want_a, rtol=0, atol=1e-14, err_msg=f"{method}, {steps} steps: points")
        np.testing.assert_allclose(weights, want_w, rtol=1e-7, atol=0, err_msg=f"{method}, {steps} steps: weights")


def ig_cases(y_test):
    """20 digits: the four baselines of chapter 9, three rules, several step counts, the
    true class and another."""
    settings = [("black", "riemann_trapezoid", 50), ("blur", "gausslegendre", 64), ("mean", "riemann_trapezoid", 20),
                ("uniform", "gausslegendre", 16), ("blur", "trapezoid", 8)]
    cases = []
    for i in range(20):
        baseline, method, steps = settings[i % len(settings)]
        target = int(y_test[i]) if i % 2 == 0 else int((y_test[i] + 3) % 10)
        cases.append({"baseline": baseline, "method": method, "steps": steps, "target": target})
    return cases


def test_javascript_integrated_gradients_equal_lenet_core(open_page, site, mnist):
    model = load_weights(LeNet5(dtype=np.float64), WEIGHTS)         # chapter 9 computes IG in float64
    cases = ig_cases(mnist.y_test)
    xs = prepare(mnist.x_test[:20], dtype=np.float64)
    live = open_page(f"{site}/book/playground.html")
    results = live.page.evaluate(IG_JS, {"pixels": _b64(mnist.x_test[:20]), "cases": cases})
    live.check_clean("playground (IG parity)")
    worst = 0.0
    for i, (case, got) in enumerate(zip(cases, results)):
        x = xs[i]
        kwargs = {"mean": {"images": mnist.x_train[:10000]}, "blur": {"sigma": 3.0},
                  "uniform": {"seed": 0}}.get(case["baseline"], {})
        baseline = make_baseline(case["baseline"], x, **kwargs)
        ig, delta = integrated_gradients(model, x, case["target"], baseline, steps=case["steps"], method=case["method"])
        js = np.array(got["attributions"]).reshape(ig.shape)
        l1 = float(np.abs(ig).sum())
        rel = float(np.abs(js - ig).max()) / l1
        worst = max(worst, rel, abs(got["delta"] - delta) / l1)
        assert rel <= 1e-4, f"digit {i} {case}: JS attributions differ by {rel:.3g} of their L1 norm"
        assert abs(got["delta"] - delta) <= 1e-4 * l1, f"digit {i} {case}: gap {got['delta']} != {delta}"
    print(f"\nIG parity: worst |JS - lenet_core| / L1 over 20 digits = {worst:.2e}")


# ----------------------------------------------------------------------------------------------
# The playground, as a reader uses it
# ----------------------------------------------------------------------------------------------

LAYOUT_JS = """() => Object.fromEntries(["pg-draw", "pg-probs", "pg-c1", "pg-c3", "pg-ig-panel", "pg-gap",
    "pg-seen"].map(id => { const r = document.getElementById(id).getBoundingClientRect();
    return [id, [r.x + scrollX, r.y + scrollY, r.width, r.height].map(Math.round)]; }))"""


def _state(page):
    page.wait_for_selector("#pg-gap[data-state=ready]", timeout=20_000)
    return page.evaluate("""() => ({
        prediction: document.getElementById("pg-prediction").innerText,
        probs: [...document.querySelectorAll("#pg-probs .pg-value")].map(e => Number(e.innerText)),
        gap: document.getElementById("pg-gap").innerText,
        predicted: window.LeNet5Playground.prediction,
    })""")


def _stroke(page, points):
    """Drag the mouse through grid points (28x28 grid units) on the drawing canvas."""
    canvas = page.locator("#pg-draw")
    canvas.scroll_into_view_if_needed()                  # a screenshot may have scrolled it away
    box = canvas.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"], box
    to_px = [(box["x"] + x / 28 * box["width"], box["y"] + y / 28 * box["height"]) for x, y in points]
    page.mouse.move(*to_px[0])
    page.mouse.down()
    for px in to_px[1:]:
        page.mouse.move(*px, steps=3)
    page.mouse.up()


def test_playground_draw_predict_explain(open_page, site):
    live = open_page(f"{site}/book/playground.html")
    page = live.page
    page.locator("#lenet-playground").scroll_into_view_if_needed()
    empty = _state(page)
    layout = page.evaluate(LAYOUT_JS)
    live.shot("playground-1-empty")

    _stroke(page, [(14, 4), (14, 14), (14, 24)])                               # a vertical bar
    bar = _state(page)
    live.shot("playground-2-vertical-bar")
    assert bar["prediction"].startswith("Prediction: 1"), bar
    assert bar["probs"] != empty["probs"] and abs(sum(bar["probs"]) - 1) < 0.01
    assert max(bar["probs"]) == bar["probs"][1]

    page.click("#pg-clear")
    angles = np.linspace(0, 2 * np.pi, 25)
    _stroke(page, [(14 + 6 * np.sin(a), 14 - 9 * np.cos(a)) for a in angles])  # a closed loop
    loop = _state(page)
    live.shot("playground-3-closed-loop")
    assert loop["prediction"].startswith("Prediction: 0"), loop
    assert loop["probs"] != bar["probs"] and max(loop["probs"]) == loop["probs"][0]
    assert page.evaluate(LAYOUT_JS) == layout, "the page's panels moved while it updated"

    page.focus("#pg-steps")                                                    # keyboard: 50 -> 2 steps
    page.keyboard.press("Home")
    few = _state(page)
    live.shot("playground-4-two-steps")
    assert "2 steps" in few["gap"] and few["gap"] != loop["gap"], (loop["gap"], few["gap"])

    page.select_option("#pg-baseline", "blur")
    page.select_option("#pg-method", "gausslegendre")
    blurred = _state(page)
    assert "blur baseline" in blurred["gap"] and blurred["gap"] != few["gap"]

    page.click("#pg-undo")                                                     # the loop is undone,
    assert _state(page)["prediction"].startswith("Draw a digit")
    page.click("#pg-undo")                                                     # then the Clear
    assert _state(page)["prediction"].startswith("Prediction: 1")

    page.select_option("#pg-digit", "0")                                       # test digit 0: a 7
    stored = _state(page)
    live.shot("playground-5-stored-digit")
    assert stored["prediction"].startswith("Prediction: 7")
    assert page.evaluate(LAYOUT_JS) == layout, "the page's panels moved when a stored digit was picked"
    live.check_clean("playground")


def test_playground_keyboard_and_phone_width(open_page, site):
    live = open_page(f"{site}/book/playground.html", width=375, height=800)
    page = live.page
    page.focus("#pg-draw")
    page.keyboard.press("ArrowUp")
    for _ in range(9):
        page.keyboard.press("ArrowUp")
    page.keyboard.press("Space")                                               # pen down at (14, 4)
    for _ in range(19):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")                                               # pen up at (14, 23)
    state = _state(page)
    live.shot("playground-6-phone-keyboard")
    assert state["prediction"].startswith("Prediction: 1"), state
    wide = page.evaluate("""() => Math.max(...[...document.querySelectorAll("#lenet-playground *")]
                                   .map(e => e.getBoundingClientRect().right))""")
    assert wide <= 375, f"the playground reaches {wide}px, past the right edge of a 375px phone screen"
    live.check_clean("playground at phone width")


# ----------------------------------------------------------------------------------------------
# Every live page, over HTTP and from disk
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", LIVE_PAGES)
def test_live_page_loads_over_http_and_from_disk(entry, open_page, site, book_build):
    for where, url in (("http", f"{site}/{entry}.html"), ("file", (book_build.html / f"{entry}.html").as_uri())):
        live = open_page(url)
        ready = live.page.evaluate("""() => ({
            playground: !!window.LeNet5Playground, kernel: !!window.KernelExplorer, pool: !!window.PoolExplorer,
            model: !!(window.LeNet5Live || window.LiveExplorers)})""")
        live.check_clean(f"{entry} over {where}")
        assert ready["model"], f"{entry} over {where}: the live scripts did not load: {ready}"


# ----------------------------------------------------------------------------------------------
# The explorers of chapters 2 and 3 (their arithmetic is lenet_core's)
# ----------------------------------------------------------------------------------------------

_CANVAS_PLACES = """() => [...document.querySelectorAll("[data-explorer=kernel] canvas")].map(c => {
    const r = c.getBoundingClientRect(); return [r.x + scrollX, r.y + scrollY].map(Math.round); })"""


def _canvas(page, selector):
    return page.evaluate("(s) => document.querySelector(s).toDataURL()", selector)


def test_kernel_explorer_edits_change_the_feature_map(open_page, site, mnist):
    from lenet_core import filters

    live = open_page(f"{site}/book/ch02_convolution.html")
    page = live.page
    root = page.locator("[data-explorer=kernel]")
    root.scroll_into_view_if_needed()
    root.screenshot(path=str(SHOTS / "ch02-kernel-1-sobel-x.png"))
    digit = mnist.x_train[int(np.flatnonzero(mnist.y_train == 0)[0])] / 255       # the explorer's first digit
    kernel = filters.classic_kernels()["Sobel x"].copy()
    before = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)")).reshape(28, 28)
    np.testing.assert_allclose(before, filters.filter2d(digit, kernel), atol=1e-12)
    picture = _canvas(page, "[data-explorer=kernel] .kx-view figure:last-child canvas")

    root.locator(".kx-grid input").nth(4).fill("3")                               # the centre cell
    kernel[1, 1] = 3
    after = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)")).reshape(28, 28)
    root.screenshot(path=str(SHOTS / "ch02-kernel-2-edited.png"))
    np.testing.assert_allclose(after, filters.filter2d(digit, kernel), atol=1e-12)
    assert _canvas(page, "[data-explorer=kernel] .kx-view figure:last-child canvas") != picture, \
        "editing a kernel cell did not change the drawn feature map"

    where = page.evaluate(_CANVAS_PLACES)
    root.locator("select").nth(2).select_option("5")                              # 3x3 -> 5x5, padded
    assert root.locator(".kx-grid input").count() == 25
    assert page.evaluate(_CANVAS_PLACES) == where, "the explorer's pictures moved when the kernel grew"
    root.locator("select").nth(1).select_option("Gaussian 5x5 (\u03c3=1)")
    gauss = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)")).reshape(28, 28)
    np.testing.assert_allclose(gauss, filters.filter2d(digit, filters.classic_kernels()["Gaussian 5x5 (σ=1)"]), atol=1e-12)
    root.screenshot(path=str(SHOTS / "ch02-kernel-3-gaussian-5x5.png"))
    live.check_clean("chapter 2's kernel explorer")


def test_pool_explorer_forward_and_backward(open_page, site, mnist):
    from lenet_core import functional as Fn

    live = open_page(f"{site}/book/ch03_pooling.html")
    page = live.page
    root = page.locator("[data-explorer=pool]")
    root.scroll_into_view_if_needed()
    root.screenshot(path=str(SHOTS / "ch03-pool-1-avg-2-2.png"))
    x = (mnist.x_train[0] / 255)[None, None]
    selects = root.locator("select")
    for k, s, mode in ((2, 2, "avg"), (3, 2, "max"), (3, 1, "avg"), (2, 3, "max")):
        selects.nth(0).select_option(str(k))
        selects.nth(1).select_option(str(s))
        selects.nth(2).select_option(mode)
        selects.nth(3).select_option("all")
        got = page.evaluate("() => ({out: Array.from(LiveExplorers.pool[0].out), dx: Array.from(LiveExplorers.pool[0].dx)})")
        out, cache = Fn.pool2d(x, k, s, mode)
        dx = Fn.pool2d_backward(np.ones_like(out), cache, x.shape, k, s, mode)
        np.testing.assert_allclose(np.array(got["out"]), out.ravel(), atol=1e-12, err_msg=f"forward k={k} s={s} {mode}")
        np.testing.assert_allclose(np.array(got["dx"]), dx.ravel(), atol=1e-12, err_msg=f"backward k={k} s={s} {mode}")
    root.screenshot(path=str(SHOTS / "ch03-pool-2-max-2-3.png"))
    canvas = root.locator("canvas").nth(1)
    canvas.focus()
    page.keyboard.press("ArrowRight")                                            # one output cell, by keyboard
    one = np.array(page.evaluate("() => Array.from(LiveExplorers.pool[0].dx)"))
    cell = page.evaluate("() => LiveExplorers.pool[0].cell")
    assert one.sum() == 1 and f"at output ({cell['i']}, {cell['j']})" in root.inner_text()
    out, cache = Fn.pool2d(x, 2, 3, "max")
    dout = np.zeros_like(out)
    dout[0, 0, cell["i"], cell["j"]] = 1
    np.testing.assert_allclose(one, Fn.pool2d_backward(dout, cache, x.shape, 2, 3, "max").ravel(), atol=1e-12)
    root.screenshot(path=str(SHOTS / "ch03-pool-3-one-cell.png"))
    live.check_clean("chapter 3's pooling explorer")
