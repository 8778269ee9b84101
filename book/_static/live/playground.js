/* The digit playground (book/playground.md): draw a digit, see LeNet-5's probabilities, every
 * layer of the network linked (point at a unit: its window below and in the input, and the
 * computation that made it), the Integrated Gradients of a class, and a Train panel that trains
 * LeNet-5 from its initial weights in a Web Worker; the page's state lives in its URL. All
 * computed in this page by lenet5.js. A classic script: window.LeNet5Playground (the state, for
 * tests and the curious).
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
  // The page's state in its URL (a teacher sends an exact set-up; opening the link restores it)
  // ------------------------------------------------------------------------------------------

  var Q = 8;   // stroke points are kept in eighths of a grid pixel, so a link holds them exactly

  /** Strokes -> base64url: two bytes per point (x, y in eighths, 0..224), 255 between strokes. */
  function encodeStrokes(strokes) {
    var bytes = [];
    strokes.forEach(function (st, i) {
      if (i) bytes.push(255);
      st.forEach(function (p) { bytes.push(Math.round(p.x * Q), Math.round(p.y * Q)); });
    });
    var bin = String.fromCharCode.apply(null, bytes);
    return global.btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeStrokes(text) {
    var bin = global.atob(text.replace(/-/g, "+").replace(/_/g, "/")), strokes = [[]];
    for (var i = 0; i < bin.length; i++) {
      var v = bin.charCodeAt(i);
      if (v === 255) { strokes.push([]); continue; }
      var w = bin.charCodeAt(++i);
      if (!(v <= N * Q && w <= N * Q)) throw new Error("a stroke point is outside the grid");
      strokes[strokes.length - 1].push({x: v / Q, y: w / Q});
    }
    return strokes.filter(function (st) { return st.length; });
  }

  // ------------------------------------------------------------------------------------------
  // The playground
  // ------------------------------------------------------------------------------------------

  function Playground(root) {
    var self = this;
    this.root = root;
    this.bookModel = L.loadModel();
    this.model = this.bookModel;  // the book's weights, or the Train panel's while it trains
    this.modelName = "book";
    this.digits = loadDigits();
    this.strokes = [];          // the strokes drawn, each a list of {x, y} in grid units
    this.background = null;     // a stored digit's pixels (784 values 0..255), or null
    this.backgroundIndex = null;
    this.history = [];          // snapshots for Undo
    this.active = {};           // pointerId -> the stroke that pointer is drawing
    this.drawing = null;        // the keyboard's stroke
    this.cursor = {x: 14, y: 14, pen: false};
    this.igTimer = null;
    this.igVersion = 0;         // bumped after every Integrated Gradients computation
    this.igToken = 0;           // the Integrated Gradients computation that may still show its result
    this.updates = 0;
    this.announcements = 0;
    this.unit = {layer: "c1", index: 12 * 28 + 12};

    this.canvas = $("pg-draw");
    this.bindPointer();
    this.bindKeyboard();
    $("pg-undo").addEventListener("click", function () { self.undo(); });
    $("pg-clear").addEventListener("click", function () { self.clear(); });
    $("pg-centre").addEventListener("change", function () { self.update(true); self.settled(); });
    ["pg-target", "pg-baseline", "pg-method"].forEach(function (id) {
      $(id).addEventListener("change", function () { self.scheduleIG(0); self.saveState(); });
    });
    $("pg-steps").addEventListener("input", function () {
      $("pg-steps-value").textContent = $("pg-steps").value;
      self.scheduleIG(60);
      self.saveState();
    });
    $("pg-scale").addEventListener("change", function () { self.paintNetwork(); self.saveState(); });
    this.buildProbabilities();
    this.buildNetwork();
    this.buildDigitChoice();
    this.train = new TrainPanel(this);
    this.restoreState(global.location.hash);
    this.update(true);
    this.restoring = false;
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
      self.setBackground(Number(select.value));
      self.strokes = [];
      self.update(true);
      self.settled();
    });
  };

  Playground.prototype.setBackground = function (i) {
    if (i === null || !this.digits || !(i >= 0 && i < this.digits.count)) {
      this.background = null; this.backgroundIndex = null; $("pg-digit").value = "";
      return;
    }
    this.background = this.digits.pixels.slice(i * 784, (i + 1) * 784);
    this.backgroundIndex = i;
    $("pg-digit").value = String(i);
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

  // ---- input --------------------------------------------------------------------------------

  /** A pointer's place in grid units, to an eighth of a pixel (so that a link keeps it exactly). */
  Playground.prototype.gridPoint = function (event) {
    var rect = this.canvas.getBoundingClientRect();
    return {x: Math.round(Q * D.clamp((event.clientX - rect.left) / rect.width * N, 0, N)) / Q,
            y: Math.round(Q * D.clamp((event.clientY - rect.top) / rect.height * N, 0, N)) / Q};
  };

  /** Every pointer (mouse, pen, each finger) draws its own stroke: a second finger starts a second
   *  stroke and each move goes to the stroke of the pointer that moved. */
  Playground.prototype.bindPointer = function () {
    var self = this, c = this.canvas;
    c.addEventListener("pointerdown", function (e) {
      if (e.pointerType === "mouse" && e.button !== 0) return;
      e.preventDefault();
      try { c.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer */ }
      self.snapshot();
      var stroke = [self.gridPoint(e)];
      self.active[e.pointerId] = stroke;
      self.strokes.push(stroke);
      self.update(false);
    });
    c.addEventListener("pointermove", function (e) {
      var stroke = self.active[e.pointerId];
      if (!stroke) return;
      var events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
      (events.length ? events : [e]).forEach(function (ev) { stroke.push(self.gridPoint(ev)); });
      self.update(false);
    });
    function end(e) {
      if (!self.active[e.pointerId]) return;
      delete self.active[e.pointerId];
      if (Object.keys(self.active).length) return;        // another finger is still drawing
      self.update(true);
      self.settled();
    }
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  };

  /** Arrow keys move a cursor over the grid, Home / Page Up / End / Page Down (or the keypad's
   *  7 9 1 3) diagonally; Space or Enter puts the pen down (starting a stroke) or lifts it; with
   *  the pen down, moving draws. Escape, or leaving the grid, lifts the pen. */
  Playground.prototype.bindKeyboard = function () {
    var self = this, cur = this.cursor;
    var moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1],
                 Home: [-1, -1], PageUp: [1, -1], End: [-1, 1], PageDown: [1, 1],
                 "7": [-1, -1], "8": [0, -1], "9": [1, -1], "4": [-1, 0], "6": [1, 0], "1": [-1, 1], "2": [0, 1], "3": [1, 1]};
    function penUp() {
      cur.pen = false; self.drawing = null;
      self.update(true); self.settled();
    }
    this.canvas.addEventListener("keydown", function (e) {
      var move = moves[e.key];
      if (move) {
        cur.x = D.clamp(cur.x + move[0], 0, N - 1);
        cur.y = D.clamp(cur.y + move[1], 0, N - 1);
        if (cur.pen) {
          self.drawing.push({x: cur.x + 0.5, y: cur.y + 0.5});
          self.update(false);
        } else {
          self.drawGrid();
        }
      } else if (e.key === " " || e.key === "Enter") {
        if (!cur.pen) {
          cur.pen = true;
          self.snapshot();
          self.drawing = [{x: cur.x + 0.5, y: cur.y + 0.5}];
          self.strokes.push(self.drawing);
          self.update(false);
        } else {
          penUp();
        }
      } else if (e.key === "Escape" && cur.pen) {
        penUp();
      } else {
        return;
      }
      e.preventDefault();
      $("pg-pen").textContent = "keyboard pen " + (cur.pen ? "down" : "up") + " at column " + cur.x + ", row " + cur.y;
    });
    this.canvas.addEventListener("focus", function () { self.showCursor = true; self.drawGrid(); });
    this.canvas.addEventListener("blur", function () {
      self.showCursor = false;
      if (cur.pen) {                                       // tabbing away ends the stroke
        penUp();
        $("pg-pen").textContent = "keyboard pen up at column " + cur.x + ", row " + cur.y;
      } else {
        self.drawGrid();
      }
    });
  };

  Playground.prototype.snapshot = function () {
    this.history.push({strokes: this.strokes.map(function (s) { return s.slice(); }), background: this.backgroundIndex});
    if (this.history.length > 200) this.history.shift();
  };

  Playground.prototype.undo = function () {
    if (!this.history.length) return;
    var last = this.history.pop();
    this.strokes = last.strokes; this.setBackground(last.background);
    this.drawing = null; this.active = {}; this.cursor.pen = false;
    this.update(true);
    this.settled();
  };

  Playground.prototype.clear = function () {
    if (!this.strokes.length && !this.background) return;
    this.snapshot();
    this.strokes = []; this.setBackground(null); this.drawing = null; this.active = {}; this.cursor.pen = false;
    this.update(true);
    this.settled();
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
    this.predict();
    this.igToken++;                                            // the digit changed: abandon an old one
    $("pg-ig-panel").classList.add("live-stale");
    $("pg-gap").setAttribute("data-state", "pending");
    if (settled) this.scheduleIG(120);
  };

  /** One forward pass of the shown model on the current digit: probabilities and every layer. */
  Playground.prototype.predict = function () {
    var a = L.forward(this.model, this.x);
    this.activations = a;
    this.probabilities = L.softmax(a.logits);
    this.prediction = L.argmax(a.logits);
    this.showPrediction(!this.strokes.length && !this.background);
    this.paintNetwork();
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

  /** When the pen lifts (or a digit is chosen, undone, cleared): tell a screen reader the
   *  prediction once, and write the state into the URL. */
  Playground.prototype.settled = function () {
    this.announcements++;
    $("pg-announce").textContent = $("pg-prediction").textContent;
    this.saveState();
  };

  // ---- the whole network, linked -----------------------------------------------------------

  /** Vectors are shown as grids: C5's 120 units in 12 rows of 10, F6's 84 in 12 rows of 7. */
  var GRID = {c5: [12, 10], f6: [12, 7], logits: [10, 1]};

  Playground.prototype.buildNetwork = function () {
    var self = this, box = $("pg-net");
    this.net = {};
    L.LAYERS.forEach(function (l) {
      var col = document.createElement("div"), head = document.createElement("div"), maps = document.createElement("div");
      var grid = GRID[l.key] || [l.h, l.w];
      col.className = "nv-col nv-" + l.key;
      head.className = "nv-head";
      head.textContent = l.name + "\n" + (GRID[l.key] ? l.w + (l.key === "logits" ? " logits" : " units") : l.maps + "@" + l.h + "\u00d7" + l.w);
      maps.className = "nv-maps";
      col.appendChild(head); col.appendChild(maps);
      var entry = {layer: l, rows: grid[0], cols: grid[1], maps: []};
      for (var m = 0; m < l.maps; m++) {
        var wrap = document.createElement("div"), canvas = document.createElement("canvas");
        wrap.className = "nv-map";
        canvas.width = grid[1]; canvas.height = grid[0];
        canvas.setAttribute("aria-hidden", "true");
        wrap.appendChild(canvas);
        maps.appendChild(wrap);
        entry.maps.push({wrap: wrap, canvas: canvas});
        (function (mapIndex, cv) {
          function pick(e) {
            var r = cv.getBoundingClientRect();
            var y = D.clamp(Math.floor((e.clientY - r.top) / r.height * grid[0]), 0, grid[0] - 1);
            var x = D.clamp(Math.floor((e.clientX - r.left) / r.width * grid[1]), 0, grid[1] - 1);
            var index = GRID[l.key] ? y * grid[1] + x : (mapIndex * l.h + y) * l.w + x;
            if (index < l.maps * l.h * l.w) self.select(l.key, index);
          }
          cv.addEventListener("pointermove", function (e) { if (e.pointerType === "mouse") pick(e); });
          cv.addEventListener("pointerdown", pick);
        })(m, canvas);
      }
      if (l.key === "logits") {
        var labels = document.createElement("ol");
        labels.className = "nv-logit-values live-numbers";
        entry.values = [];
        for (var k = 0; k < 10; k++) {
          var li = document.createElement("li");
          labels.appendChild(li);
          entry.values.push(li);
        }
        maps.appendChild(labels);
      }
      box.appendChild(col);
      self.net[l.key] = entry;
    });
    box.addEventListener("keydown", function (e) { self.netKey(e); });
  };

  /** Keyboard on the network: arrows move within a map, Shift+Up / Shift+Down to the previous /
   *  next map, Shift+Left / Shift+Right to the layer below / above. */
  Playground.prototype.netKey = function (e) {
    var u = this.unit, keys = L.LAYERS.map(function (l) { return l.key; }), at = keys.indexOf(u.layer);
    var l = L.LAYERS[at], grid = GRID[l.key] || [l.h, l.w], hw = l.h * l.w;
    var m = GRID[l.key] ? 0 : Math.floor(u.index / hw), local = GRID[l.key] ? u.index : u.index % hw;
    var y = Math.floor(local / grid[1]), x = local % grid[1], count = l.maps * hw;
    var d = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]}[e.key];
    if (!d) return;
    e.preventDefault();
    if (e.shiftKey && d[1]) {                                   // another layer, same relative place
      var next = L.LAYERS[D.clamp(at + d[1], 0, keys.length - 1)], ng = GRID[next.key] || [next.h, next.w];
      var ny = Math.min(ng[0] - 1, Math.floor((y + 0.5) / grid[0] * ng[0])), nx = Math.min(ng[1] - 1, Math.floor((x + 0.5) / grid[1] * ng[1]));
      var nm = GRID[next.key] ? 0 : Math.min(next.maps - 1, m), idx = GRID[next.key] ? ny * ng[1] + nx : (nm * next.h + ny) * next.w + nx;
      this.select(next.key, Math.min(idx, next.maps * next.h * next.w - 1));
      return;
    }
    if (e.shiftKey) m = D.clamp(m + d[0], 0, l.maps - 1);
    else { y = D.clamp(y + d[0], 0, grid[0] - 1); x = D.clamp(x + d[1], 0, grid[1] - 1); }
    var index = GRID[l.key] ? y * grid[1] + x : (m * l.h + y) * l.w + x;
    this.select(l.key, Math.min(index, count - 1));
  };

  /** Choose a unit (pointer or keyboard); a screen reader hears its value then, and not while
   *  the maps follow a stroke. */
  Playground.prototype.select = function (layer, index) {
    this.unit = {layer: layer, index: index};
    this.showUnit();
    $("pg-unit-live").textContent = $("pg-unit").firstChild.textContent;
    this.saveStateSoon();
  };

  /** The colour limit of every map: per map, per layer or one for the whole network. */
  Playground.prototype.limits = function () {
    var a = this.activations, mode = $("pg-scale").value, lims = {}, global = 0;
    L.LAYERS.forEach(function (l) {
      if (l.key === "x") return;
      var hw = GRID[l.key] ? a[l.key].length : l.h * l.w, per = [], layerMax = 0;
      for (var m = 0; m < l.maps; m++) {
        var v = D.maxAbs(a[l.key].subarray(m * hw, (m + 1) * hw));
        per.push(v); layerMax = Math.max(layerMax, v);
      }
      lims[l.key] = mode === "map" ? per : per.map(function () { return layerMax; });
      global = Math.max(global, layerMax);
    });
    if (mode === "global") Object.keys(lims).forEach(function (k) { lims[k] = lims[k].map(function () { return global; }); });
    return lims;
  };

  Playground.prototype.paintNetwork = function () {
    var a = this.activations, lims = this.limits(), self = this;
    this.colourLimits = lims;
    L.LAYERS.forEach(function (l) {
      var e = self.net[l.key], hw = GRID[l.key] ? a[l.key].length : l.h * l.w;
      e.maps.forEach(function (m, i) {
        var values = a[l.key].subarray(i * hw, (i + 1) * hw);
        if (l.key === "x") D.grey(m.canvas, values, l.w, l.h, L.BLACK, (1 - L.MEAN) / L.STD);
        else D.diverging(m.canvas, values, e.cols, e.rows, lims[l.key][i] || 1);
      });
      if (e.values) {
        e.values.forEach(function (li, k) {
          li.textContent = k + ": " + D.fmt(a.logits[k], 2) + ", p " + self.probabilities[k].toFixed(3);
          li.classList.toggle("pg-top", k === self.prediction);
        });
      }
    });
    $("pg-scale-note").textContent = {map: "each map scaled to its own largest |value|",
      layer: "each layer scaled to its largest |value|", global: "one scale for every layer: \u00b1" +
      (lims.logits[0] || 0).toPrecision(3)}[$("pg-scale").value];
    this.showUnit();
  };

  function boxOn(entry, mapIndex, y, x, h, w, cls) {
    var wrap = entry.maps[mapIndex].wrap, div = document.createElement("div");
    div.className = "nv-box " + cls;
    div.style.left = (100 * x / entry.cols) + "%"; div.style.top = (100 * y / entry.rows) + "%";
    div.style.width = (100 * w / entry.cols) + "%"; div.style.height = (100 * h / entry.rows) + "%";
    wrap.appendChild(div);
  }

  /** The chosen unit: outlined, its window outlined in the layer below and in the input, and the
   *  computation that made it, with its numbers. */
  Playground.prototype.showUnit = function () {
    var root = $("pg-net"), u = this.unit, net = this.net;
    root.querySelectorAll(".nv-box").forEach(function (b) { b.remove(); });
    root.querySelectorAll(".nv-all").forEach(function (b) { b.classList.remove("nv-all"); });
    var c = L.unitComputation(this.model, this.activations, u.layer, u.index);
    this.computation = c;
    var e = net[u.layer], g = GRID[u.layer];
    if (g) boxOn(e, 0, Math.floor(u.index / g[1]), u.index % g[1], 1, 1, "nv-unit");
    else boxOn(e, c.map, c.y, c.x, 1, 1, "nv-unit");
    if (c.below) {
      var b = net[c.below.layer];
      if (c.below.all) b.maps.forEach(function (m) { m.wrap.classList.add("nv-all"); });
      else c.below.maps.forEach(function (m) { boxOn(b, m, c.below.y, c.below.x, c.below.h, c.below.w, "nv-window"); });
    }
    if (u.layer !== "x") {
      var f = c.input;
      if (f.h === 32) net.x.maps[0].wrap.classList.add("nv-all");
      else boxOn(net.x, 0, f.y, f.x, f.h, f.w, "nv-field");
    }
    this.describeUnit(c);
  };

  Playground.prototype.describeUnit = function (c) {
    var out = $("pg-unit"), F = D.fmt, where, lines = [];
    var place = GRID[c.layer] ? "unit " + c.index : "map " + c.map + ", row " + c.y + ", column " + c.x;
    where = c.name + ", " + place;
    if (c.kind === "input") {
      var r = c.y - 2, col = c.x - 2, inside = r >= 0 && r < 28 && col >= 0 && col < 28;
      var p = inside ? this.pixels[r * 28 + col] : 0;
      lines.push("pixel " + (inside ? "(" + r + ", " + col + ") of the 28\u00d728 digit: " + p : "of the black border: 0") +
                 " \u2192 (" + p + "/255 \u2212 0.1307)/0.3081 = " + F(c.value, 4));
    } else if (c.kind === "pool") {
      lines.push("average of its 2\u00d72 window in " + L.LAYERS.filter(function (l) { return l.key === c.below.layer; })[0].name +
                 " map " + c.map + ": (" + c.terms.map(function (v) { return F(v, 4); }).join(" + ") + ") / 4 = " + F(c.value, 4));
    } else {
      var top = c.terms.map(function (t, i) { return [t[0] * t[1], t, i]; })
        .sort(function (p, q) { return Math.abs(q[0]) - Math.abs(p[0]); }).slice(0, 3);
      lines.push("weighted sum of " + c.terms.length + " inputs (" + describeWindow(c) + "): \u03a3 w\u00b7x = " + F(c.sum, 4));
      lines.push("largest terms: " + top.map(function (t) { return F(t[1][0], 3) + "\u00d7" + F(t[1][1], 3) + " = " + F(t[0], 3); }).join("; "));
      lines.push("plus the bias b = " + F(c.bias, 4) + ": z = " + F(c.z, 4));
      if (c.activation) lines.push("activation tanh(z) = " + F(c.value, 4));
      else lines.push("a logit (no activation): " + F(c.value, 4) + "; softmax e^z / \u03a3 e^z\u2c7c = " + c.softmax.toFixed(4));
    }
    out.innerHTML = "";
    var head = document.createElement("strong");
    head.textContent = where + ": " + F(c.value, 4);
    out.appendChild(head);
    lines.forEach(function (t) { var d = document.createElement("div"); d.textContent = t; out.appendChild(d); });
    out.setAttribute("data-layer", c.layer); out.setAttribute("data-index", String(c.index));
    out.setAttribute("data-value", String(c.value));
    ["sum", "bias", "z", "softmax"].forEach(function (k) {
      if (c[k] !== undefined) out.setAttribute("data-" + k, String(c[k])); else out.removeAttribute("data-" + k);
    });
    if (c.terms && c.kind === "pool") out.setAttribute("data-terms", c.terms.join(","));
    else out.removeAttribute("data-terms");
  };

  function describeWindow(c) {
    var below = L.LAYERS.filter(function (l) { return l.key === c.below.layer; })[0];
    if (c.below.all || below.h === 1) return "all of " + below.name;
    if (c.layer === "c5") return "all " + below.maps + " maps of " + below.name;
    return c.below.h + "\u00d7" + c.below.w + " window of " + (below.maps > 1 ? "each of the " + below.maps + " maps of " : "") +
      below.name + " at row " + c.below.y + ", column " + c.below.x;
  }

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
    var self = this, token = ++this.igToken, model = this.model;
    var chosen = $("pg-target").value, target = chosen === "predicted" ? this.prediction : Number(chosen);
    var kind = $("pg-baseline").value, method = $("pg-method").value, steps = Number($("pg-steps").value);
    var x = this.x, baseline = L.makeBaseline(model, kind, x);
    var stepper = L.igStepper(model, x, target, baseline, steps, method);
    (function slice() {
      if (token !== self.igToken) return;
      if (!stepper.step(5)) { setTimeout(slice, 0); return; }
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
      "Class " + target + ", " + steps + " steps, " + RULES[method] + ", " + kind + " baseline" +
      (this.modelName === "book" ? "" : ", weights of the training run") + ".<br>" +
      "Sum of attributions " + D.fmt(ig.sum) + "; F(x) \u2212 F(x\u2032) = " + D.fmt(ig.fx) + " \u2212 (" +
      D.fmt(ig.fb) + ") = " + D.fmt(change) + ".<br>" +
      "<strong>Completeness gap</strong> \u03b4 = " + D.fmt(ig.delta, 4) + " (" + D.fmt(100 * rel, 2) +
      "% of F(x) \u2212 F(x\u2032))";
    $("pg-gap").setAttribute("data-state", "ready");
    $("pg-ig-panel").classList.remove("live-stale");
    this.igVersion++;
  };

  // ---- the URL ------------------------------------------------------------------------------

  /** The state as URL parameters: strokes (s), stored digit (d), centring (c), the IG settings
   *  (t, b, m, n), the colour scale (scale), the chosen unit (u) and the training settings
   *  (lr, bs, mom, wd, seed). */
  Playground.prototype.stateParams = function () {
    var p = new URLSearchParams(), t = this.train.settings();
    if (this.strokes.length) p.set("s", encodeStrokes(this.strokes));
    if (this.backgroundIndex !== null) p.set("d", String(this.backgroundIndex));
    p.set("c", $("pg-centre").checked ? "1" : "0");
    p.set("t", $("pg-target").value); p.set("b", $("pg-baseline").value);
    p.set("m", $("pg-method").value); p.set("n", $("pg-steps").value);
    p.set("scale", $("pg-scale").value);
    p.set("u", this.unit.layer + "." + this.unit.index);
    p.set("lr", String(t.lr)); p.set("bs", String(t.batch)); p.set("mom", String(t.momentum));
    p.set("wd", String(t.weightDecay)); p.set("seed", String(t.seed));
    return p;
  };

  Playground.prototype.saveState = function () {
    if (this.restoring) return;
    var url = global.location.href.split("#")[0] + "#" + this.stateParams().toString();
    try { global.history.replaceState(null, "", url); } catch (e) { /* a page that forbids it */ }
    $("pg-link").href = url;
  };

  Playground.prototype.saveStateSoon = function () {
    var self = this;
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(function () { self.saveState(); }, 300);
  };

  function setSelect(id, value) {
    var s = $(id);
    if (value === null) return;
    if ([].some.call(s.options, function (o) { return o.value === value; })) s.value = value;
    else throw new Error(id.replace("pg-", "") + " " + JSON.stringify(value) + " is not one of the choices");
  }

  /** Restore the state from a URL's fragment; a bad entry is reported on the page and skipped. */
  Playground.prototype.restoreState = function (hash) {
    this.restoring = true;
    var p = new URLSearchParams((hash || "").replace(/^#/, "")), problems = [], self = this;
    function attempt(what, fn) { try { fn(); } catch (e) { problems.push(what + ": " + e.message); } }
    if (p.has("d")) attempt("d", function () {
      var i = Number(p.get("d"));
      if (!self.digits || !(Number.isInteger(i) && i >= 0 && i < self.digits.count)) throw new Error("no stored digit " + p.get("d"));
      self.setBackground(i);
    });
    if (p.has("s")) attempt("s", function () { self.strokes = decodeStrokes(p.get("s")); });
    if (p.has("c")) $("pg-centre").checked = p.get("c") !== "0";
    [["t", "pg-target"], ["b", "pg-baseline"], ["m", "pg-method"], ["scale", "pg-scale"]].forEach(function (k) {
      if (p.has(k[0])) attempt(k[0], function () { setSelect(k[1], p.get(k[0])); });
    });
    if (p.has("n")) attempt("n", function () {
      var n = Number(p.get("n"));
      if (!(Number.isInteger(n) && n >= 2 && n <= 200)) throw new Error("steps must be 2..200");
      $("pg-steps").value = String(n); $("pg-steps-value").textContent = String(n);
    });
    if (p.has("u")) attempt("u", function () {
      var parts = p.get("u").split("."), l = L.LAYERS.filter(function (x) { return x.key === parts[0]; })[0];
      var i = Number(parts[1]);
      if (!l || !(Number.isInteger(i) && i >= 0 && i < l.maps * l.h * l.w)) throw new Error("no unit " + p.get("u"));
      self.unit = {layer: l.key, index: i};
    });
    attempt("training settings", function () { self.train.restore(p); });
    $("pg-url-note").textContent = problems.length ? "Parts of the link were not understood and were skipped: " + problems.join("; ") : "";
  };

  // ------------------------------------------------------------------------------------------
  // The Train panel: LeNet-5 learning in the page (in a Web Worker built from a Blob)
  // ------------------------------------------------------------------------------------------

  var SCRIPT_BASE = (document.currentScript && document.currentScript.src || "").replace(/[^/]*$/, "");
  var DEFAULTS = {lr: 0.05, batch: 32, momentum: 0.9, weightDecay: 0, seed: 0};
  var FIELDS = {lr: ["tr-lr", "lr", 1e-5, 1], batch: ["tr-batch", "bs", 1, 512], momentum: ["tr-momentum", "mom", 0, 0.99],
                weightDecay: ["tr-wd", "wd", 0, 0.1], seed: ["tr-seed", "seed", 0, 4294967295]};
  var GALLERY = 24;

  function TrainPanel(pg) {
    var self = this;
    this.pg = pg;
    this.worker = null; this.mode = null; this.playing = false; this.started = false;
    this.losses = []; this.vals = []; this.reports = 0; this.status = null;
    Object.keys(FIELDS).forEach(function (k) {
      $(FIELDS[k][0]).addEventListener("change", function () { self.settingChanged(k); });
    });
    $("tr-play").addEventListener("click", function () { self.playing ? self.pause() : self.play(); });
    $("tr-step").addEventListener("click", function () { self.step(); });
    $("tr-reset").addEventListener("click", function () { self.reset(); });
    $("tr-book").addEventListener("click", function () { self.loadBook(); });
    this.kernels = [];
    for (var i = 0; i < 6; i++) {
      var c = document.createElement("canvas");
      c.width = 5; c.height = 5;
      c.setAttribute("role", "img"); c.setAttribute("aria-label", "C1 kernel " + i);
      $("tr-kernels").appendChild(c);
      this.kernels.push(c);
    }
    this.showKernels(pg.bookModel);
    this.drawCurves();
  }

  /** The settings in the inputs, checked: {lr, batch, momentum, weightDecay, seed}. A value out of
   *  range is named on the page and the last good one kept. */
  TrainPanel.prototype.settings = function () {
    var out = {}, problems = [];
    Object.keys(FIELDS).forEach(function (k) {
      var f = FIELDS[k], v = Number($(f[0]).value);
      if ($(f[0]).value.trim() === "" || !isFinite(v) || v < f[2] || v > f[3] || ((k === "batch" || k === "seed") && !Number.isInteger(v))) {
        problems.push(k + " must be " + (k === "batch" || k === "seed" ? "a whole number " : "") + "from " + f[2] + " to " + f[3]);
        v = DEFAULTS[k];
        $(f[0]).setAttribute("aria-invalid", "true");
      } else {
        $(f[0]).removeAttribute("aria-invalid");
      }
      out[k] = v;
    });
    $("tr-problem").textContent = problems.join("; ");
    return out;
  };

  TrainPanel.prototype.restore = function (p) {
    var bad = [];
    Object.keys(FIELDS).forEach(function (k) {
      var f = FIELDS[k];
      if (p.has(f[1])) $(f[0]).value = p.get(f[1]);
    });
    this.settings();
    if ($("tr-problem").textContent) bad.push($("tr-problem").textContent);
    if (bad.length) throw new Error(bad.join("; "));
  };

  TrainPanel.prototype.settingChanged = function (k) {
    var s = this.settings();
    if (this.started) {
      if (k === "seed") this.reset();
      else this.send({cmd: "settings", settings: s});
    }
    this.pg.saveState();
  };

  /** Load the training digits (a script written at build time, fetched the first time it is
   *  needed: a <script> element works from file:// too), then start the worker. */
  TrainPanel.prototype.ensure = function (then) {
    var self = this;
    if (this.started) { then(); return; }
    if (this.loading) { this.loading.push(then); return; }
    this.loading = [then];
    $("tr-status").textContent = "loading 10,000 training digits\u2026";
    function go() {
      var d = global.MNIST_TRAIN_DIGITS;
      if (!d || !global.MNIST_TEST_DIGITS) {
        $("tr-status").textContent = "No training digits: MNIST was not on the machine that built this page.";
        self.loading = null;
        return;
      }
      var pixels = L.decodeDigits(d.pixels), labels = L.bytesFromBase64(d.labels.data), n = d.train;
      var test = self.pg.digits;
      self.data = {train: pixels.subarray(0, n * 784), trainLabels: labels.subarray(0, n),
                   val: pixels.subarray(n * 784, d.count * 784), valLabels: labels.subarray(n, d.count),
                   gallery: test.pixels.subarray(0, GALLERY * 784), galleryLabels: Uint8Array.from(test.labels.slice(0, GALLERY))};
      self.startWorker();
      self.started = true;
      var waiting = self.loading;
      self.loading = null;
      waiting.forEach(function (f) { f(); });
    }
    if (global.MNIST_TRAIN_DIGITS !== undefined) { go(); return; }
    var s = document.createElement("script");
    s.src = SCRIPT_BASE + "mnist_train_digits.js";
    s.onload = go;
    s.onerror = function () { global.MNIST_TRAIN_DIGITS = null; go(); };
    document.head.appendChild(s);
  };

  TrainPanel.prototype.startWorker = function () {
    var self = this, src = "var LeNet5Live = (" + global.LeNet5LiveFactory + ")(self);\n(" +
      L.trainerWorkerMain + ")(self, LeNet5Live);\n";
    var init = {cmd: "init", data: this.data, settings: this.settings()};
    function local(reason) {
      var scope = {performance: global.performance, postMessage: function (m) { setTimeout(function () { self.receive(m); }, 0); }};
      L.trainerWorkerMain(scope, L);
      self.worker = null; self.mode = "page";
      self.send = function (m) { scope.onmessage({data: m}); };
      self.whyLocal = reason;
      init.budget = 8;
      self.send(init);
    }
    try {
      var url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
      this.worker = new Worker(url);
      this.mode = "worker";
      this.worker.onmessage = function (e) { self.receive(e.data); };
      this.worker.onerror = function (e) {                     // cannot run here: train in the page
        e.preventDefault();
        self.worker.terminate();
        local("the browser refused a worker");
        if (self.playing) self.send({cmd: "play"});
      };
      this.send = function (m) { self.worker.postMessage(m); };
      this.send(init);
    } catch (err) {
      local("the browser refused a worker (" + err.message + ")");
    }
  };

  TrainPanel.prototype.play = function () {
    var self = this;
    this.ensure(function () {
      self.playing = true;
      self.useTraining();
      self.send({cmd: "play"});
      self.showButtons();
    });
  };

  TrainPanel.prototype.pause = function () {
    if (!this.started) return;
    this.playing = false;
    this.send({cmd: "pause"});
    this.showButtons();
    this.pg.scheduleIG(0);
  };

  TrainPanel.prototype.step = function () {
    var self = this;
    this.ensure(function () {
      self.playing = false;
      self.useTraining();
      self.send({cmd: "step"});
      self.showButtons();
    });
  };

  TrainPanel.prototype.reset = function () {
    var self = this;
    this.ensure(function () {
      self.losses = []; self.vals = [];
      self.send({cmd: "reset", settings: self.settings()});
    });
  };

  /** The playground, the network view and IG show the weights being trained. */
  TrainPanel.prototype.useTraining = function () {
    if (this.pg.modelName === "training") return;
    this.pg.modelName = "training";
    if (this.model) this.pg.model = this.model;
    this.showWhich();
  };

  /** Back to the book's trained weights (the training run stays where it is, paused). */
  TrainPanel.prototype.loadBook = function () {
    if (this.playing) this.pause();
    this.pg.model = this.pg.bookModel;
    this.pg.modelName = "book";
    this.showKernels(this.pg.bookModel);
    this.pg.predict();
    this.pg.scheduleIG(0);
    this.showWhich();
  };

  TrainPanel.prototype.showWhich = function () {
    $("tr-shown").textContent = this.pg.modelName === "book"
      ? "The page shows the book's trained weights."
      : "The page shows the weights being trained" + (this.status ? " (after " + this.status.steps + " steps)." : ".");
  };

  TrainPanel.prototype.showButtons = function () {
    $("tr-play").textContent = this.playing ? "Pause" : "Play";
    $("tr-play").setAttribute("aria-pressed", this.playing ? "true" : "false");
  };

  TrainPanel.prototype.receive = function (m) {
    if (m.type !== "report") return;
    this.reports++;
    if (m.reset) { this.losses = []; this.vals = []; }
    this.losses = this.losses.concat(m.losses);
    this.vals = this.vals.concat(m.vals);
    this.status = m;
    var model = {baselines: this.pg.bookModel.baselines};
    L.PARAMS.forEach(function (name) {
      var b = m.params[name];
      model[name] = {W: b.W, b: b.b, out: b.b.length, in: null, k: null};
    });
    var self = this;
    L.PARAMS.forEach(function (name) { model[name].in = self.pg.bookModel[name].in; model[name].k = self.pg.bookModel[name].k; });
    this.model = model;
    if (m.gallery) this.showGallery(m.gallery);
    if (this.pg.modelName === "training") {
      this.pg.model = model;
      this.showKernels(model);
      this.pg.predict();
      if (!this.playing) this.pg.scheduleIG(0);
    }
    this.drawCurves();
    var last = this.vals[this.vals.length - 1], loss = this.losses.length ? this.losses[this.losses.length - 1][1] : NaN;
    $("tr-status").textContent = "pass " + Math.max(1, m.epoch) + ", step " + m.steps + ", " + m.seen.toLocaleString("en") +
      " images seen" + (m.rate ? " (" + Math.round(m.rate) + " images/s" + (this.mode === "page" ? ", in the page" : "") + ")" : "") +
      (isFinite(loss) ? "; last batch loss " + loss.toFixed(3) : "") +
      (last ? "; validation accuracy " + (100 * last[1]).toFixed(1) + "% (" + this.data.valLabels.length.toLocaleString("en") + " digits)" : "");
    this.showWhich();
  };

  TrainPanel.prototype.showKernels = function (model) {
    var W = model.C1.W, lim = 0, i;
    for (i = 0; i < W.length; i++) lim = Math.max(lim, Math.abs(W[i]));
    for (i = 0; i < 6; i++) D.diverging(this.kernels[i], W.subarray(i * 25, (i + 1) * 25), 5, 5, lim || 1);
  };

  TrainPanel.prototype.showGallery = function (gallery) {
    var box = $("tr-gallery"), d = this.data;
    if (!box.children.length) {
      for (var i = 0; i < gallery.length; i++) {
        var fig = document.createElement("figure"), c = document.createElement("canvas"), cap = document.createElement("figcaption");
        fig.className = "live-figure tr-item";
        c.setAttribute("role", "img"); c.setAttribute("aria-label", "test digit " + i + ", a " + d.galleryLabels[i]);
        D.grey(c, d.gallery.subarray(i * 784, (i + 1) * 784), 28, 28, 0, 255);
        fig.appendChild(c); fig.appendChild(cap);
        box.appendChild(fig);
      }
    }
    var right = 0;
    gallery.forEach(function (top, i) {
      var fig = box.children[i], ok = top[0][0] === d.galleryLabels[i];
      right += ok ? 1 : 0;
      fig.classList.toggle("tr-wrong", !ok);
      var cap = fig.lastChild, first = document.createElement("strong"), rest = document.createElement("span");
      first.textContent = top[0][0] + ": " + top[0][1].toFixed(2);
      rest.textContent = top.slice(1).map(function (t) { return t[0] + " " + t[1].toFixed(2).slice(1); }).join(" \u00b7 ");
      cap.textContent = "";
      cap.appendChild(first); cap.appendChild(rest);
    });
    $("tr-gallery-note").textContent = right + " of " + gallery.length + " read right (top 3 classes and probabilities; red: wrong)";
  };

  /** The loss of every batch (grey) with its running mean over 20 batches, and the validation
   *  accuracy, against the number of training images seen. */
  TrainPanel.prototype.drawCurves = function () {
    var n = this.data ? this.data.trainLabels.length : 9000, seen = this.losses.length ? this.losses[this.losses.length - 1][0] : 0;
    var xmax = Math.max(n, seen);
    plot($("tr-loss"), "training loss (per batch; line: mean of 20)", xmax, 0, 2.5, this.losses.map(function (p) { return [p[0], p[1]]; }), 20);
    plot($("tr-acc"), "validation accuracy", xmax, 0, 1, this.vals.map(function (p) { return [p[0], p[1]]; }), 0, [0.5, 0.9], true);
  };

  function plot(canvas, title, xmax, ymin, ymax, points, smooth, marks, percent) {
    function label(v) { return percent ? Math.round(100 * v) + "%" : String(v); }
    var ratio = global.devicePixelRatio || 1, w = canvas.clientWidth || 300, h = canvas.clientHeight || 150;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    var ctx = canvas.getContext("2d"), L0 = 34, R = 8, T = 16, B = 20;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    function X(v) { return L0 + (w - L0 - R) * v / xmax; }
    function Y(v) { return T + (h - T - B) * (1 - (D.clamp(v, ymin, ymax) - ymin) / (ymax - ymin)); }
    ctx.font = "11px sans-serif"; ctx.fillStyle = "#333";
    ctx.fillText(title, L0, 11);
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(L0, T); ctx.lineTo(L0, h - B); ctx.lineTo(w - R, h - B); ctx.stroke();
    if (!percent) ctx.fillText(label(ymax), 2, T + 4);   // (a percentage axis has its marks)
    ctx.fillText(label(ymin), 2, h - B);
    ctx.fillText("0", L0 - 3, h - 6);
    var right = xmax.toLocaleString("en") + " images";
    ctx.fillText(right, w - R - ctx.measureText(right).width, h - 6);
    (marks || []).forEach(function (v) {
      ctx.strokeStyle = "#ddd"; ctx.beginPath(); ctx.moveTo(L0, Y(v)); ctx.lineTo(w - R, Y(v)); ctx.stroke();
      ctx.fillText(label(v), 2, Y(v) + 4);
    });
    if (!points.length) return;
    ctx.fillStyle = smooth ? "rgba(120,120,120,0.35)" : "#c0392b";
    points.forEach(function (p) { ctx.fillRect(X(p[0]) - 1, Y(p[1]) - 1, smooth ? 2 : 3, smooth ? 2 : 3); });
    ctx.strokeStyle = smooth ? "#3465a4" : "#c0392b"; ctx.lineWidth = 1.5;
    ctx.beginPath();
    var sum = 0;
    points.forEach(function (p, i) {
      var v = p[1];
      if (smooth) { sum += p[1]; if (i >= smooth) sum -= points[i - smooth][1]; v = sum / Math.min(i + 1, smooth); }
      if (i) ctx.lineTo(X(p[0]), Y(v)); else ctx.moveTo(X(p[0]), Y(v));
    });
    ctx.stroke();
  }

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

  global.LeNet5PlaygroundInternals = {rasterise: rasterise, centredInk: centredInk, encodeStrokes: encodeStrokes,
                                      decodeStrokes: decodeStrokes};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window);
