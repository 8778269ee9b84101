/* The digit playground (book/playground.md): draw a digit, see LeNet-5's probabilities, its C1
 * and C3 feature maps and the Integrated Gradients of a class, all computed in this page by
 * lenet5.js. A classic script: window.LeNet5Playground (the state, for tests and the curious).
 *
 * Drawing. Strokes are kept as lists of points in grid units (the 28x28 grid spans 0..28) and
 * rasterised with a soft round brush: a pixel's ink is 1 within INNER of the stroke's centre
 * line and fades to 0 at OUTER (distances from the pixel's centre). So the strokes are about as
 * wide and as soft as MNIST's.
 *
 * What the model sees. MNIST's digits were scaled to fit a 20x20 box, then placed in the 28x28
 * field so that their centre of mass is at the centre. With "centre like MNIST" on (the default),
 * the strokes are scaled the same way (the ink's bounding box to 20 pixels, stroke width kept),
 * rasterised, and shifted so that the ink's centre of mass is the field's centre (14, 14);
 * both steps move the strokes' points and rasterise again, so nothing is resampled. Then, as in
 * lenet_core.data.prepare, the 28x28 digit is padded with black to 32x32 and normalised,
 * (p / 255 - 0.1307) / 0.3081. A stored test digit is shown as MNIST stores it (already centred);
 * strokes added on top of it are not moved.
 */
