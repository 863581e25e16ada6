// samkit label: masks in the page. COCO RLE <-> bitmaps (one byte per pixel, row-major),
// bitmaps -> coloured canvases (filled or outline), and brush strokes painted into a bitmap.
"use strict";

(function () {
  // COCO compressed counts -> run lengths (pycocotools' rleFrString).
  function decodeCounts(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = 1, c = 0;
      while (more) {
        c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20; p++; k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }
  const runs = (rle) => (typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts);

  // RLE (column-major runs) -> Uint8Array of h * w, row-major, 1 inside.
  function toBitmap(rle) {
    const [h, w] = rle.size;
    const bits = new Uint8Array(h * w);
    const counts = runs(rle);
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      if (i % 2 === 1) {
        for (let at = pos; at < pos + counts[i]; at++) {
          const x = (at / h) | 0;
          bits[(at - x * h) * w + x] = 1;
        }
      }
      pos += counts[i];
    }
    return bits;
  }
  // Bitmap -> uncompressed COCO RLE (column-major runs, starting with zeros).
  function fromBitmap(bits, h, w) {
    const counts = [];
    let value = 0, n = 0;
    for (let x = 0; x < w; x++) {
      for (let y = 0, o = x; y < h; y++, o += w) {
        if (bits[o] !== value) { counts.push(n); n = 0; value = bits[o]; }
        n++;
      }
    }
    counts.push(n);
    return { size: [h, w], counts };
  }
  function has(rle, x, y) {
    const [h] = rle.size;
    const target = Math.floor(x) * h + Math.floor(y);
    const counts = runs(rle);
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      if (target < pos + counts[i]) return i % 2 === 1;
      pos += counts[i];
    }
    return false;
  }
  const area = (bits) => bits.reduce((a, b) => a + b, 0);

  // The bounding box [x0, y0, x1, y1] (inclusive) of a bitmap's set pixels, or null.
  function bounds(bits, h, w) {
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; x++) {
        if (bits[row + x]) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          y1 = y;
          if (y < y0) y0 = y;
        }
      }
    }
    return x1 < 0 ? null : [x0, y0, x1, y1];
  }
  // Bitmap -> canvas of the mask's bounding box (placed at c.ox, c.oy in the image), the mask's
  // pixels in colour; with `outline` only the pixels with a 4-neighbour outside the mask,
  // `outline` pixels wide. Memory is per object's box, not per image.
  function paint(bits, h, w, color, alpha, outline) {
    const box = bounds(bits, h, w) || [0, 0, 0, 0];
    const [x0, y0] = box, bw = box[2] - x0 + 1, bh = box[3] - y0 + 1;
    const img = new ImageData(bw, bh);
    const px = new Uint32Array(img.data.buffer);
    const value = ((alpha << 24) | (color[2] << 16) | (color[1] << 8) | color[0]) >>> 0;
    const on = outline ? edges(bits, h, w, box, outline) : null;
    for (let y = 0; y < bh; y++) {
      for (let x = 0; x < bw; x++) {
        const o = (y + y0) * w + x + x0;
        if (on ? on[y * bw + x] : bits[o]) px[y * bw + x] = value;
      }
    }
    const c = document.createElement("canvas");
    c.width = bw; c.height = bh; c.ox = x0; c.oy = y0;
    c.getContext("2d").putImageData(img, 0, 0);
    return c;
  }
  // RLE -> the same canvas as paint(toBitmap(rle), ...) without a bitmap of the whole image:
  // the box comes from the runs, and only the mask's pixels are visited.
  function paintRle(rle, color, alpha) {
    const [h] = rle.size, counts = runs(rle);
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1, pos = 0;
    for (let i = 0; i < counts.length; pos += counts[i], i++) {
      if (i % 2 === 0 || !counts[i]) continue;
      const end = pos + counts[i] - 1, c0 = (pos / h) | 0, c1 = (end / h) | 0;
      x0 = Math.min(x0, c0); x1 = Math.max(x1, c1);
      y0 = Math.min(y0, c1 > c0 ? 0 : pos - c0 * h); y1 = Math.max(y1, c1 > c0 ? h - 1 : end - c1 * h);
    }
    if (x1 < 0) { x0 = y0 = x1 = y1 = 0; }
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const img = new ImageData(bw, bh);
    const px = new Uint32Array(img.data.buffer);
    const value = ((alpha << 24) | (color[2] << 16) | (color[1] << 8) | color[0]) >>> 0;
    pos = 0;
    for (let i = 0; i < counts.length; pos += counts[i], i++) {
      if (i % 2 === 0) continue;
      for (let at = pos, left = counts[i]; left > 0;) {  // column segments of the run
        const x = (at / h) | 0, y = at - x * h, len = Math.min(left, h - y);
        for (let k = 0, o = (y - y0) * bw + x - x0; k < len; k++, o += bw) px[o] = value;
        at += len; left -= len;
      }
    }
    const c = document.createElement("canvas");
    c.width = bw; c.height = bh; c.ox = x0; c.oy = y0;
    c.getContext("2d").putImageData(img, 0, 0);
    return c;
  }
  // The edge pixels of a bitmap inside `box`, as a box-sized bitmap, grown inwards to `width`.
  function edges(bits, h, w, box, width) {
    const [x0, y0] = box, bw = box[2] - x0 + 1, bh = box[3] - y0 + 1;
    const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && bits[y * w + x] === 1;
    let out = new Uint8Array(bw * bh);
    for (let y = 0; y < bh; y++) {
      for (let x = 0; x < bw; x++) {
        const X = x + x0, Y = y + y0;
        if (inside(X, Y) && (!inside(X - 1, Y) || !inside(X + 1, Y) || !inside(X, Y - 1) ||
            !inside(X, Y + 1))) out[y * bw + x] = 1;
      }
    }
    for (let k = 1; k < width; k++) {  // grow inwards, one pixel per step
      const grown = out.slice();
      for (let y = 0; y < bh; y++) {
        for (let x = 0; x < bw; x++) {
          if (!out[y * bw + x]) continue;
          for (const [dx, dy] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
            const nx = x + dx, ny = y + dy;
            if (nx >= 0 && ny >= 0 && nx < bw && ny < bh && inside(nx + x0, ny + y0)) grown[ny * bw + nx] = 1;
          }
        }
      }
      out = grown;
    }
    return out;
  }

  // Set (value 1) or clear (0) every pixel whose centre lies within `radius` image pixels of
  // the polyline `pts` ([[x, y], ...], one point: a disc). Returns the pixels changed.
  function stroke(bits, h, w, pts, radius, value) {
    let changed = 0;
    const segs = pts.length === 1 ? [[pts[0], pts[0]]] : pts.slice(1).map((p, i) => [pts[i], p]);
    for (const [a, b] of segs) {
      const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - radius));
      const x1 = Math.min(w - 1, Math.ceil(Math.max(a[0], b[0]) + radius));
      const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - radius));
      const y1 = Math.min(h - 1, Math.ceil(Math.max(a[1], b[1]) + radius));
      const dx = b[0] - a[0], dy = b[1] - a[1], len2 = dx * dx + dy * dy;
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const cx = x + 0.5, cy = y + 0.5;
          const t = len2 ? Math.max(0, Math.min(1, ((cx - a[0]) * dx + (cy - a[1]) * dy) / len2)) : 0;
          const ex = cx - a[0] - t * dx, ey = cy - a[1] - t * dy;
          if (ex * ex + ey * ey <= radius * radius && bits[y * w + x] !== value) {
            bits[y * w + x] = value; changed++;
          }
        }
      }
    }
    return changed;
  }

  window.samkitMasks = { decodeCounts, toBitmap, fromBitmap, has, area, paint, paintRle, stroke };
})();
