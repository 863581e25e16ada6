// samkit label: the page. Plain JavaScript and a canvas; talks to the HTTP API of this server.
// Coordinates sent to the server are original-image pixels; masks arrive as COCO RLE.
// Modules (loaded in this order): masks.js (RLE and bitmaps), label.js (state, drawing,
// objects, images), save.js (saves, retried), proposals.js, edit.js (undo / redo, brush and eraser),
// review.js (status, review, progress, leases), input.js (mouse and keys; starts the page).
// They share window.samkit (S) and S.fn.
"use strict";

(function () {
  const PALETTE = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]];
  const M = window.samkitMasks;
  const CANDIDATE = [255, 215, 0];
  const PROPOSAL = [0, 200, 255];
  const token = new URLSearchParams(location.search).get("token");
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");

  // Everything the page knows; exposed as window.samkit for tests and the benchmark.
  const S = {
    images: [], classes: [], cur: -1, image: null, label: null,
    objects: [], selected: -1, colors: 0,
    points: [], box: null, undo: [], redo: [], histories: {},
    opacity: 0.45, outline: false, hideAll: false, tool: "prompt", brush: 6, filter: "",
    pred: null, cand: 0, seq: 0, proposals: [], detector: false, chain: Promise.resolve(),
    view: { scale: 1, ox: 0, oy: 0 },
    latencies: [], serverMs: [], lastDrawn: 0, saving: 0, loaded: 0,
    client: sessionStorage.getItem("samkit-client") || Math.random().toString(36).slice(2),
    annotator: localStorage.getItem("samkit-annotator") || "",
  };
  sessionStorage.setItem("samkit-client", S.client);  // a reload of this tab keeps its leases
  window.samkit = S;
  const fn = S.fn = {};

  // ------------------------------------------------------------------ HTTP
  async function api(method, path, body, extra) {
    const headers = Object.assign({}, extra || {});
    if (token) headers["Authorization"] = "Bearer " + token;
    headers["X-Client"] = S.client;  // leases (review.js); the name goes on edits
    if (S.annotator) headers["X-Annotator"] = S.annotator;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers,
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
      const err = new Error(res.status + ": " + detail);
      err.status = res.status;
      throw err;
    }
    return res;
  }
  function status(text, error) {
    $("status").textContent = text;
    $("status").className = error ? "error" : "";
  }

  // ------------------------------------------------------------------ drawing
  // Distinct colours per instance: hues a golden angle apart.
  function instanceColor(k) {
    const h = (k * 137.508) % 360, s = 0.75, v = 0.95;
    const f = (n) => { const c = (n + h / 60) % 6; return v - v * s * Math.max(0, Math.min(c, 4 - c, 1)); };
    return [f(5), f(3), f(1)].map((x) => Math.round(255 * x));
  }
  function fit() {
    const stage = $("stage"), dpr = window.devicePixelRatio || 1;
    const w = stage.clientWidth, h = stage.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);  // sharp on HiDPI
    canvas.style.width = w + "px"; canvas.style.height = h + "px";
    S.dpr = dpr;
    if (!S.image) return;
    const s = Math.min(w / S.image.width, h / S.image.height);
    S.view = { scale: s, ox: (w - s * S.image.width) / 2, oy: (h - s * S.image.height) / 2 };
  }
  // The layer of an object: its fill, or in outline mode its edge (the selected one: both).
  function layer(o, kind) {
    if (!o[kind] && kind === "fill") o.fill = M.paintRle(o.rle, o.color, 255);
    if (!o[kind]) {
      const [h, w] = o.rle.size;
      o[kind] = M.paint(M.toBitmap(o.rle), h, w, kind === "edge" ? o.color : [255, 255, 255], 255,
        Math.max(1, Math.round(2 / S.view.scale)));
    }
    return o[kind];
  }
  function draw() {
    const dpr = S.dpr || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!S.image) return;
    const v = S.view;
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.ox, dpr * v.oy);
    ctx.imageSmoothingEnabled = v.scale < 1;
    ctx.drawImage(S.image, 0, 0);
    S.objects.forEach((o, i) => {
      if (o.hidden || S.hideAll) return;
      ctx.globalAlpha = S.outline ? 1 : S.opacity;
      const c = layer(o, S.outline ? "edge" : "fill");
      ctx.drawImage(c, c.ox, c.oy);
      if (i === S.selected) { const r = layer(o, "ring"); ctx.globalAlpha = 1; ctx.drawImage(r, r.ox, r.oy); }
    });
    ctx.globalAlpha = 1;
    S.proposals.forEach((p, i) => {
      if (!p.canvas) p.canvas = M.paintRle(p.rle, p.color || PROPOSAL, 255);
      ctx.globalAlpha = i === 0 ? 0.6 : 0.2;
      ctx.drawImage(p.canvas, p.canvas.ox, p.canvas.oy);
    });
    ctx.globalAlpha = 1;
    if (S.pred) {
      const m = S.pred.masks[S.cand];  // candidates are painted when first shown
      if (!m.canvas) m.canvas = M.paintRle(m.rle, CANDIDATE, 140);
      ctx.drawImage(m.canvas, m.canvas.ox, m.canvas.oy);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);  // overlays in CSS pixels
    if (S.box) {
      const [x1, y1] = toScreen(S.box[0], S.box[1]), [x2, y2] = toScreen(S.box[2], S.box[3]);
      ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffd700"; ctx.lineWidth = 2;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
    }
    for (const p of S.points) {  // positive: filled "+", negative: hollow "-" (not colour only)
      const [x, y] = toScreen(p.x, p.y);
      ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI);
      ctx.fillStyle = p.label ? "#00c853" : "#d50000"; ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
      ctx.beginPath(); ctx.moveTo(x - 3, y); ctx.lineTo(x + 3, y);
      if (p.label) { ctx.moveTo(x, y - 3); ctx.lineTo(x, y + 3); }
      ctx.stroke();
    }
    if (fn.drawStroke) fn.drawStroke(ctx);
  }
  const toScreen = (x, y) => [x * S.view.scale + S.view.ox, y * S.view.scale + S.view.oy];
  function toImage(ev) {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left - S.view.ox) / S.view.scale,
      (ev.clientY - r.top - S.view.oy) / S.view.scale];
  }
  const clampX = (x) => Math.min(Math.max(x, 0), S.image.width);
  const clampY = (y) => Math.min(Math.max(y, 0), S.image.height);

  // ------------------------------------------------------------------ side panel
  const classColor = (label) => PALETTE[Math.max(0, S.classes.indexOf(label)) % PALETTE.length];
  function renderClasses() {
    const box = $("classes");
    box.innerHTML = "";
    S.classes.forEach((c, i) => {
      const b = document.createElement("button");
      b.textContent = (i < 9 ? i + 1 + " " : "") + c;
      b.dataset.cls = c;
      b.style.borderLeft = "6px solid rgb(" + classColor(c).join(",") + ")";
      if (c === S.label) b.className = "active";
      b.onclick = () => chooseClass(c);
      box.appendChild(b);
    });
  }
  function renderCandidates() {
    const box = $("candidates");
    box.innerHTML = "";
    if (!S.pred) { box.innerHTML = "<em>click on the image</em>"; return; }
    S.pred.masks.forEach((m, i) => {
      const b = document.createElement("button");
      b.textContent = (i + 1) + ": " + m.score.toFixed(3);
      if (i === S.cand) b.className = "active";
      b.onclick = () => { S.cand = i; renderCandidates(); draw(); };
      box.appendChild(b);
    });
  }
  function renderObjects() {
    const list = $("objects");
    list.innerHTML = "";
    $("object-count").textContent = "(" + S.objects.length + ")";
    S.objects.forEach((o, i) => {
      const li = document.createElement("li");
      if (i === S.selected) li.className = "selected";
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = "rgb(" + o.color.join(",") + ")";
      sw.style.borderColor = "rgb(" + classColor(o.label).join(",") + ")";
      li.appendChild(sw);
      const eye = document.createElement("button");
      eye.textContent = o.hidden ? "show" : "hide";
      eye.className = "eye";
      eye.setAttribute("aria-pressed", String(!!o.hidden));
      eye.onclick = (ev) => { ev.stopPropagation(); fn.toggleHidden(i); };
      li.appendChild(eye);
      const sel = document.createElement("select");
      for (const c of S.classes) sel.add(new Option(c, c, false, c === o.label));
      sel.onchange = () => relabel(i, sel.value);
      li.appendChild(sel);
      if (o.crowd) {
        const tag = document.createElement("span");
        tag.className = "crowd"; tag.textContent = "crowd"; tag.title = "a crowd region (COCO iscrowd)";
        li.appendChild(tag);
      }
      const del = document.createElement("button");
      del.textContent = "delete";
      del.onclick = (ev) => { ev.stopPropagation(); removeObject(i); };
      li.appendChild(del);
      if (o.review) li.title = "review: " + o.review;
      li.onclick = () => { S.selected = S.selected === i ? -1 : i; renderObjects(); draw(); };
      list.appendChild(li);
    });
  }
  function renderProgress() {
    const done = S.images.filter((im) => im.annotated).length;
    $("progress").textContent = "image " + (S.cur + 1) + " / " + S.images.length +
      " \u00b7 " + done + " annotated";
    $("image-name").textContent = S.cur >= 0 ? S.images[S.cur].name : "";
  }

  // ------------------------------------------------------------------ prompts
  async function predict(t0) {
    if (!S.points.length && !S.box) { S.pred = null; renderCandidates(); draw(); return; }
    const seq = ++S.seq, id = S.images[S.cur].id;
    const body = {
      points: S.points.map((p) => [p.x, p.y]), labels: S.points.map((p) => p.label),
      box: S.box, multimask: S.points.length === 1 && !S.box, mask_input: null,
    };
    try {
      const res = await (await api("POST", "/api/images/" + id + "/predict", body)).json();
      if (seq !== S.seq || id !== S.images[S.cur].id) return;  // a newer prompt won
      let best = 0;
      res.masks.forEach((m, i) => { if (m.score > res.masks[best].score) best = i; });
      S.pred = { id: res.id, masks: res.masks.map((m) => ({ rle: m.rle, score: m.score })) };
      S.cand = best;
      renderCandidates(); draw();
      S.lastDrawn = performance.now();
      S.latencies.push(S.lastDrawn - t0);
      S.serverMs.push(res.server_ms);
      status("mask in " + Math.round(S.lastDrawn - t0) + " ms");
    } catch (e) { status(e.message, true); }
  }
  function addPoint(x, y, label, t0) {
    fn.record();
    S.points.push({ x: clampX(x), y: clampY(y), label });
    predict(t0); draw();
  }
  function setBox(b, t0) {
    fn.record();
    S.box = b;
    predict(t0); draw();
  }
  function clearPrompt() {
    S.points = []; S.box = null; S.pred = null; S.seq++;
    renderCandidates(); draw();
  }

  // ------------------------------------------------------------------ objects
  // An object: its class, its mask, its colour (one per instance), whether it is a crowd
  // region (COCO iscrowd) and its painted layers.
  function makeObject(label, rle, color, crowd) {
    return { label, rle, color: color || instanceColor(S.colors++), crowd: !!crowd };
  }
  // Replace the objects (an operation of the session: undoable) and save.
  function setObjects(objects, selected) {
    fn.record();
    S.objects = objects;
    S.selected = selected === undefined ? -1 : selected;
    renderObjects(); draw(); fn.save();
  }
  function commit() {
    if (!S.pred) return;
    const obj = makeObject(S.label, S.pred.masks[S.cand].rle);
    setObjects(S.objects.concat([obj]));
    clearPrompt();
  }
  function chooseClass(c) {
    // With an object selected the class goes to that object only; the active class (for new
    // objects) stays as it was.
    if (S.selected >= 0) relabel(S.selected, c);
    else S.label = c;
    renderClasses();
  }
  function relabel(i, c) {
    if (S.objects[i].label === c) return;
    const objects = S.objects.slice();
    objects[i] = makeObject(c, S.objects[i].rle, S.objects[i].color, S.objects[i].crowd);
    setObjects(objects, S.selected);
  }
  function removeObject(i) {
    setObjects(S.objects.filter((_, k) => k !== i));
  }
  function selectAt(x, y) {
    S.selected = -1;
    for (let i = S.objects.length - 1; i >= 0; i--) {
      if (!S.objects[i].hidden && M.has(S.objects[i].rle, x, y)) { S.selected = i; break; }
    }
    renderObjects(); draw();
  }

  // ------------------------------------------------------------------ images
  async function open(index) {
    if (index < 0 || index >= S.images.length) return;
    S.cur = index;
    S.openedAt = performance.now();
    const im = S.images[index];
    clearPrompt();
    S.objects = []; S.selected = -1; S.image = null;
    const h = S.histories[im.id] = S.histories[im.id] || { undo: [], redo: [] };
    S.undo = h.undo; S.redo = h.redo;  // each image keeps its own undo / redo for the session
    fn.clearProposals();
    renderProgress(); renderObjects(); draw();
    status("loading " + im.name);
    try {
      const [blob, res] = await Promise.all([
        api("GET", "/api/images/" + im.id + "/file").then((r) => r.blob()),
        api("GET", "/api/images/" + im.id + "/annotations"),
      ]);
      const anns = await res.json();
      if (S.cur !== index) return;
      im.etag = res.headers.get("ETag");
      im.base = anns;  // the objects as the server has them (merges of conflicting saves)
      S.image = await createImageBitmap(blob);
      S.objects = anns.map((a) => makeObject(a.label, a.rle, null, a.crowd));
      for (const o of S.objects) {
        if (!S.classes.includes(o.label)) { S.classes.push(o.label); renderClasses(); }
      }
      fit(); renderObjects(); draw();
      S.loaded = performance.now();
      if (im.blocked) status("this image cannot be saved: " + im.blocked, true);
      else status(im.name);
      if (fn.opened) fn.opened(im);
    } catch (e) { status(e.message, true); }
  }
  // The next (dir 1) or previous (-1) image that passes the status filter.
  function step(dir) {
    for (let i = S.cur + dir; i >= 0 && i < S.images.length; i += dir) {
      if (!S.filter || S.images[i].status === S.filter) { open(i); return; }
    }
    status(S.filter ? "no more images with status " + S.filter : "no more images");
  }
  async function exportAs(fmt) {
    try {
      const blob = await (await api("GET", "/api/export?format=" + fmt)).blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = fmt === "coco" ? "instances.json" : fmt + "_labels.zip";
      document.body.appendChild(a); a.click(); a.remove();
      status("exported " + fmt);
      S.exported = fmt;
    } catch (e) { status(e.message, true); }
  }

  Object.assign(fn, { api, status, fit, draw, toImage, toScreen, clampX, clampY, renderClasses,
    renderCandidates, renderObjects, renderProgress, predict, addPoint, setBox, clearPrompt,
    makeObject, setObjects, commit, chooseClass, relabel, removeObject, selectAt,
    open, step, exportAs, color: instanceColor });
  S.canvas = canvas; S.ctx = ctx;
})();
