"""The book's live pages in Chromium: LeNet-5 in JavaScript checked against lenet_core, the digit
playground (the whole network linked, the Train panel, the state in the URL), and the explorers
of chapters 2 and 3.

The HTML is the test run's one build (fixture ``book_build``), served on 127.0.0.1 and also opened
from disk (file://), with every request that would leave the machine refused (as in
tests/test_browser.py, whose Chromium and flags this reuses).

- Parity: the JavaScript model's logits for the first 1,000 MNIST test digits equal lenet_core's
  float32 logits to 1e-4 (max abs); its accuracy over all 10,000 equals lenet_core's (the digits
  are handed to the page from here, in chunks; the book ships only 300); every layer (C1 to the
  logits) equals lenet_core's float64 layers to 1e-5 on 20 digits; the computation the page shows
  for a unit (weighted sum, bias, activation) is that unit's value; one and two steps of the
  page's SGD with momentum equal lenet_core.optim.SGD's from the same weights and batch to 1e-5;
  its Integrated Gradients for 20 digits equal ``lenet_core.attribution.integrated_gradients`` to
  1e-4 of their L1 norm.
- The exported weights (book/_static/live/lenet5_weights.js) are regenerated in memory and must
  equal the committed file byte for byte; the build's stored digits are MNIST's, pixel for pixel.
- Interaction: mouse strokes change the prediction; two fingers at once draw two strokes; at
  390x844 the prediction stays in view while drawing; a screen reader hears the prediction once,
  when the pen lifts; keyboard drawing moves diagonally and ends the stroke on leaving the grid;
  a short training run in the page lowers the loss in a Web Worker with no task over 100 ms on
  the page; a link restores a drawing and every setting exactly; nothing moves while it updates.
- Every live page loads over HTTP and from file:// with no console error and no request leaving
  the machine.

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
    for name, variable in (("mnist_test_digits.js", "MNIST_TEST_DIGITS"), ("mnist_explorer_digits.js", "MNIST_EXPLORER_DIGITS"),
                           ("mnist_train_digits.js", "MNIST_TRAIN_DIGITS")):
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

LAYOUT_JS = """() => Object.fromEntries(["pg-draw", "pg-probs", "pg-net", "pg-unit", "pg-ig-panel", "pg-gap",
    "pg-seen", "pg-train-panel"].map(id => { const r = document.getElementById(id).getBoundingClientRect();
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
    delta = page.evaluate("LeNet5Playground.ig.delta")                         # the gap keeps its sign
    shown = stored["gap"].split("δ = ")[1].split(" ")[0]
    assert shown[0] == ("−" if delta < 0 else "+") and float(shown[1:].replace("−", "-")) != 0, (delta, shown)
    assert page.evaluate("[-3.2e-6, 3e-6, 0, -0.25].map(v => LiveDraw.fmt(v, 4))") == \
        ["−3.2e−6", "+3.0e−6", "0", "−0.2500"]
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
    assert page.evaluate("LeNet5Playground.strokes[0].map(p => p.x)") == [14.5] * 20

    page.click("#pg-clear")                                                    # diagonals: a "\" then Tab away
    page.focus("#pg-draw")
    for _ in range(10):
        page.keyboard.press("Home")                                            # up-left, pen up: (4, 4)
    page.keyboard.press("Space")
    for _ in range(6):
        page.keyboard.press("PageDown")                                        # down-right
    for _ in range(6):
        page.keyboard.press("3")                                               # the keypad's down-right
    page.keyboard.press("Tab")                                                 # leaving the grid lifts the pen
    stroke = page.evaluate("LeNet5Playground.strokes[0].map(p => [p.x, p.y])")
    assert stroke == [[4.5 + i, 13.5 + i] for i in range(13)], stroke
    assert page.evaluate("LeNet5Playground.cursor.pen") is False
    _state(page)                                                               # IG ran: the stroke was ended
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
        if entry == "book/playground":                                     # a training step, in a worker
            live.page.click("#tr-step")
            live.page.wait_for_function("LeNet5Playground.train.status && LeNet5Playground.train.status.steps === 1",
                                        timeout=30_000)
            assert live.page.evaluate("LeNet5Playground.train.mode") == "worker", where
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

    cell = root.locator(".kx-grid input").nth(12)                                # cleared: shown 0, computed 0
    cell.fill("")
    blank = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)")).reshape(28, 28)
    gauss_kernel = filters.classic_kernels()["Gaussian 5x5 (σ=1)"].copy()
    gauss_kernel[2, 2] = 0
    np.testing.assert_allclose(blank, filters.filter2d(digit, gauss_kernel), atol=1e-12)
    assert cell.get_attribute("placeholder") == "0"
    cell.blur()
    assert cell.input_value() == "0"

    from lenet_core import functional
    selects = root.locator("select")
    for pad, stride in (("0", "1"), ("2", "2"), ("1", "3"), ("same", "2")):      # padding and stride
        selects.nth(3).select_option(pad)
        selects.nth(4).select_option(stride)
        got = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)"))
        p = 2 if pad == "same" else int(pad)
        want, _ = functional.conv2d(digit[None, None], gauss_kernel[None, None], np.zeros(1), stride=int(stride),
                                    padding=p)
        np.testing.assert_allclose(got, want.ravel(), atol=1e-12, err_msg=f"padding {pad}, stride {stride}")
        assert page.evaluate("LiveExplorers.kernel[0].size") == want.shape[-1]
    root.screenshot(path=str(SHOTS / "ch02-kernel-4-padding-stride.png"))

    root.locator("button", has_text="learned C1").click()                         # one click: LeNet-5's C1
    page.wait_for_function("LiveExplorers.kernel[0].learned")
    with np.load(WEIGHTS) as archive:
        learned = archive["C1.W"][0, 0].astype(np.float64)
    np.testing.assert_array_equal(np.array(page.evaluate("LiveExplorers.kernel[0].kernel")).reshape(5, 5), learned)
    got = np.array(page.evaluate("() => Array.from(LiveExplorers.kernel[0].response)"))
    want, _ = functional.conv2d(digit[None, None], learned[None, None], np.zeros(1), stride=2, padding=2)
    np.testing.assert_allclose(got, want.ravel(), atol=1e-12)
    assert root.locator("option[value='learned 5']").count() == 1
    root.screenshot(path=str(SHOTS / "ch02-kernel-5-learned-c1.png"))
    live.check_clean("chapter 2's kernel explorer")


def test_pool_explorer_forward_and_backward(open_page, site, mnist):
    from lenet_core import functional

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
        out, cache = functional.pool2d(x, k, s, mode)
        dx = functional.pool2d_backward(np.ones_like(out), cache, x.shape, k, s, mode)
        np.testing.assert_allclose(np.array(got["out"]), out.ravel(), atol=1e-12, err_msg=f"forward k={k} s={s} {mode}")
        np.testing.assert_allclose(np.array(got["dx"]), dx.ravel(), atol=1e-12, err_msg=f"backward k={k} s={s} {mode}")
    root.screenshot(path=str(SHOTS / "ch03-pool-2-max-2-3.png"))
    canvas = root.locator("canvas").nth(1)
    canvas.focus()
    page.keyboard.press("ArrowRight")                                            # one output cell, by keyboard
    one = np.array(page.evaluate("() => Array.from(LiveExplorers.pool[0].dx)"))
    cell = page.evaluate("() => LiveExplorers.pool[0].cell")
    assert one.sum() == 1 and f"at output ({cell['i']}, {cell['j']})" in root.inner_text()
    out, cache = functional.pool2d(x, 2, 3, "max")
    dout = np.zeros_like(out)
    dout[0, 0, cell["i"], cell["j"]] = 1
    np.testing.assert_allclose(one, functional.pool2d_backward(dout, cache, x.shape, 2, 3, "max").ravel(), atol=1e-12)
    root.screenshot(path=str(SHOTS / "ch03-pool-3-one-cell.png"))
    live.check_clean("chapter 3's pooling explorer")


# ----------------------------------------------------------------------------------------------
# Every layer, and the computation shown for a unit
# ----------------------------------------------------------------------------------------------

LAYER_NAMES = {"c1": "C1_tanh", "s2": "S2", "c3": "C3_tanh", "s4": "S4", "c5": "C5_tanh", "f6": "F6_tanh",
               "logits": "OUT"}


def core_layers(x: np.ndarray) -> dict[str, np.ndarray]:
    """lenet_core's float64 LeNet-5 (the book's weights) on prepared digits x (N, 1, 32, 32): the
    output of every layer the page shows, flattened per digit."""
    model = load_weights(LeNet5(dtype=np.float64), WEIGHTS)
    out, by_name = {}, {}
    for name, layer in model.layers.items():
        x = layer.forward(x)
        by_name[name] = x.reshape(len(x), -1)
    for key, name in LAYER_NAMES.items():
        out[key] = by_name[name]
    return out


LAYERS_JS = """(args) => {
    const L = window.LeNet5Live, model = L.loadModel(), bytes = L.bytesFromBase64(args.pixels);
    const out = [];
    for (let i = 0; i < bytes.length / 784; i++) {
        const a = L.forward(model, L.prepare(bytes.subarray(i * 784, (i + 1) * 784)));
        out.push(Object.fromEntries(args.keys.map(k => [k, Array.from(a[k])])));
    }
    return out;
}"""


def test_every_layer_equals_lenet_core(open_page, site, mnist):
    digits = mnist.x_test[:20]
    want = core_layers(prepare(digits, dtype=np.float64))
    live = open_page(f"{site}/book/playground.html")
    got = live.page.evaluate(LAYERS_JS, {"pixels": _b64(digits), "keys": list(LAYER_NAMES)})
    live.check_clean("playground (layers)")
    worst = {}
    for key in LAYER_NAMES:
        js = np.array([g[key] for g in got])
        assert js.shape == want[key].shape, (key, js.shape, want[key].shape)
        worst[key] = float(np.abs(js - want[key]).max())
    print(f"\nlayers: max |JS - lenet_core float64| over 20 digits: {worst}")
    assert max(worst.values()) <= 1e-5, worst


def _unit_point(page, layer: str, index: int):
    """The page coordinates of unit `index` of `layer` in the network view."""
    return page.evaluate("""([layer, index]) => {
        const l = LeNet5Live.LAYERS.find(l => l.key === layer), grid = {c5: [12, 10], f6: [12, 7], logits: [10, 1]}[layer];
        const hw = l.h * l.w, map = grid ? 0 : Math.floor(index / hw), local = grid ? index : index % hw;
        const cols = grid ? grid[1] : l.w, rows = grid ? grid[0] : l.h;
        const r = document.querySelectorAll(`#pg-net .nv-${layer} canvas`)[map].getBoundingClientRect();
        return [r.left + (local % cols + 0.5) / cols * r.width, r.top + (Math.floor(local / cols) + 0.5) / rows * r.height];
    }""", [layer, index])


def _shown_unit(page):
    return page.evaluate("""() => { const u = document.getElementById("pg-unit");
        return {layer: u.dataset.layer, index: Number(u.dataset.index), value: Number(u.dataset.value),
                sum: u.dataset.sum === undefined ? null : Number(u.dataset.sum),
                bias: u.dataset.bias === undefined ? null : Number(u.dataset.bias),
                z: u.dataset.z === undefined ? null : Number(u.dataset.z),
                softmax: u.dataset.softmax === undefined ? null : Number(u.dataset.softmax),
                terms: u.dataset.terms ? u.dataset.terms.split(",").map(Number) : null,
                text: u.innerText,
                windows: document.querySelectorAll("#pg-net .nv-window, #pg-net .nv-all").length,
                field: document.querySelectorAll("#pg-net .nv-field, #pg-net .nv-x .nv-all").length}; }""")


def test_hovering_a_unit_shows_the_computation_that_made_it(open_page, site, mnist):
    live = open_page(f"{site}/book/playground.html")
    page = live.page
    page.select_option("#pg-digit", "3")                                        # stored test digit 3
    want = core_layers(prepare(mnist.x_test[3:4], dtype=np.float64))
    units = [("c1", 2 * 784 + 10 * 28 + 12), ("s2", 5 * 196 + 7 * 14 + 6), ("c3", 9 * 100 + 4 * 10 + 5),
             ("s4", 15 * 25 + 2 * 5 + 3), ("c5", 57), ("f6", 40), ("logits", int(mnist.y_test[3]))]
    page.locator("#pg-net").scroll_into_view_if_needed()
    for layer, index in units:
        page.mouse.move(*_unit_point(page, layer, index))
        shown = _shown_unit(page)
        assert (shown["layer"], shown["index"]) == (layer, index), (layer, index, shown)
        value = float(want[layer][0, index])
        assert abs(shown["value"] - value) <= 1e-5, (layer, index, shown["value"], value)
        assert shown["windows"] >= 1 and shown["field"] == 1, (layer, shown)   # outlined below and in the input
        if layer in ("s2", "s4"):
            assert abs(sum(shown["terms"]) / 4 - shown["value"]) <= 1e-12, shown
        else:
            assert abs(shown["sum"] + shown["bias"] - shown["z"]) <= 1e-9, shown
            assert abs(shown["value"] - (shown["z"] if layer == "logits" else np.tanh(shown["z"]))) <= 1e-15, shown
        assert f"{abs(value):.4f}" in shown["text"], (shown["text"], value)      # the number is on the page
        if layer == "c3":
            live.shot("network-1-hover-c3")
    z = want["logits"][0]
    assert abs(shown["softmax"] - np.exp(z - z.max())[index] / np.exp(z - z.max()).sum()) <= 1e-9
    live.shot("network-2-hover-logit")

    page.focus("#pg-net")                                                        # keyboard: F6 -> C5 -> ...
    page.keyboard.press("Shift+ArrowLeft")
    assert _shown_unit(page)["layer"] == "f6"
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("Shift+ArrowLeft")                                       # S4
    before = _shown_unit(page)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")                                       # next map, same place
    after = _shown_unit(page)
    assert before["layer"] == after["layer"] == "s4" and after["index"] == before["index"] + 1 + 25, (before, after)
    assert abs(after["value"] - float(want["s4"][0, after["index"]])) <= 1e-5

    for mode in ("map", "layer", "global"):                                      # the colour scales
        page.select_option("#pg-scale", mode)
        lims = page.evaluate("LeNet5Playground.colourLimits")
        c1 = np.abs(want["c1"][0].reshape(6, -1))
        expected = {"map": c1.max(1), "layer": np.full(6, c1.max()),
                    "global": np.full(6, max(np.abs(want[k][0]).max() for k in LAYER_NAMES))}[mode]
        np.testing.assert_allclose(lims["c1"], expected, rtol=1e-9, err_msg=mode)
    live.shot("network-3-global-scale")
    live.check_clean("playground (network view)")


# ----------------------------------------------------------------------------------------------
# Training in the page
# ----------------------------------------------------------------------------------------------

SGD_JS = """(args) => {
    const L = window.LeNet5Live, bytes = L.bytesFromBase64(args.pixels), model = L.initModel(0);
    for (const name of L.PARAMS)                                      // lenet_core's initial weights
        for (const part of ["W", "b"]) model[name][part] = L.arrayFromBase64(args.weights[name + "." + part], "float64");
    let velocity = null;
    const out = [];
    for (const batch of args.batches) {
        const r = L.lossAndGradients(model, bytes, batch, args.labels);
        velocity = L.sgdStep(model, r.grads, velocity, args.settings);
        out.push({loss: r.loss, params: Object.fromEntries(L.PARAMS.flatMap(n =>
            [[n + ".W", Array.from(model[n].W)], [n + ".b", Array.from(model[n].b)]]))});
    }
    return out;
}"""


def test_javascript_sgd_steps_equal_lenet_core(open_page, site, mnist):
    """Two steps (the second uses the momentum) from lenet_core's initial weights (seed 3) on two
    batches of 16."""
    from lenet_core.losses import SoftmaxCrossEntropy
    from lenet_core.optim import SGD

    digits, labels = mnist.x_train[:64], mnist.y_train[:64]
    batches = [[3, 17, 40, 8, 22, 51, 0, 63, 12, 33, 9, 27, 45, 5, 38, 60], list(range(16, 32))]
    settings = {"lr": 0.05, "momentum": 0.9, "weightDecay": 5e-4}
    model = LeNet5(seed=3, dtype=np.float64)
    start = {name: p.copy() for name, p in model.parameters().items()}
    weights = {name: base64.b64encode(p.astype("<f8").tobytes()).decode("ascii") for name, p in start.items()}
    live = open_page(f"{site}/book/playground.html")
    got = live.page.evaluate(SGD_JS, {"pixels": _b64(digits), "labels": labels.tolist(), "batches": batches,
                                      "settings": settings, "weights": weights})
    live.check_clean("playground (SGD parity)")
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = SoftmaxCrossEntropy()
    for step, (batch, js) in enumerate(zip(batches, got), 1):
        loss = loss_fn(model.forward(prepare(digits[batch], dtype=np.float64)), labels[batch])
        model.backward(loss_fn.backward())
        opt.step(model.gradients())
        assert abs(js["loss"] - loss) <= 1e-9, (step, js["loss"], loss)
        worst = max(float(np.abs(np.array(js["params"][name]) - p.ravel()).max()) for name, p in model.parameters().items())
        moved = max(float(np.abs(np.array(js["params"][name]) - p.ravel()).max()) for name, p in start.items())
        print(f"\nSGD step {step}: max |JS - lenet_core| parameter {worst:.2e} (the step moved them by up to {moved:.2e})")
        assert worst <= 1e-5 and moved > 1e-3 and worst < 1e-6 * moved, (step, worst, moved)


LONGTASKS_JS = """() => { window.__longtasks = [];
    new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]); })
        .observe({type: "longtask"}); }"""


def test_training_in_the_page_lowers_the_loss_and_keeps_the_page_responsive(open_page, site):
    live = open_page(f"{site}/book/playground.html")
    page = live.page
    page.evaluate(LONGTASKS_JS)
    book = page.evaluate("Array.from(LeNet5Playground.bookModel.C1.W)")
    page.locator("#pg-train-panel").scroll_into_view_if_needed()
    page.fill("#tr-batch", "16")
    page.dispatch_event("#tr-batch", "change")
    page.click("#tr-play")
    page.wait_for_function("LeNet5Playground.train.reports > 0", timeout=30_000)
    started = page.evaluate("performance.now()")
    page.wait_for_function("LeNet5Playground.train.status && LeNet5Playground.train.status.steps >= 12", timeout=60_000)
    _stroke(page, [(14, 4), (14, 14), (14, 24)])                          # drawing while it trains
    page.wait_for_function("LeNet5Playground.train.status.steps >= 40", timeout=60_000)
    page.click("#tr-play")                                                # pause
    ended = page.evaluate("performance.now()")
    page.wait_for_timeout(300)
    train = page.evaluate("""() => { const t = LeNet5Playground.train; return {mode: t.mode, losses: t.losses,
        vals: t.vals, status: t.status.steps, batch: t.status.settings.batch, shown: LeNet5Playground.modelName,
        c1: Array.from(LeNet5Playground.model.C1.W), gallery: document.querySelectorAll("#tr-gallery figure").length,
        longtasks: window.__longtasks}; }""")
    live.shot("train-1-after-40-steps", "#pg-train-panel")
    losses = [v for _, v in train["losses"]]
    during = [d for t, d in train["longtasks"] if started <= t <= ended]
    print(f"\ntraining in the page ({train['mode']}): {len(losses)} steps, first 10 mean {np.mean(losses[:10]):.3f}, "
          f"last 10 mean {np.mean(losses[-10:]):.3f}; longest task while training "
          f"{max(during, default=0):.0f} ms; all long tasks {train['longtasks']}")
    assert train["mode"] == "worker" and train["batch"] == 16
    assert len(losses) >= 40 and np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2, losses
    assert train["vals"] and train["vals"][0][0] == 0                     # validated from the start
    assert not [d for d in during if d > 100], f"tasks over 100 ms on the page while training: {during}"
    assert train["shown"] == "training" and train["c1"] != book
    assert train["gallery"] == 24
    assert page.inner_text("#pg-prediction").startswith("Prediction:")

    page.click("#tr-book")                                                # the book's weights back
    assert page.evaluate("Array.from(LeNet5Playground.model.C1.W)") == book
    assert page.evaluate("LeNet5Playground.prediction") == 1
    page.fill("#tr-lr", "-1")                                              # a bad value: named, not used
    page.dispatch_event("#tr-lr", "change")
    assert "lr must be from" in page.inner_text("#tr-problem")
    live.check_clean("playground (training)")


def test_build_writes_the_training_digits(open_page, site, mnist):
    import hashlib

    live = open_page(f"{site}/book/playground.html")
    got = live.page.evaluate("""async () => {
        await new Promise((ok, fail) => { const s = document.createElement("script");
            s.src = "../_static/live/mnist_train_digits.js"; s.onload = ok; s.onerror = fail; document.head.appendChild(s); });
        const d = window.MNIST_TRAIN_DIGITS, L = window.LeNet5Live, pixels = L.decodeDigits(d.pixels);
        const hex = b => Array.from(new Uint8Array(b)).map(v => v.toString(16).padStart(2, "0")).join("");
        return {count: d.count, train: d.train, val: d.val, pixels: hex(await crypto.subtle.digest("SHA-256", pixels)),
                labels: hex(await crypto.subtle.digest("SHA-256", L.bytesFromBase64(d.labels.data)))}; }""")
    live.check_clean("playground (training digits)")
    assert (got["count"], got["train"], got["val"]) == (10000, 9000, 1000)
    assert got["pixels"] == hashlib.sha256(mnist.x_train[:10000].tobytes()).hexdigest()
    assert got["labels"] == hashlib.sha256(mnist.y_train[:10000].astype(np.uint8).tobytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# The state in the URL
# ----------------------------------------------------------------------------------------------

STATE_JS = """() => { const p = LeNet5Playground;
    return {pixels: Array.from(p.pixels), strokes: p.strokes, probs: p.probabilities, unit: p.unit,
            digit: p.backgroundIndex, settings: p.train.settings(), centre: document.getElementById("pg-centre").checked,
            ig: ["pg-target", "pg-baseline", "pg-method", "pg-steps", "pg-scale"].map(id => document.getElementById(id).value),
            gap: document.getElementById("pg-gap").innerText}; }"""


def test_a_link_restores_the_drawing_and_every_setting(open_page, site, book_build):
    live = open_page(f"{site}/book/playground.html")
    page = live.page
    page.uncheck("#pg-centre")
    _stroke(page, [(9, 6), (19, 6), (12, 23)])                                 # a 7, not centred
    _stroke(page, [(11.3, 14.1), (17.7, 14.6)])
    page.select_option("#pg-target", "3")
    page.select_option("#pg-baseline", "blur")
    page.select_option("#pg-method", "gausslegendre")
    page.evaluate("() => { const s = document.getElementById('pg-steps'); s.value = '17'; "
                  "s.dispatchEvent(new Event('input')); }")
    page.select_option("#pg-scale", "layer")
    for field, value in (("#tr-lr", "0.02"), ("#tr-batch", "8"), ("#tr-momentum", "0.5"), ("#tr-wd", "0.001"), ("#tr-seed", "7")):
        page.fill(field, value)
        page.dispatch_event(field, "change")
    page.locator("#pg-net").scroll_into_view_if_needed()
    page.mouse.move(*_unit_point(page, "c3", 345))
    page.wait_for_timeout(400)                                                 # the URL follows the chosen unit
    _state(page)
    state = page.evaluate(STATE_JS)
    url = page.url
    assert "#" in url and "s=" in url
    for where in (url, (book_build.html / "book" / "playground.html").as_uri() + url[url.index("#"):]):
        again = open_page(where)
        _state(again.page)
        restored = again.page.evaluate(STATE_JS)
        again.check_clean(f"playground restored from a link ({where[:4]})")
        assert restored == state, {k: (state[k], restored[k]) for k in state if state[k] != restored[k]}
    assert state["unit"] == {"layer": "c3", "index": 345} and state["settings"]["seed"] == 7
    live.shot("url-1-before-link")

    bad = open_page(f"{site}/book/playground.html#n=999&d=x&b=nothing&seed=-3")   # a bad link: named, skipped
    note = bad.page.inner_text("#pg-url-note")
    assert all(part in note for part in ("n:", "d:", "b:", "seed")), note
    assert bad.page.evaluate("LeNet5Playground.train.settings().seed") == 0
    bad.check_clean("playground from a bad link")


# ----------------------------------------------------------------------------------------------
# A phone: touch, two fingers, the prediction in view, one announcement per stroke
# ----------------------------------------------------------------------------------------------

SCROLL_TO_GRID_JS = """() => {
    const grid = document.getElementById("pg-draw");
    const header = [...document.querySelectorAll("body *")].filter(e => ["sticky", "fixed"].includes(getComputedStyle(e).position)
        && e.getBoundingClientRect().top <= 0 && e.getBoundingClientRect().height < innerHeight / 3)
        .reduce((m, e) => Math.max(m, e.getBoundingClientRect().bottom), 0);
    window.scrollBy(0, grid.getBoundingClientRect().top - header - 36);   // the grid's title just below the header
    const r = grid.getBoundingClientRect(), hit = document.elementFromPoint(r.left + r.width / 2, r.top + 4);
    return hit === grid ? null : (hit && hit.outerHTML.slice(0, 80)); }"""


def test_touch_drawing_on_a_phone(chromium, site):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                                   device_scale_factor=2)
    try:
        context.route("**/*", lambda route: route.continue_() if is_local(route.request.url) else route.abort())
        page = context.new_page()
        problems = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.goto(f"{site}/book/playground.html", wait_until="load")
        covered = page.evaluate(SCROLL_TO_GRID_JS)                             # as a reader would, to draw
        assert covered is None, f"the theme's header covers the grid: {covered}"
        box = page.locator("#pg-draw").bounding_box()
        cdp = context.new_cdp_session(page)

        def touch(kind, points):
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                {"x": box["x"] + gx / 28 * box["width"], "y": box["y"] + gy / 28 * box["height"], "id": i}
                for i, (gx, gy) in enumerate(points)]})

        announced = page.evaluate("LeNet5Playground.announcements")
        touch("touchStart", [(9, 5), (19, 5)])                                 # two fingers at once
        for k in range(1, 10):
            touch("touchMove", [(9, 5 + 2 * k), (19, 5 + 2 * k)])
        during = page.evaluate("""() => { const r = id => document.getElementById(id).getBoundingClientRect();
            return {prediction: [r("pg-prediction").top, r("pg-prediction").bottom], probs: [r("pg-probs").top, r("pg-probs").bottom],
                    draw: [r("pg-draw").top, r("pg-draw").bottom], text: document.getElementById("pg-prediction").innerText,
                    announced: LeNet5Playground.announcements, height: innerHeight,
                    live: [...document.querySelectorAll("#lenet-playground [aria-live]")].map(e => [e.id, e.textContent])}; }""")
        page.screenshot(path=str(SHOTS / "phone-1-two-fingers-drawing.png"))
        touch("touchEnd", [])
        page.wait_for_selector("#pg-gap[data-state=ready]", timeout=20_000)
        strokes = page.evaluate("LeNet5Playground.strokes.map(s => s.map(p => p.x))")
        after = page.evaluate("[LeNet5Playground.announcements, document.getElementById('pg-announce').innerText, "
                              "document.getElementById('pg-prediction').innerText]")
        wide = page.evaluate("""() => Math.max(...[...document.querySelectorAll("#lenet-playground *")]
                                       .map(e => e.getBoundingClientRect().right))""")
        page.screenshot(path=str(SHOTS / "phone-2-after.png"))
    finally:
        context.close()
    assert not problems, problems
    assert len(strokes) == 2 and len(set(strokes[0])) == 1 and len(set(strokes[1])) == 1 and strokes[0][0] != strokes[1][0], \
        f"two fingers must draw two separate straight strokes, got x values {strokes}"
    assert during["text"].startswith("Prediction:"), during
    for part in ("draw", "prediction", "probs"):
        assert 0 <= during[part][0] and during[part][1] <= during["height"], f"{part} out of view while drawing: {during}"
    assert during["announced"] == announced and after[0] == announced + 1, (announced, during, after)
    assert after[1] == after[2], after                                          # announced once, when lifted
    assert all(text == "" or key in ("pg-pen", "pg-gap") for key, text in during["live"]), during["live"]
    assert wide <= 390, f"the playground reaches {wide}px, past the right edge of a 390px phone"