(function (global) {
  "use strict";
  var L = global.LeNet5Live, D = global.LiveDraw;
  var N = 28, SCALE = 10, INNER = 0.7, OUTER = 1.75, BOX = 20;
  var RULES = {riemann_trapezoid: "Riemann trapezoid", gausslegendre: "Gauss\u2013Legendre", trapezoid: "textbook trapezoid"};

  function $(id) { return document.getElementById(id); }

  // ------------------------------------------------------------------------------------------
  // Strokes -> 28x28 pixels
  // ------------------------------------------------------------------------------------------

  /** ink (Float64Array(784) in [0, 1]) of the strokes, with their points moved by transform. */
  function rasterise(strokes, transform) {
    var ink = new Float64Array(N * N);
    strokes.forEach(function (stroke) {
      var pts = stroke.map(transform || function (p) { return p; });
      for (var s = 0; s < pts.length; s++) {
        var a = pts[Math.max(0, s - 1)], b = pts[s];
        var x0 = Math.max(0, Math.floor(Math.min(a.x, b.x) - OUTER)), x1 = Math.min(N - 1, Math.ceil(Math.max(a.x, b.x) + OUTER));
        var y0 = Math.max(0, Math.floor(Math.min(a.y, b.y) - OUTER)), y1 = Math.min(N - 1, Math.ceil(Math.max(a.y, b.y) + OUTER));
        for (var r = y0; r <= y1; r++)
          for (var c = x0; c <= x1; c++) {
            var v = D.clamp((OUTER - segmentDistance(c + 0.5, r + 0.5, a, b)) / (OUTER - INNER), 0, 1);
            if (v > ink[r * N + c]) ink[r * N + c] = v;
          }
      }
    });
    return ink;
  }

  function segmentDistance(px, py, a, b) {
    var dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    var t = len2 > 0 ? D.clamp(((px - a.x) * dx + (py - a.y) * dy) / len2, 0, 1) : 0;
    var ex = a.x + t * dx - px, ey = a.y + t * dy - py;
    return Math.sqrt(ex * ex + ey * ey);
  }

  /** The strokes as MNIST would have centred them: bounding box scaled to fit BOX pixels (ink
   *  included), then centre of mass moved to (14, 14). */
  function centredInk(strokes) {
    var xs = [], ys = [];
    strokes.forEach(function (st) { st.forEach(function (p) { xs.push(p.x); ys.push(p.y); }); });
    if (!xs.length) return new Float64Array(N * N);
    var minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs);
    var minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    var size = Math.max(maxX - minX, maxY - minY), s = size > 0 ? (BOX - 2 * INNER) / size : 1;
    var cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    function fit(p) { return {x: 14 + (p.x - cx) * s, y: 14 + (p.y - cy) * s}; }
    var ink = rasterise(strokes, fit), m = 0, mx = 0, my = 0;
    for (var r = 0; r < N; r++)
      for (var c = 0; c < N; c++) { var v = ink[r * N + c]; m += v; mx += v * (c + 0.5); my += v * (r + 0.5); }
    if (m === 0) return ink;
    var sx = 14 - mx / m, sy = 14 - my / m;
    return rasterise(strokes, function (p) { var q = fit(p); return {x: q.x + sx, y: q.y + sy}; });
  }

  // ------------------------------------------------------------------------------------------
  // The playground
  // ------------------------------------------------------------------------------------------

  function Playground(root) {
    var self = this;
    this.root = root;
    this.model = L.loadModel();
    this.digits = loadDigits();
    this.strokes = [];          // the strokes drawn, each a list of {x, y} in grid units
    this.background = null;     // a stored digit's pixels (784 values 0..255), or null
    this.history = [];          // snapshots for Undo
    this.drawing = null;        // the stroke being drawn
    this.cursor = {x: 14, y: 14, pen: false};
    this.igTimer = null;
    this.igVersion = 0;         // bumped after every Integrated Gradients computation
    this.igToken = 0;           // the Integrated Gradients computation that may still show its result
    this.updates = 0;

    this.canvas = $("pg-draw");
    this.bindPointer();
    this.bindKeyboard();
    $("pg-undo").addEventListener("click", function () { self.undo(); });
    $("pg-clear").addEventListener("click", function () { self.clear(); });
    $("pg-centre").addEventListener("change", function () { self.update(true); });
    ["pg-target", "pg-baseline", "pg-method"].forEach(function (id) {
      $(id).addEventListener("change", function () { self.scheduleIG(0); });
    });
    $("pg-steps").addEventListener("input", function () {
      $("pg-steps-value").textContent = $("pg-steps").value;
      self.scheduleIG(60);
    });
    this.buildProbabilities();
    this.buildMaps();
    this.buildDigitChoice();
    this.update(true);
  }

  function loadDigits() {
    var d = global.MNIST_TEST_DIGITS;
    if (!d) return null;
    return {labels: d.labels, pixels: L.bytesFromBase64(d.pixels.data), count: d.count};
  }

  Playground.prototype.buildDigitChoice = function () {
    var self = this, select = $("pg-digit");
    if (!this.digits) {
      select.disabled = true;
      $("pg-digit-note").textContent = "No stored digits: MNIST was not on the machine that built this page.";
      return;
    }
    for (var i = 0; i < this.digits.count; i++) {
      var option = document.createElement("option");
      option.value = String(i);
      option.textContent = "test digit " + i + " (a " + this.digits.labels[i] + ")";
      select.appendChild(option);
    }
    select.addEventListener("change", function () {
      if (select.value === "") return;
      self.snapshot();
      var i = Number(select.value);
      self.background = self.digits.pixels.slice(i * 784, (i + 1) * 784);
      self.strokes = [];
      self.update(true);
    });
  };

  Playground.prototype.buildProbabilities = function () {
    var list = $("pg-probs");
    this.bars = [];
    for (var k = 0; k < 10; k++) {
      var li = document.createElement("li"), digit = document.createElement("span");
      var track = document.createElement("span"), fill = document.createElement("span");
      var value = document.createElement("span");
      digit.textContent = String(k);
      track.className = "pg-track"; fill.className = "pg-fill"; value.className = "pg-value";
      track.setAttribute("aria-hidden", "true");
      track.appendChild(fill);
      li.appendChild(digit); li.appendChild(track); li.appendChild(value);
      list.appendChild(li);
      this.bars.push({li: li, fill: fill, value: value});
    }
  };

  Playground.prototype.buildMaps = function () {
    function maps(id, count, label) {
      var box = $(id), out = [];
      for (var i = 0; i < count; i++) {
        var c = document.createElement("canvas");
        c.setAttribute("role", "img");
        c.setAttribute("aria-label", label + " feature map " + (i + 1));
        box.appendChild(c);
        out.push(c);
      }
      return out;
    }
    this.c1Canvases = maps("pg-c1", 6, "C1");
    this.c3Canvases = maps("pg-c3", 16, "C3");
  };

  // ---- input --------------------------------------------------------------------------------

  Playground.prototype.gridPoint = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    return {x: D.clamp((event.clientX - rect.left) / rect.width * N, 0, N),
            y: D.clamp((event.clientY - rect.top) / rect.height * N, 0, N)};
  };

  Playground.prototype.bindPointer = function () {
    var self = this, c = this.canvas;
    c.addEventListener("pointerdown", function (e) {
      if (e.button !== 0) return;
      e.preventDefault();
      c.setPointerCapture(e.pointerId);
      self.snapshot();
      self.drawing = [self.gridPoint(e)];
      self.strokes.push(self.drawing);
      self.update(false);
    });
    c.addEventListener("pointermove", function (e) {
      if (!self.drawing) return;
      var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
      (events.length ? events : [e]).forEach(function (ev) { self.drawing.push(self.gridPoint(ev)); });
      self.update(false);
    });
    function end() {
      if (!self.drawing) return;
      self.drawing = null;
      self.update(true);
    }
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  };

  /** Arrow keys move a cursor over the grid; Space or Enter puts the pen down (starting a
   *  stroke) or lifts it; with the pen down, moving draws. Escape lifts the pen. */
  Playground.prototype.bindKeyboard = function () {
    var self = this, cur = this.cursor;
    this.canvas.addEventListener("keydown", function (e) {
      var moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
      if (moves[e.key]) {
        cur.x = D.clamp(cur.x + moves[e.key][0], 0, N - 1);
        cur.y = D.clamp(cur.y + moves[e.key][1], 0, N - 1);
        if (cur.pen) {
          self.drawing.push({x: cur.x + 0.5, y: cur.y + 0.5});
          self.update(false);
        } else {
          self.drawGrid();
        }
      } else if (e.key === " " || e.key === "Enter") {
        cur.pen = !cur.pen;
        if (cur.pen) {
          self.snapshot();
          self.drawing = [{x: cur.x + 0.5, y: cur.y + 0.5}];
          self.strokes.push(self.drawing);
        } else {
          self.drawing = null;
        }
        self.update(!cur.pen);
      } else if (e.key === "Escape" && cur.pen) {
        cur.pen = false; self.drawing = null; self.update(true);
      } else {
        return;
      }
      e.preventDefault();
      $("pg-pen").textContent = "keyboard pen " + (cur.pen ? "down" : "up") + " at column " + cur.x + ", row " + cur.y;
    });
    this.canvas.addEventListener("focus", function () { self.showCursor = true; self.drawGrid(); });
    this.canvas.addEventListener("blur", function () { self.showCursor = false; self.drawGrid(); });
  };

  Playground.prototype.snapshot = function () {
    this.history.push({strokes: this.strokes.map(function (s) { return s.slice(); }), background: this.background});
    if (this.history.length > 200) this.history.shift();
  };

  Playground.prototype.undo = function () {
    if (!this.history.length) return;
    var last = this.history.pop();
    this.strokes = last.strokes; this.background = last.background;
    this.drawing = null; this.cursor.pen = false;
    this.update(true);
  };

  Playground.prototype.clear = function () {
    if (!this.strokes.length && !this.background) return;
    this.snapshot();
    this.strokes = []; this.background = null; this.drawing = null; this.cursor.pen = false;
    $("pg-digit").value = "";
    this.update(true);
  };

  // ---- what the model sees ------------------------------------------------------------------

  /** The 28x28 digit given to the model, as 784 values 0..255 (rounded like a uint8 image). */
  Playground.prototype.modelPixels = function () {
    var out = new Float64Array(N * N), i;
    if (this.background) {
      var ink = rasterise(this.strokes);
      for (i = 0; i < N * N; i++) out[i] = Math.max(this.background[i], Math.round(255 * ink[i]));
    } else {
      var centred = $("pg-centre").checked ? centredInk(this.strokes) : rasterise(this.strokes);
      for (i = 0; i < N * N; i++) out[i] = Math.round(255 * centred[i]);
    }
    return out;
  };

  Playground.prototype.drawGrid = function () {
    var c = this.canvas, ctx = c.getContext("2d"), i;
    if (c.width !== N * SCALE) { c.width = N * SCALE; c.height = N * SCALE; }
    var ink = rasterise(this.strokes), shown = new Float64Array(N * N);
    for (i = 0; i < N * N; i++) shown[i] = Math.max(this.background ? this.background[i] / 255 : 0, ink[i]);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, c.width, c.height);
    for (i = 0; i < N * N; i++) {
      if (shown[i] <= 0) continue;
      var g = Math.round(255 * shown[i]);
      ctx.fillStyle = "rgb(" + g + "," + g + "," + g + ")";
      ctx.fillRect((i % N) * SCALE, Math.floor(i / N) * SCALE, SCALE, SCALE);
    }
    ctx.strokeStyle = "rgba(255,255,255,0.08)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (i = 1; i < N; i++) {
      ctx.moveTo(i * SCALE + 0.5, 0); ctx.lineTo(i * SCALE + 0.5, c.height);
      ctx.moveTo(0, i * SCALE + 0.5); ctx.lineTo(c.width, i * SCALE + 0.5);
    }
    ctx.stroke();
    if (this.showCursor) {
      ctx.strokeStyle = this.cursor.pen ? "#ff5a4f" : "#4fa3ff";
      ctx.lineWidth = 2;
      ctx.strokeRect(this.cursor.x * SCALE + 1, this.cursor.y * SCALE + 1, SCALE - 2, SCALE - 2);
    }
  };

  /** Redraw and predict (fast: one forward pass); with `settled`, also schedule the attribution. */
  Playground.prototype.update = function (settled) {
    this.updates++;
    this.drawGrid();
    var pixels = this.modelPixels();
    this.pixels = pixels;
    this.x = L.prepare(pixels);
    D.grey($("pg-seen"), pixels, N, N, 0, 255);
    $("pg-seen-caption").textContent = this.background
      ? "a stored test digit (already centred)"
      : $("pg-centre").checked ? "your digit, scaled and centred like MNIST's" : "your digit, as drawn (not centred)";
    var empty = !this.strokes.length && !this.background;
    var a = L.forward(this.model, this.x);
    this.activations = a;
    this.probabilities = L.softmax(a.logits);
    this.prediction = L.argmax(a.logits);
    this.showPrediction(empty);
    for (var m = 0; m < 6; m++) D.diverging(this.c1Canvases[m], a.c1.subarray(m * 784, (m + 1) * 784), 28, 28, 1);
    for (m = 0; m < 16; m++) D.diverging(this.c3Canvases[m], a.c3.subarray(m * 100, (m + 1) * 100), 10, 10, 1);
    this.igToken++;                                            // the digit changed: abandon an old one
    $("pg-ig-panel").classList.add("live-stale");
    $("pg-gap").setAttribute("data-state", "pending");
    if (settled) this.scheduleIG(120);
  };

  Playground.prototype.showPrediction = function (empty) {
    var p = this.probabilities, top = this.prediction;
    $("pg-prediction").textContent = empty
      ? "Draw a digit. (An empty grid reads as " + top + ", p = " + p[top].toFixed(2) + ".)"
      : "Prediction: " + top + " (probability " + p[top].toFixed(3) + ")";
    for (var k = 0; k < 10; k++) {
      var bar = this.bars[k];
      bar.fill.style.width = (100 * p[k]).toFixed(1) + "%";
      bar.value.textContent = p[k].toFixed(3);
      bar.li.classList.toggle("pg-top", k === top);
      bar.li.setAttribute("aria-label", "class " + k + ": probability " + p[k].toFixed(3));
    }
  };

  // ---- Integrated Gradients -----------------------------------------------------------------

  Playground.prototype.scheduleIG = function (delay) {
    var self = this;
    clearTimeout(this.igTimer);
    this.igToken++;                                            // abandon a computation under way
    $("pg-ig-panel").classList.add("live-stale");
    $("pg-gap").setAttribute("data-state", "pending");
    this.igTimer = setTimeout(function () { self.runIG(); }, delay);
  };

  /** Integrated Gradients in slices of a few path points, so that drawing and the controls stay
   *  responsive; a newer request (another stroke, another setting) abandons this one. */
  Playground.prototype.runIG = function () {
    var self = this, token = ++this.igToken;
    var chosen = $("pg-target").value, target = chosen === "predicted" ? this.prediction : Number(chosen);
    var kind = $("pg-baseline").value, method = $("pg-method").value, steps = Number($("pg-steps").value);
    var x = this.x, baseline = L.makeBaseline(this.model, kind, x);
    var stepper = L.igStepper(this.model, x, target, baseline, steps, method);
    (function slice() {
      if (token !== self.igToken) return;
      if (!stepper.step(10)) { setTimeout(slice, 0); return; }
      self.showIG(stepper.result(), x, baseline, target, kind, method, steps);
    })();
  };

  Playground.prototype.showIG = function (ig, x, baseline, target, kind, method, steps) {
    this.ig = ig;
    D.grey($("pg-ig-input"), x, 32, 32, L.BLACK, (1 - L.MEAN) / L.STD);
    D.grey($("pg-ig-baseline"), baseline, 32, 32, L.BLACK, (1 - L.MEAN) / L.STD);
    var lim = D.maxAbs(ig.attributions);
    D.diverging($("pg-ig-map"), ig.attributions, 32, 32, lim);
    var change = ig.fx - ig.fb, rel = change !== 0 ? ig.delta / change : 0;
    $("pg-ig-scale").textContent = "(limits \u00b1" + lim.toPrecision(3) + ")";
    $("pg-gap").innerHTML =
      "Class " + target + ", " + steps + " steps, " + RULES[method] + ", " + kind + " baseline.<br>" +
      "Sum of attributions " + D.fmt(ig.sum) + "; F(x) \u2212 F(x\u2032) = " + D.fmt(ig.fx) + " \u2212 (" +
      D.fmt(ig.fb) + ") = " + D.fmt(change) + ".<br>" +
      "<strong>Completeness gap</strong> \u03b4 = " + D.fmt(ig.delta, 4) + " (" + D.fmt(100 * rel, 2) +
      "% of F(x) \u2212 F(x\u2032))";
    $("pg-gap").setAttribute("data-state", "ready");
    $("pg-ig-panel").classList.remove("live-stale");
    this.igVersion++;
  };

  function start() {
    var root = $("lenet-playground");
    if (!root) return;
    try {
      global.LeNet5Playground = new Playground(root);
    } catch (error) {
      root.insertAdjacentHTML("afterbegin", "<p class=\"live-note\">The playground could not start: " +
                              String(error.message).replace(/</g, "&lt;") + "</p>");
      throw error;
    }
  }

  global.LeNet5PlaygroundInternals = {rasterise: rasterise, centredInk: centredInk};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window);
