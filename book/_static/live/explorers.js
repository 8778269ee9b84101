/* The live explorers of chapters 2 and 3, for the HTML book (the notebooks keep their ipywidgets).
 * A classic script: it fills every <div data-explorer="kernel"> (chapter 2: edit a kernel, see
 * the cross-correlation) and <div data-explorer="pool"> (chapter 3: pooling forward and backward)
 * and records them in window.LiveExplorers.
 *
 * The arithmetic is lenet_core's: functional.conv2d on one image (cross-correlation, zero
 * padding and stride as chosen; "same" padding is viz.filter2d's) and functional.pool2d / pool2d_backward (no padding, output floor((H - K) / S) + 1, a max
 * tie goes to the first maximum in row-major order, overlapping windows add their gradients).
 */
(function (global) {
  "use strict";
  var D = global.LiveDraw, N = 28;

  // ------------------------------------------------------------------------------------------
  // Shared bits
  // ------------------------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }

  var uid = 0;
  function labelled(text, control) {
    control.id = control.id || "live-control-" + (++uid);
    return [el("label", {"for": control.id, text: text}), control];
  }

  function select(options, value) {
    var s = el("select");
    options.forEach(function (o) { s.appendChild(el("option", {value: String(o[0]), text: o[1]})); });
    s.value = String(value);
    return s;
  }

  function figure(canvas, caption) {
    var cap = el("figcaption", {text: caption});
    return {node: el("figure", {"class": "live-figure"}, [canvas, cap]), caption: cap};
  }

  /** The explorers' digits: MNIST's (written into the build), or a stroke-drawn 7 without MNIST. */
  function explorerDigits(which) {
    var d = global.MNIST_EXPLORER_DIGITS;
    if (d && d[which]) {
      var bytes = global.LeNet5Live ? global.LeNet5Live.bytesFromBase64(d[which].pixels.data) : decode(d[which].pixels.data);
      return d[which].indices.map(function (index, k) {
        var img = new Float64Array(784);
        for (var i = 0; i < 784; i++) img[i] = bytes[k * 784 + i] / 255;   // pixels / 255, as the chapters
        return {label: "a " + d[which].labels[k] + " (x_train[" + index + "])", pixels: img};
      });
    }
    return [{label: "a hand-drawn 7 (no MNIST in this build)", pixels: drawnSeven()}];
  }

  function decode(text) {
    var bin = global.atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function drawnSeven() {
    var pts = [[8, 7], [20, 7], [12, 22]], img = new Float64Array(784);
    for (var r = 0; r < N; r++)
      for (var c = 0; c < N; c++)
        for (var s = 1; s < pts.length; s++) {
          var a = pts[s - 1], b = pts[s], dx = b[0] - a[0], dy = b[1] - a[1];
          var t = D.clamp(((c + 0.5 - a[0]) * dx + (r + 0.5 - a[1]) * dy) / (dx * dx + dy * dy), 0, 1);
          var d = Math.hypot(a[0] + t * dx - c - 0.5, a[1] + t * dy - r - 0.5);
          img[r * N + c] = Math.max(img[r * N + c], D.clamp(1.75 - d, 0, 1));
        }
    return img;
  }

  function range(values) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < values.length; i++) { lo = Math.min(lo, values[i]); hi = Math.max(hi, values[i]); }
    return [lo, hi];
  }

  // ------------------------------------------------------------------------------------------
  // Chapter 2: the kernel explorer
  // ------------------------------------------------------------------------------------------

  var G = [], g5 = [-2, -1, 0, 1, 2].map(function (d) { return Math.exp(-0.5 * d * d); });
  g5.forEach(function (a) { g5.forEach(function (b) { G.push(a * b); }); });
  var gSum = G.reduce(function (p, q) { return p + q; }, 0);
  /** lenet_core.viz.classic_kernels(), row-major. */
  var KERNELS = {
    "Sobel x": [-1, 0, 1, -2, 0, 2, -1, 0, 1],
    "Sobel y": [-1, -2, -1, 0, 0, 0, 1, 2, 1],
    "Laplacian": [0, 1, 0, 1, -4, 1, 0, 1, 0],
    "box blur 3x3": [1, 1, 1, 1, 1, 1, 1, 1, 1].map(function (v) { return v / 9; }),
    "Gaussian 5x5 (\u03c3=1)": G.map(function (v) { return v / gSum; }),
    "sharpen": [0, -1, 0, -1, 5, -1, 0, -1, 0]
  };

  /** Cross-correlation of a 28x28 image with a k x k kernel, `pad` rows and columns of zeros
   *  around the image, the window moved by `stride`: lenet_core.functional.conv2d on one image.
   *  -> {out, size}: a size x size map, size = floor((28 + 2 pad - k) / stride) + 1. */
  function filter2d(img, kernel, k, pad, stride) {
    pad = pad === undefined ? (k - 1) / 2 : pad;
    stride = stride || 1;
    var size = Math.floor((N + 2 * pad - k) / stride) + 1, out = new Float64Array(size * size);
    for (var r = 0; r < size; r++)
      for (var c = 0; c < size; c++) {
        var s = 0;
        for (var i = 0; i < k; i++)
          for (var j = 0; j < k; j++) {
            var rr = r * stride + i - pad, cc = c * stride + j - pad;
            if (rr >= 0 && rr < N && cc >= 0 && cc < N) s += kernel[i * k + j] * img[rr * N + cc];
          }
        out[r * size + c] = s;
      }
    return {out: out, size: size};
  }

  var SCRIPT_BASE = (document.currentScript && document.currentScript.src || "").replace(/[^/]*$/, "");

  /** LeNet-5's six learned C1 kernels (5x5 each, book/weights/lenet5.npz through lenet5_weights.js,
   *  loaded on demand: a <script> works from file:// too), or null when they cannot be had. */
  function learnedKernels(then) {
    function read() {
      var w = global.LENET5_WEIGHTS && global.LENET5_WEIGHTS.params["C1.W"];
      if (!w) return then(null);
      var bytes = decode(w.data), values = new Float32Array(bytes.buffer), out = [];
      for (var o = 0; o < 6; o++) out.push(Array.from(values.subarray(o * 25, (o + 1) * 25)));
      then(out);
    }
    if (global.LENET5_WEIGHTS !== undefined) return read();
    var s = document.createElement("script");
    s.src = SCRIPT_BASE + "lenet5_weights.js";
    s.onload = read;
    s.onerror = function () { then(null); };
    document.head.appendChild(s);
  }

  function KernelExplorer(root) {
    var self = this;
    this.root = root;
    this.digits = explorerDigits("ch02");
    this.digitSelect = select(this.digits.map(function (d, i) { return [i, d.label]; }), 0);
    this.presetSelect = select(Object.keys(KERNELS).map(function (n) { return [n, n]; }).concat([["custom", "custom (edited)"]]), "Sobel x");
    this.sizeSelect = select([[3, "3\u00d73"], [5, "5\u00d75"]], 3);
    this.padSelect = select([["same", "same size"], [0, "0 (none)"], [1, "1"], [2, "2"]], "same");
    this.strideSelect = select([[1, "1"], [2, "2"], [3, "3"]], 1);
    this.learnedButton = el("button", {type: "button", text: "LeNet-5's learned C1 kernels"});
    this.grid = el("div", {"class": "kx-grid", role: "group", "aria-label": "kernel values"});
    this.input = el("canvas", {width: N, height: N, role: "img", "aria-label": "input digit"});
    this.output = el("canvas", {width: N, height: N, role: "img", "aria-label": "feature map"});
    this.outputFigure = figure(this.output, "");
    root.appendChild(el("p", {"class": "live-title", text: "Kernel explorer (runs in your browser)"}));
    root.appendChild(el("div", {"class": "live-controls"},
      labelled("digit", this.digitSelect).concat(labelled("kernel", this.presetSelect), labelled("size", this.sizeSelect))));
    root.appendChild(el("div", {"class": "live-controls"},
      labelled("padding", this.padSelect).concat(labelled("stride", this.strideSelect), [this.learnedButton])));
    root.appendChild(el("div", {"class": "live-row kx-view"}, [
      figure(this.input, "input (pixels / 255)").node,
      el("div", {"class": "live-panel kx-kernel"}, [el("p", {"class": "live-note", text: "kernel (edit any cell; a blank cell is 0):"}), this.grid]),
      this.outputFigure.node]));
    this.note = el("p", {"class": "live-note", text:
      "The feature map is the cross-correlation of the digit with the kernel (lenet_core.functional.conv2d): " +
      "the image gets `padding` rows and columns of zeros around it and the window moves `stride` pixels at a time, " +
      "so the map is floor((28 + 2\u00b7padding \u2212 size) / stride) + 1 pixels wide. Blue is negative, red positive, " +
      "white 0, scaled to the largest |value|."});
    root.appendChild(this.note);
    [this.digitSelect, this.padSelect, this.strideSelect].forEach(function (s) {
      s.addEventListener("change", function () { self.render(); });
    });
    this.presetSelect.addEventListener("change", function () {
      var v = self.presetSelect.value;
      if (v.indexOf("learned ") === 0) self.setKernel(self.learned[Number(v.slice(8))]);
      else if (v !== "custom") self.setKernel(KERNELS[v]);
    });
    this.sizeSelect.addEventListener("change", function () { self.resize(Number(self.sizeSelect.value)); });
    this.learnedButton.addEventListener("click", function () { self.showLearned(0); });
    this.setKernel(KERNELS["Sobel x"]);
  }

  /** Offer the six learned C1 kernels among the presets and show kernel `which`. */
  KernelExplorer.prototype.showLearned = function (which) {
    var self = this;
    learnedKernels(function (kernels) {
      if (!kernels) { self.learnedButton.disabled = true; self.learnedButton.textContent = "no weights in this build"; return; }
      if (!self.learned) {
        self.learned = kernels;
        var group = el("optgroup", {label: "learned by LeNet-5 (C1, book weights)"});
        kernels.forEach(function (k, i) { group.appendChild(el("option", {value: "learned " + i, text: "C1 kernel " + i})); });
        self.presetSelect.insertBefore(group, self.presetSelect.lastChild);
      }
      self.presetSelect.value = "learned " + which;
      self.setKernel(self.learned[which]);
    });
  };

  KernelExplorer.prototype.setKernel = function (values) {
    this.k = Math.round(Math.sqrt(values.length));
    this.kernel = values.slice();
    this.sizeSelect.value = String(this.k);
    this.buildGrid();
    this.render();
  };

  /** 3x3 -> 5x5 puts the kernel in the middle of zeros; 5x5 -> 3x3 keeps the middle. */
  KernelExplorer.prototype.resize = function (k) {
    if (k === this.k) return;
    var out = new Array(k * k).fill(0), off = (k - this.k) / 2;
    for (var i = 0; i < k; i++)
      for (var j = 0; j < k; j++) {
        var si = i - off, sj = j - off;
        if (si >= 0 && si < this.k && sj >= 0 && sj < this.k) out[i * k + j] = this.kernel[si * this.k + sj];
      }
    this.presetSelect.value = "custom";
    this.setKernel(out);
  };

  KernelExplorer.prototype.buildGrid = function () {
    var self = this, k = this.k;
    this.grid.textContent = "";
    this.grid.style.gridTemplateColumns = "repeat(" + k + ", auto)";
    this.cells = [];
    for (var i = 0; i < k * k; i++) {
      var input = el("input", {type: "number", step: "0.1", placeholder: "0", "aria-label": "kernel row " + (Math.floor(i / k) + 1) +
                               ", column " + (i % k + 1)});
      input.value = String(Math.round(this.kernel[i] * 1000) / 1000);
      // what a cell shows is what is computed: a blank or half-typed cell ("", "-") counts as 0
      // (its placeholder shows the 0) and reads "0" once you leave it
      input.addEventListener("input", (function (index, box) {
        return function () {
          var v = parseFloat(box.value);
          self.kernel[index] = isFinite(v) ? v : 0;
          self.presetSelect.value = "custom";
          self.render();
        };
      })(i, input));
      input.addEventListener("change", (function (index, box) {
        return function () { if (!isFinite(parseFloat(box.value))) box.value = "0"; };
      })(i, input));
      this.grid.appendChild(input);
      this.cells.push(input);
    }
  };

  /** The padding: "same" keeps 28x28 at stride 1, (size - 1) / 2; else the number chosen. */
  KernelExplorer.prototype.padding = function () {
    return this.padSelect.value === "same" ? (this.k - 1) / 2 : Number(this.padSelect.value);
  };

  KernelExplorer.prototype.render = function () {
    var img = this.digits[Number(this.digitSelect.value)].pixels, pad = this.padding(), stride = Number(this.strideSelect.value);
    var f = filter2d(img, this.kernel, this.k, pad, stride), out = f.out, mm = range(out);
    this.response = out;
    this.size = f.size;
    D.grey(this.input, img, N, N, 0, 1);
    D.diverging(this.output, out, f.size, f.size, Math.max(Math.abs(mm[0]), Math.abs(mm[1])) || 1);
    this.outputFigure.caption.textContent = "feature map " + f.size + "\u00d7" + f.size + " (padding " + pad + ", stride " + stride +
      "; min " + mm[0].toFixed(2) + ", max " + mm[1].toFixed(2) + ")";
    this.root.setAttribute("data-version", String((Number(this.root.getAttribute("data-version")) || 0) + 1));
  };

  // ------------------------------------------------------------------------------------------
  // Chapter 3: the pooling explorer
  // ------------------------------------------------------------------------------------------

  /** Forward: x (H x W) -> {out (OH x OW), argmax (for max)}. */
  function pool(x, H, W, K, S, mode) {
    var OH = Math.floor((H - K) / S) + 1, OW = Math.floor((W - K) / S) + 1;
    var out = new Float64Array(OH * OW), arg = new Int32Array(OH * OW);
    for (var i = 0; i < OH; i++)
      for (var j = 0; j < OW; j++) {
        var best = -Infinity, where = 0, sum = 0;
        for (var a = 0; a < K; a++)
          for (var b = 0; b < K; b++) {
            var p = (i * S + a) * W + j * S + b, v = x[p];
            sum += v;
            if (v > best) { best = v; where = p; }          // strict: the first maximum wins a tie
          }
        out[i * OW + j] = mode === "max" ? best : sum / (K * K);
        arg[i * OW + j] = where;
      }
    return {out: out, arg: arg, OH: OH, OW: OW};
  }

  /** Backward: the upstream gradient dout (OH x OW) -> dx (H x W). */
  function poolBackward(dout, f, H, W, K, S, mode) {
    var dx = new Float64Array(H * W);
    for (var i = 0; i < f.OH; i++)
      for (var j = 0; j < f.OW; j++) {
        var g = dout[i * f.OW + j];
        if (mode === "max") { dx[f.arg[i * f.OW + j]] += g; continue; }
        for (var a = 0; a < K; a++)
          for (var b = 0; b < K; b++) dx[(i * S + a) * W + j * S + b] += g / (K * K);
      }
    return dx;
  }

  function PoolExplorer(root) {
    var self = this;
    this.root = root;
    this.digit = explorerDigits("ch03")[0];
    this.kernelSelect = select([[2, "2\u00d72"], [3, "3\u00d73"]], 2);
    this.strideSelect = select([[1, "1"], [2, "2"], [3, "3"]], 2);
    this.modeSelect = select([["avg", "average"], ["max", "max"]], "avg");
    this.gradSelect = select([["one", "1 at one output (pick it)"], ["all", "1 at every output"]], "one");
    this.input = el("canvas", {role: "img", "aria-label": "input digit with the chosen window"});
    this.output = el("canvas", {role: "img", tabindex: "0",
                                "aria-label": "pooled output; arrow keys choose an output cell"});
    this.back = el("canvas", {role: "img", "aria-label": "gradient with respect to the input"});
    this.figs = [figure(this.input, ""), figure(this.output, ""), figure(this.back, "")];
    this.cell = {i: 7, j: 7};                                  // clamped to the output in render()
    root.appendChild(el("p", {"class": "live-title", text: "Pooling explorer (runs in your browser)"}));
    root.appendChild(el("div", {"class": "live-controls"}, labelled("kernel", this.kernelSelect).concat(
      labelled("stride", this.strideSelect), labelled("mode", this.modeSelect), labelled("upstream gradient", this.gradSelect))));
    root.appendChild(el("div", {"class": "live-row px-view"}, this.figs.map(function (f) { return f.node; })));
    this.note = el("p", {"class": "live-note live-numbers", "aria-live": "polite"});
    root.appendChild(this.note);
    [this.kernelSelect, this.strideSelect, this.modeSelect, this.gradSelect].forEach(function (s) {
      s.addEventListener("change", function () { self.render(); });
    });
    this.output.addEventListener("click", function (e) {
      var r = self.output.getBoundingClientRect();
      self.cell = {i: Math.floor((e.clientY - r.top) / r.height * self.f.OH), j: Math.floor((e.clientX - r.left) / r.width * self.f.OW)};
      self.gradSelect.value = "one";
      self.render();
    });
    this.output.addEventListener("keydown", function (e) {
      var moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
      if (!moves[e.key]) return;
      e.preventDefault();
      self.cell = {i: self.cell.i + moves[e.key][0], j: self.cell.j + moves[e.key][1]};
      self.gradSelect.value = "one";
      self.render();
    });
    this.render();
  }

  PoolExplorer.prototype.render = function () {
    var K = Number(this.kernelSelect.value), S = Number(this.strideSelect.value), mode = this.modeSelect.value;
    var x = this.digit.pixels, f = pool(x, N, N, K, S, mode);
    this.f = f;
    this.cell.i = D.clamp(this.cell.i, 0, f.OH - 1);
    this.cell.j = D.clamp(this.cell.j, 0, f.OW - 1);
    var one = this.gradSelect.value === "one", dout = new Float64Array(f.OH * f.OW);
    if (one) dout[this.cell.i * f.OW + this.cell.j] = 1; else dout.fill(1);
    var dx = poolBackward(dout, f, N, N, K, S, mode), mm = range(dx);
    this.dx = dx;
    this.out = f.out;
    paintScaled(this.input, x, N, N, 7, function (v) { var g = Math.round(255 * v); return [g, g, g]; },
                one ? {r: this.cell.i * S, c: this.cell.j * S, k: K} : null);
    paintScaled(this.output, f.out, f.OH, f.OW, Math.max(1, Math.floor(196 / f.OH)),
                function (v) { var g = Math.round(255 * D.clamp(v, 0, 1)); return [g, g, g]; },
                one ? {r: this.cell.i, c: this.cell.j, k: 1} : null);
    paintScaled(this.back, dx, N, N, 7, function (v) {
      var t = D.clamp(v / (mm[1] || 1), 0, 1);                 // white 0 -> dark red at the largest
      return [Math.round(255 - 90 * t), Math.round(255 - 230 * t), Math.round(255 - 210 * t)];
    }, one ? {r: this.cell.i * S, c: this.cell.j * S, k: K} : null);
    this.figs[0].caption.textContent = "input 28\u00d728 (pixels / 255)";
    this.figs[1].caption.textContent = mode + " pool k=" + K + ", s=" + S + ": " + f.OH + "\u00d7" + f.OW;
    this.figs[2].caption.textContent = "dx for " + (one ? "\u03b4 = 1 at output (" + this.cell.i + ", " + this.cell.j + ")"
                                                         : "\u03b4 = 1 everywhere") +
      (mm[0] === mm[1] ? " (every pixel " + mm[1].toFixed(3) + ")" : " (white 0, red " + mm[1].toFixed(3) + ")");
    var total = dx.reduce(function (p, q) { return p + q; }, 0);
    this.note.textContent = (mode === "avg"
      ? "Average pooling gives every pixel of a window 1/" + (K * K) + " of that window's gradient"
      : "Max pooling gives the whole gradient to each window's maximum (a tie: the first, row by row)") +
      (S < K ? "; overlapping windows add up" : "") + (S > K ? "; pixels between windows get nothing" : "") +
      ". The gradient sums to " + total.toFixed(3) + " (the sum of \u03b4 over the " + (one ? 1 : f.OH * f.OW) +
      " output" + (one ? "" : "s") + ").";
    this.root.setAttribute("data-version", String((Number(this.root.getAttribute("data-version")) || 0) + 1));
  };

  /** Draw values at `scale` canvas pixels each, with an optional outlined square box. */
  function paintScaled(canvas, values, w, h, scale, colour, box) {
    canvas.width = w * scale; canvas.height = h * scale;
    var ctx = canvas.getContext("2d");
    for (var r = 0; r < h; r++)
      for (var c = 0; c < w; c++) {
        var rgb = colour(values[r * w + c]);
        ctx.fillStyle = "rgb(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ")";
        ctx.fillRect(c * scale, r * scale, scale, scale);
      }
    if (box) {
      ctx.strokeStyle = "#1f9bff";
      ctx.lineWidth = 2;
      ctx.strokeRect(box.c * scale + 1, box.r * scale + 1, box.k * scale - 2, box.k * scale - 2);
    }
  }

  function start() {
    var found = {kernel: [], pool: []};
    document.querySelectorAll("[data-explorer]").forEach(function (root) {
      var kind = root.getAttribute("data-explorer");
      if (kind === "kernel") found.kernel.push(new KernelExplorer(root));
      else if (kind === "pool") found.pool.push(new PoolExplorer(root));
    });
    global.LiveExplorers = found;
  }

  global.LiveExplorerInternals = {filter2d: filter2d, pool: pool, poolBackward: poolBackward, KERNELS: KERNELS};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window);
