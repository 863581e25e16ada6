// samkit label: mouse and keys, the buttons, and the start of the page.
"use strict";

(function () {
  const S = window.samkit, fn = S.fn, canvas = S.canvas;
  const $ = (id) => document.getElementById(id);
  const { toImage, toScreen, clampX, clampY, draw, open, commit, undo, redo } = fn;
  const ctx = S.ctx;

  let down = null, panning = null, space = false, painting = false;
  canvas.addEventListener("contextmenu", (ev) => ev.preventDefault());
  canvas.addEventListener("mousedown", (ev) => {
    if (!S.image) return;
    ev.preventDefault();
    if (ev.button === 1 || space) {
      panning = { x: ev.clientX, y: ev.clientY, ox: S.view.ox, oy: S.view.oy };
      return;
    }
    if (S.tool !== "prompt" && ev.button === 0) {
      if (fn.strokeStart(toImage(ev))) painting = true;
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
    if (painting) { fn.strokeMove(toImage(ev)); return; }
    if (!down || down.button !== 0) return;
    if (Math.hypot(ev.clientX - down.x, ev.clientY - down.y) > 5) down.drag = true;
    if (down.drag) {
      const [x, y] = toImage(ev);
      draw();
      const [sx, sy] = toScreen(down.pos[0], down.pos[1]), [ex, ey] = toScreen(x, y);
      ctx.setTransform(S.dpr || 1, 0, 0, S.dpr || 1, 0, 0);
      ctx.setLineDash([6, 4]); ctx.strokeStyle = "#ffd700"; ctx.lineWidth = 2;
      ctx.strokeRect(sx, sy, ex - sx, ey - sy); ctx.setLineDash([]);
    }
  });
  window.addEventListener("mouseup", (ev) => {
    if (panning) { panning = null; return; }
    if (painting) { painting = false; fn.strokeEnd(); return; }
    if (!down) return;
    const d = down;
    down = null;
    const t0 = performance.now();
    const [x, y] = toImage(ev);
    if (d.drag) {
      const x1 = clampX(Math.min(d.pos[0], x)), x2 = clampX(Math.max(d.pos[0], x));
      const y1 = clampY(Math.min(d.pos[1], y)), y2 = clampY(Math.max(d.pos[1], y));
      fn.setBox([x1, y1, x2, y2], t0);
    } else if (d.alt) {
      fn.selectAt(d.pos[0], d.pos[1]);
    } else if (S.proposals.length && fn.pickProposal(d.pos[0], d.pos[1])) {
      // a proposal clicked: accepted
    } else if (d.pos[0] >= 0 && d.pos[1] >= 0 &&
               d.pos[0] <= S.image.width && d.pos[1] <= S.image.height) {
      fn.addPoint(d.pos[0], d.pos[1], d.button === 2 || d.shift ? 0 : 1, t0);
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
    const tag = ev.target.tagName;
    if (tag === "SELECT" || tag === "TEXTAREA" || (tag === "INPUT" && ev.target.type !== "range")) return;
    const k = ev.key;
    // Tab on a focused button or link moves the focus on (keyboard navigation of the page).
    if (k === "Tab" && (ev.target.tagName === "BUTTON" || ev.target.tagName === "A")) return;
    if (k === " ") { space = true; ev.preventDefault(); return; }
    if (k === "Tab") {
      ev.preventDefault();
      if (S.pred) {
        const n = S.pred.masks.length;
        S.cand = (S.cand + (ev.shiftKey ? n - 1 : 1)) % n;
        fn.renderCandidates(); draw();
      }
      return;
    }
    if (k === "z" || k === "Z" || ((k === "y" || k === "Y") && (ev.ctrlKey || ev.metaKey))) {
      ev.preventDefault();  // Z, Ctrl+Z: undo; Shift+Z, Ctrl+Shift+Z, Ctrl+Y: redo
      if (ev.shiftKey || k === "y" || k === "Y") redo(); else undo();
      return;
    }
    const actions = {
      Enter: commit, f: commit, F: commit,
      Escape: fn.escape,
      Delete: () => { if (S.selected >= 0) fn.removeObject(S.selected); },
      Backspace: () => { if (S.selected >= 0) fn.removeObject(S.selected); else undo(); },
      d: () => fn.step(1), D: () => fn.step(1), ArrowRight: () => fn.step(1),
      a: () => fn.step(-1), A: () => fn.step(-1), ArrowLeft: () => fn.step(-1),
      u: fn.nextUnannotated, U: fn.nextUnannotated,
      e: () => fn.propose("everything"), E: () => fn.propose("everything"),
      b: () => { if (S.detector) fn.propose("detector"); },
      B: () => { if (S.detector) fn.propose("detector"); },
      y: () => fn.acceptProposals(1), Y: () => fn.acceptProposals(1),
      n: () => fn.rejectProposals(1), N: () => fn.rejectProposals(1),
      r: () => fn.setTool("brush"), R: () => fn.setTool("brush"),
      x: () => fn.setTool("eraser"), X: () => fn.setTool("eraser"),
      "[": () => fn.setBrush(S.brush / 1.25), "]": () => fn.setBrush(S.brush * 1.25 + 1),
      h: () => { if (S.selected >= 0) fn.toggleHidden(S.selected); }, H: fn.toggleAll,
      o: fn.toggleOutline, O: fn.toggleOutline,
      "+": () => zoomAt(1.25, canvas.width / 2, canvas.height / 2),
      "=": () => zoomAt(1.25, canvas.width / 2, canvas.height / 2),
      "-": () => zoomAt(0.8, canvas.width / 2, canvas.height / 2),
      "0": () => { fn.fit(); draw(); },
    };
    if (actions[k]) { ev.preventDefault(); actions[k](); return; }
    if (k >= "1" && k <= "9" && S.classes[Number(k) - 1]) fn.chooseClass(S.classes[Number(k) - 1]);
  });
  window.addEventListener("resize", () => { fn.fit(); draw(); });

  // ------------------------------------------------------------------ start
  const click = { prev: () => fn.step(-1), next: () => fn.step(1), "next-todo": fn.nextUnannotated,
    commit, undo, redo, clear: fn.escape, everything: () => fn.propose("everything"),
    detect: () => fn.propose("detector"), accept: () => fn.acceptProposals(1),
    reject: () => fn.rejectProposals(1), "accept-all": () => fn.acceptProposals(S.proposals.length),
    "reject-all": () => fn.rejectProposals(S.proposals.length), "hide-all": fn.toggleAll,
    outline: fn.toggleOutline };
  for (const [id, f] of Object.entries(click)) $(id).onclick = f;
  document.querySelectorAll("[data-tool]").forEach((b) => { b.onclick = () => fn.setTool(b.dataset.tool); });
  document.querySelectorAll("[data-export]").forEach((b) => {
    b.onclick = () => fn.exportAs(b.dataset.export);
  });
  $("opacity").oninput = (ev) => fn.setOpacity(ev.target.value / 100);
  $("brush-size").oninput = (ev) => fn.setBrush(Number(ev.target.value));
  (async function start() {
    try {
      const cfg = await (await fn.api("GET", "/api/config")).json();
      S.classes = cfg.classes;
      S.label = S.classes[0] || null;
      S.detector = cfg.detector;
      fn.renderProposals();
      S.images = await (await fn.api("GET", "/api/images")).json();
      fn.renderClasses();
      if (fn.started) fn.started();
      const first = S.images.findIndex((im) => !im.annotated);
      open(first >= 0 ? first : 0);
    } catch (e) { fn.status(e.message, true); }
  })();
})();
