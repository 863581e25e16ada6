// samkit label: the page. Plain JavaScript and a canvas; talks to the HTTP API of this server.
// Coordinates sent to the server are original-image pixels; masks arrive as COCO RLE.
"use strict";

(function () {
  const PALETTE = [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]];
  const CANDIDATE = [255, 215, 0];
  const PROPOSAL = [0, 200, 255];
  const token = new URLSearchParams(location.search).get("token");
  const $ = (id) => document.getElementById(id);
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");

  // Everything the page knows; exposed as window.samkit for tests and the benchmark.
  const S = {
    images: [], classes: [], cur: -1, image: null, label: null,
    objects: [], selected: -1,
    points: [], box: null, history: [],
    pred: null, cand: 0, seq: 0, proposals: [], detector: false, chain: Promise.resolve(),
    view: { scale: 1, ox: 0, oy: 0 },
    latencies: [], serverMs: [], lastDrawn: 0, saving: 0, loaded: 0,
  };
  window.samkit = S;

  // ------------------------------------------------------------------ HTTP
  async function api(method, path, body, extra) {
    const headers = Object.assign({}, extra || {});
    if (token) headers["Authorization"] = "Bearer " + token;
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

  // ------------------------------------------------------------------ RLE
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
  // RLE -> canvas of the image's size with the mask's pixels in colour (column-major runs).
  function maskCanvas(rle, color, alpha) {
    const [h, w] = rle.size;
    const counts = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
    const img = new ImageData(w, h);
    const px = new Uint32Array(img.data.buffer);
    const value = ((alpha << 24) | (color[2] << 16) | (color[1] << 8) | color[0]) >>> 0;
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      const n = counts[i];
      if (i % 2 === 1) {  // a run of ones, split into column segments
        let at = pos, left = n;
        while (left > 0) {
          const x = (at / h) | 0, y = at - x * h, len = Math.min(left, h - y);
          for (let k = 0, o = y * w + x; k < len; k++, o += w) px[o] = value;
          at += len; left -= len;
        }
      }
      pos += n;
    }
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    c.getContext("2d").putImageData(img, 0, 0);
    c.rle = rle;
    return c;
  }
  function maskHas(rle, x, y) {
    const [h] = rle.size;
    const target = Math.floor(x) * h + Math.floor(y);
    const counts = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      if (target < pos + counts[i]) return i % 2 === 1;
      pos += counts[i];
    }
    return false;
  }
  const classColor = (label) => PALETTE[Math.max(0, S.classes.indexOf(label)) % PALETTE.length];

  // ------------------------------------------------------------------ drawing
  function fit() {
    const stage = $("stage");
    canvas.width = stage.clientWidth; canvas.height = stage.clientHeight;
    if (!S.image) return;
    const s = Math.min(canvas.width / S.image.width, canvas.height / S.image.height);
    S.view = { scale: s, ox: (canvas.width - s * S.image.width) / 2,
      oy: (canvas.height - s * S.image.height) / 2 };
  }
  function draw() {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!S.image) return;
    const v = S.view;
    ctx.setTransform(v.scale, 0, 0, v.scale, v.ox, v.oy);
    ctx.imageSmoothingEnabled = v.scale < 1;
    ctx.drawImage(S.image, 0, 0);
    S.objects.forEach((o, i) => {
      ctx.globalAlpha = i === S.selected ? 1 : 0.75;
      ctx.drawImage(o.canvas, 0, 0);
    });
    ctx.globalAlpha = 1;
    S.proposals.forEach((p, i) => {
      if (!p.canvas) p.canvas = maskCanvas(p.rle, PROPOSAL, 255);
      ctx.globalAlpha = i === 0 ? 0.6 : 0.2;
      ctx.drawImage(p.canvas, 0, 0);
    });
    ctx.globalAlpha = 1;
    if (S.pred) {
      const m = S.pred.masks[S.cand];  // candidates are painted when first shown
      if (!m.canvas) m.canvas = maskCanvas(m.rle, CANDIDATE, 140);
      ctx.drawImage(m.canvas, 0, 0);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    if (S.box) {
      const [x1, y1] = toScreen(S.box[0], S.box[1]), [x2, y2] = toScreen(S.box[2], S.box[3]);
      ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffd700"; ctx.lineWidth = 2;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1); ctx.setLineDash([]);
    }
    for (const p of S.points) {
      const [x, y] = toScreen(p.x, p.y);
      ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI);
      ctx.fillStyle = p.label ? "#00c853" : "#d50000"; ctx.fill();
      ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5; ctx.stroke();
    }
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
      sw.style.background = "rgb(" + classColor(o.label).join(",") + ")";
      li.appendChild(sw);
      const sel = document.createElement("select");
      for (const c of S.classes) sel.add(new Option(c, c, false, c === o.label));
      sel.onchange = () => relabel(i, sel.value);
      li.appendChild(sel);
      const del = document.createElement("button");
      del.textContent = "delete";
      del.onclick = (ev) => { ev.stopPropagation(); removeObject(i); };
      li.appendChild(del);
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
  function pushHistory() { S.history.push({ points: S.points.slice(), box: S.box }); }
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
    pushHistory();
    S.points.push({ x: clampX(x), y: clampY(y), label });
    predict(t0); draw();
  }
  function setBox(b, t0) {
    pushHistory();
    S.box = b;
    predict(t0); draw();
  }
  function undo() {
    if (!S.history.length) return;
    const h = S.history.pop();
    S.points = h.points; S.box = h.box;
    predict(performance.now()); draw();
  }
  function clearPrompt() {
    S.points = []; S.box = null; S.history = []; S.pred = null; S.seq++;
    renderCandidates(); draw();
  }

  // ------------------------------------------------------------------ objects
  function makeObject(label, rle) {
    return { label, rle, canvas: maskCanvas(rle, classColor(label), 110) };
  }
  // Saves run one after another (each PUT carries the version the previous one returned);
  // each sends the objects as they were when it was asked for.
  function save() {
    const im = S.images[S.cur];
    const body = S.objects.map((o) => ({ label: o.label, rle: o.rle }));
    S.saving++;
    status("saving...");
    S.chain = S.chain.then(() => putObjects(im, body)).finally(() => { S.saving--; });
  }
  async function putObjects(im, body) {
    try {
      const match = im.etag ? { "If-Match": im.etag } : {};
      const res = await api("PUT", "/api/images/" + im.id + "/annotations", body, match);
      im.etag = res.headers.get("ETag");
      im.annotated = true;
      renderProgress();
      status("saved " + body.length + " objects");
    } catch (e) {
      if (e.status === 412 && S.images[S.cur] === im) {
        await reloadObjects(im);  // someone else saved this image: show theirs
        status("this image was changed by another annotator: reloaded, redo your last change", true);
      } else status("not saved: " + e.message, true);
    }
  }
  async function reloadObjects(im) {
    const res = await api("GET", "/api/images/" + im.id + "/annotations");
    im.etag = res.headers.get("ETag");
    S.objects = (await res.json()).map((a) => makeObject(a.label, a.rle));
    S.selected = -1;
    renderObjects(); draw();
  }
  function commit() {
    if (!S.pred) return;
    S.objects.push(makeObject(S.label, S.pred.masks[S.cand].rle));
    S.selected = -1;
    clearPrompt(); renderObjects(); draw(); save();
  }
  function chooseClass(c) {
    // With an object selected the class goes to that object only; the active class (for new
    // objects) stays as it was.
    if (S.selected >= 0) relabel(S.selected, c);
    else S.label = c;
    renderClasses();
  }
  function relabel(i, c) {
    S.objects[i] = makeObject(c, S.objects[i].rle);
    renderObjects(); draw(); save();
  }
  function removeObject(i) {
    S.objects.splice(i, 1);
    S.selected = -1;
    renderObjects(); draw(); save();
  }
  function selectAt(x, y) {
    S.selected = -1;
    for (let i = S.objects.length - 1; i >= 0; i--) {
      if (maskHas(S.objects[i].rle, x, y)) { S.selected = i; break; }
    }
    renderObjects(); draw();
  }

  // ------------------------------------------------------------------ proposals
  function renderProposals() {
    $("proposal-count").textContent = S.proposals.length ? "(" + S.proposals.length + ")" : "";
    $("proposal-actions").hidden = !S.proposals.length;
    $("detect").hidden = !S.detector;
  }
  async function propose(kind) {
    if (!S.image) return;
    const id = S.images[S.cur].id;
    status(kind === "detector" ? "detecting..." : "segmenting everything...");
    try {
      const res = await (await api("POST", "/api/images/" + id + "/proposals", { kind })).json();
      if (id !== S.images[S.cur].id) return;
      S.proposals = res.proposals;
      if (S.proposals.length) status(S.proposals.length + " proposals: Y accepts, N rejects");
      else status(kind === "detector" ? "the detector found nothing here" : "no proposals found");
    } catch (e) { status(e.message, true); }
    renderProposals(); draw();
  }
  function acceptProposals(count) {
    const taken = S.proposals.splice(0, count);
    for (const p of taken) S.objects.push(makeObject(p.label || S.label, p.rle));
    renderProposals(); renderObjects(); draw();
    if (taken.length) save();
  }
  function rejectProposals(count) {
    S.proposals.splice(0, count);
    renderProposals(); draw();
  }

  // ------------------------------------------------------------------ images
  async function open(index) {
    if (index < 0 || index >= S.images.length) return;
    S.cur = index;
    S.openedAt = performance.now();
    const im = S.images[index];
    clearPrompt();
    S.objects = []; S.selected = -1; S.image = null; S.proposals = [];
    renderProposals();
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
      S.image = await createImageBitmap(blob);
      S.objects = anns.map((a) => makeObject(a.label, a.rle));
      for (const o of S.objects) {
        if (!S.classes.includes(o.label)) { S.classes.push(o.label); renderClasses(); }
      }
      fit(); renderObjects(); draw();
      S.loaded = performance.now();
      if (im.blocked) status("this image cannot be saved: " + im.blocked, true);
      else status(im.name);
    } catch (e) { status(e.message, true); }
  }
  function nextUnannotated() {
    for (let k = 1; k <= S.images.length; k++) {
      const i = (S.cur + k) % S.images.length;
      if (!S.images[i].annotated) { open(i); return; }
    }
    status("every image is annotated");
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

  // ------------------------------------------------------------------ input
  let down = null, panning = null, space = false;
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("mousedown", (ev) => {
    if (!S.image) return;
    ev.preventDefault();
    if (ev.button === 1 || space) {
      panning = { x: ev.clientX, y: ev.clientY, ox: S.view.ox, oy: S.view.oy };
      return;
    }
    down = { x: ev.clientX, y: ev.clientY, button: ev.button, shift: ev.shiftKey,
      alt: ev.altKey, pos: toImage(ev), drag: false };
  });
  window.addEventListener("mousemove", (ev) => {
    if (panning) {
      S.view.ox = panning.ox + ev.clientX - panning.x;
      S.view.oy = panning.oy + ev.clientY - panning.y;
      draw(); return;
    }
    if (!down || down.button !== 0) return;
    if (Math.hypot(ev.clientX - down.x, ev.clientY - down.y) > 5) down.drag = true;
    if (down.drag) {
      const [x, y] = toImage(ev);
      draw();
      const [sx, sy] = toScreen(down.pos[0], down.pos[1]), [ex, ey] = toScreen(x, y);
      ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffd700"; ctx.lineWidth = 2;
      ctx.strokeRect(sx, sy, ex - sx, ey - sy); ctx.setLineDash([]);
    }
  });
  window.addEventListener("mouseup", (ev) => {
    if (panning) { panning = null; return; }
    if (!down) return;
    const d = down;
    down = null;
    const t0 = performance.now();
    const [x, y] = toImage(ev);
    if (d.drag) {
      const x1 = clampX(Math.min(d.pos[0], x)), x2 = clampX(Math.max(d.pos[0], x));
      const y1 = clampY(Math.min(d.pos[1], y)), y2 = clampY(Math.max(d.pos[1], y));
      setBox([x1, y1, x2, y2], t0);
    } else if (d.alt) {
      selectAt(d.pos[0], d.pos[1]);
    } else if (d.pos[0] >= 0 && d.pos[1] >= 0 &&
               d.pos[0] <= S.image.width && d.pos[1] <= S.image.height) {
      addPoint(d.pos[0], d.pos[1], d.button === 2 || d.shift ? 0 : 1, t0);
    }
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.offsetX, ev.offsetY);
  }, { passive: false });
  function zoomAt(f, cx, cy) {
    const v = S.view;
    v.ox = cx - (cx - v.ox) * f; v.oy = cy - (cy - v.oy) * f; v.scale *= f;
    draw();
  }
  window.addEventListener("keyup", (ev) => { if (ev.key === " ") space = false; });
  // A mouse click on a button does not focus it, so the shortcuts (Tab included) keep working
  // after it; buttons reached with the keyboard keep Tab for moving on.
  document.addEventListener("mousedown", (ev) => {
    if (ev.target.closest && ev.target.closest("button")) ev.preventDefault();
  });
  window.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") return;
    const k = ev.key;
    // Tab on a focused button or link moves the focus on (keyboard navigation of the page).
    if (k === "Tab" && (ev.target.tagName === "BUTTON" || ev.target.tagName === "A")) return;
    if (k === " ") { space = true; ev.preventDefault(); return; }
    if (k === "Tab") {
      ev.preventDefault();
      if (S.pred) {
        const n = S.pred.masks.length;
        S.cand = (S.cand + (ev.shiftKey ? n - 1 : 1)) % n;
        renderCandidates(); draw();
      }
      return;
    }
    if ((k === "z" || k === "Z") && !ev.shiftKey) { ev.preventDefault(); undo(); return; }
    const actions = {
      Enter: commit, f: commit, F: commit,
      Escape: () => { if (S.points.length || S.box) clearPrompt(); else { S.selected = -1; renderObjects(); draw(); } },
      Delete: () => { if (S.selected >= 0) removeObject(S.selected); },
      Backspace: () => { if (S.selected >= 0) removeObject(S.selected); else undo(); },
      d: () => open(S.cur + 1), D: () => open(S.cur + 1), ArrowRight: () => open(S.cur + 1),
      a: () => open(S.cur - 1), A: () => open(S.cur - 1), ArrowLeft: () => open(S.cur - 1),
      u: nextUnannotated, U: nextUnannotated,
      e: () => propose("everything"), E: () => propose("everything"),
      b: () => { if (S.detector) propose("detector"); },
      B: () => { if (S.detector) propose("detector"); },
      y: () => acceptProposals(1), Y: () => acceptProposals(1),
      n: () => rejectProposals(1), N: () => rejectProposals(1),
      "+": () => zoomAt(1.25, canvas.width / 2, canvas.height / 2),
      "=": () => zoomAt(1.25, canvas.width / 2, canvas.height / 2),
      "-": () => zoomAt(0.8, canvas.width / 2, canvas.height / 2),
      "0": () => { fit(); draw(); },
    };
    if (actions[k]) { ev.preventDefault(); actions[k](); return; }
    if (k >= "1" && k <= "9" && S.classes[Number(k) - 1]) chooseClass(S.classes[Number(k) - 1]);
  });
  window.addEventListener("resize", () => { fit(); draw(); });

  // ------------------------------------------------------------------ start
  $("prev").onclick = () => open(S.cur - 1);
  $("next").onclick = () => open(S.cur + 1);
  $("next-todo").onclick = nextUnannotated;
  $("commit").onclick = commit;
  $("undo").onclick = undo;
  $("clear").onclick = clearPrompt;
  $("everything").onclick = () => propose("everything");
  $("detect").onclick = () => propose("detector");
  $("accept").onclick = () => acceptProposals(1);
  $("reject").onclick = () => rejectProposals(1);
  $("accept-all").onclick = () => acceptProposals(S.proposals.length);
  $("reject-all").onclick = () => rejectProposals(S.proposals.length);
  document.querySelectorAll("[data-export]").forEach((b) => {
    b.onclick = () => exportAs(b.dataset.export);
  });
  (async function start() {
    try {
      const cfg = await (await api("GET", "/api/config")).json();
      S.classes = cfg.classes;
      S.label = S.classes[0] || null;
      S.detector = cfg.detector;
      renderProposals();
      S.images = await (await api("GET", "/api/images")).json();
      renderClasses();
      const first = S.images.findIndex((im) => !im.annotated);
      open(first >= 0 ? first : 0);
    } catch (e) { status(e.message, true); }
  })();
})();
