/* Drawing arrays into canvases for the live pages (a classic script: window.LiveDraw).
 *
 * A canvas holds one array at one canvas pixel per value; CSS scales it up with
 * image-rendering: pixelated, so a 28x28 map stays sharp at any display size.
 */
(function (global) {
  "use strict";

  /** Grey scale: lo -> black, hi -> white (MNIST's white ink on black). */
  function grey(canvas, values, width, height, lo, hi) {
    paint(canvas, values, width, height, function (v) {
      var g = Math.round(255 * clamp((v - lo) / ((hi - lo) || 1), 0, 1));
      return [g, g, g];
    });
  }

  /** Diverging blue-white-red on [-lim, lim] (matplotlib's RdBu_r end colours); 0 is white. */
  function diverging(canvas, values, width, height, lim) {
    lim = lim || 1;
    paint(canvas, values, width, height, function (v) {
      var t = clamp(v / lim, -1, 1), end = t >= 0 ? [178, 24, 43] : [33, 102, 172], a = Math.abs(t);
      return [Math.round(255 + (end[0] - 255) * a), Math.round(255 + (end[1] - 255) * a),
              Math.round(255 + (end[2] - 255) * a)];
    });
  }

  function paint(canvas, values, width, height, colour) {
    if (canvas.width !== width) canvas.width = width;
    if (canvas.height !== height) canvas.height = height;
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(width, height);
    for (var i = 0; i < width * height; i++) {
      var c = colour(values[i]);
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function clamp(v, lo, hi) { return v < lo ? lo : v > hi ? hi : v; }

  function maxAbs(values) {
    var m = 0;
    for (var i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
    return m;
  }

  /** A signed number for the page with `digits` decimals (3 by default) and a real minus sign.
   *  The sign is the value's own: a number too small to show in that many decimals is written in
   *  scientific notation ("\u22123.2e\u22126"), never as a sign-less or falsely signed 0; only 0
   *  itself prints as "0". */
  function fmt(v, digits) {
    digits = digits === undefined ? 3 : digits;
    if (v === 0) return "0";
    if (!isFinite(v)) return String(v);
    var a = Math.abs(v), s = a.toFixed(digits);
    if (Number(s) === 0) s = a.toExponential(1).replace("e-", "e\u2212").replace("e+", "e");
    return (v < 0 ? "\u2212" : "+") + s;
  }

  global.LiveDraw = {grey: grey, diverging: diverging, paint: paint, clamp: clamp, maxAbs: maxAbs, fmt: fmt};
})(window);
