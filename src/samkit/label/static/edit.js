// samkit label: undo / redo over every operation of the session, brush and eraser on the
// selected mask, and what is shown (hide / show, opacity, outlines).
"use strict";

(function () {
  const S = window.samkit, fn = S.fn, M = window.samkitMasks;

  // ------------------------------------------------------------------ undo / redo
  // A step is the prompts and the objects before an operation (objects are never changed in
  // place, so a step keeps references). Undo and redo swap the current state with a step;
  // the objects are saved when they differ.
  const snapshot = () => ({ points: S.points.slice(), box: S.box, objects: S.objects.slice() });
  function record() {
    S.undo.push(snapshot());
    S.redo.length = 0;
  }
  function restore(step) {
    const promptChanged = step.box !== S.box || step.points.length !== S.points.length ||
      step.points.some((p, i) => p !== S.points[i]);
    const objectsChanged = step.objects.length !== S.objects.length ||
      step.objects.some((o, i) => o !== S.objects[i]);
    S.points = step.points; S.box = step.box; S.objects = step.objects;
    if (S.selected >= S.objects.length) S.selected = -1;
    if (promptChanged) fn.predict(performance.now());
    fn.renderObjects(); fn.draw();
    if (objectsChanged) fn.save();
  }
  function undo() {
    if (!S.undo.length) { fn.status("nothing to undo"); return; }
    S.redo.push(snapshot());
    restore(S.undo.pop());
  }
  function redo() {
    if (!S.redo.length) { fn.status("nothing to redo"); return; }
    S.undo.push(snapshot());
    restore(S.redo.pop());
  }
  function escape() {  // clear the prompts (undoable), else deselect
    if (S.points.length || S.box) { record(); fn.clearPrompt(); } else {
      S.selected = -1; fn.renderObjects(); fn.draw();
    }
  }

  // ------------------------------------------------------------------ brush and eraser
  // The tool ("prompt", "brush", "eraser") and the brush radius in image pixels. A brush
  // stroke adds to the selected object (a new object of the active class when none is
  // selected); the eraser takes from it (an object erased away is deleted).
  let stroke = null;
  function setTool(tool) {
    S.tool = S.tool === tool ? "prompt" : tool;
    document.querySelectorAll("[data-tool]").forEach((b) => {
      b.classList.toggle("active", b.dataset.tool === S.tool);
      b.setAttribute("aria-pressed", String(b.dataset.tool === S.tool));
    });
    S.canvas.style.cursor = S.tool === "prompt" ? "crosshair" : "cell";
    fn.status(S.tool === "prompt" ? "click for points, drag for a box" : S.tool + ": drag on the image");
  }
  function setBrush(r) {
    S.brush = Math.max(1, Math.min(200, Math.round(r)));
    document.getElementById("brush-size").value = S.brush;
    document.getElementById("brush-label").textContent = S.brush + " px";
  }
  function strokeStart(pos) {
    if (S.tool === "eraser" && S.selected < 0) { fn.status("select an object to erase from", true); return false; }
    stroke = { pts: [pos] };
    return true;
  }
  function strokeMove(pos) { if (stroke) { stroke.pts.push(pos); fn.draw(); } }
  function drawStroke(ctx) {  // the stroke so far, in CSS pixels (painted into the mask at the end)
    if (!stroke) return;
    ctx.beginPath();
    stroke.pts.forEach((p, i) => {
      const [x, y] = fn.toScreen(p[0], p[1]);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    });
    if (stroke.pts.length === 1) ctx.lineTo(...fn.toScreen(stroke.pts[0][0] + 0.01, stroke.pts[0][1]));
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = 2 * S.brush * S.view.scale;
    ctx.strokeStyle = S.tool === "eraser" ? "rgba(0,0,0,0.5)" : "rgba(255,255,255,0.5)";
    ctx.stroke();
  }
  function strokeEnd() {
    if (!stroke) return;
    const pts = stroke.pts;
    stroke = null;
    const [w, h] = [S.image.width, S.image.height], value = S.tool === "brush" ? 1 : 0;
    const i = S.selected, old = i >= 0 ? S.objects[i] : null;
    const bits = old ? M.toBitmap(old.rle) : new Uint8Array(h * w);
    const changed = M.stroke(bits, h, w, pts, S.brush, value);
    S.lastStroke = { pts, radius: S.brush, value, index: i, changed };
    if (!changed) { fn.draw(); return; }
    const objects = S.objects.slice();
    if (!M.area(bits)) { objects.splice(i, 1); fn.setObjects(objects); return; }
    const obj = fn.makeObject(old ? old.label : S.label, M.fromBitmap(bits, h, w), old && old.color,
      old && old.crowd);
    if (old) objects[i] = obj; else objects.push(obj);
    fn.setObjects(objects, old ? i : objects.length - 1);
  }

  // ------------------------------------------------------------------ visibility
  function toggleHidden(i) {  // a view setting: not an edit, not saved
    S.objects[i].hidden = !S.objects[i].hidden;
    if (S.objects[i].hidden && S.selected === i) S.selected = -1;
    fn.renderObjects(); fn.draw();
  }
  function toggleAll() {
    S.hideAll = !S.hideAll;
    document.getElementById("hide-all").textContent = S.hideAll ? "show all" : "hide all";
    fn.draw();
  }
  function setOpacity(a) {
    S.opacity = Math.max(0, Math.min(1, a));
    document.getElementById("opacity").value = Math.round(100 * S.opacity);
    fn.draw();
  }
  function toggleOutline() {
    S.outline = !S.outline;
    document.getElementById("outline").classList.toggle("active", S.outline);
    fn.draw();
  }

  Object.assign(fn, { record, undo, redo, escape, setTool, setBrush, strokeStart, strokeMove,
    strokeEnd, drawStroke, toggleHidden, toggleAll, setOpacity, toggleOutline });
})();
