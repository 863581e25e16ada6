// samkit label: per-image status (stored on the server beside the labels), review verdicts
// with comments, the status filter of prev / next and the live progress counters.
"use strict";

(function () {
  const S = window.samkit, fn = S.fn;
  const $ = (id) => document.getElementById(id);
  const NAMES = { todo: "to do", in_progress: "in progress", done: "done", skipped: "skipped",
    no_objects: "no objects", needs_fix: "needs fix" };
  const SETTABLE = ["in_progress", "done", "skipped", "no_objects", "needs_fix"];

  function current() { return S.cur >= 0 ? S.images[S.cur] : null; }
  function show(im) {
    if (!im || im !== current()) return;
    const rec = im.review || {};
    $("image-status").textContent = "(" + NAMES[im.status] + ")";
    $("image-status").dataset.status = im.status;
    document.querySelectorAll("#status-buttons button").forEach((b) => {
      b.classList.toggle("active", b.dataset.status === im.status);
      b.setAttribute("aria-pressed", String(b.dataset.status === im.status));
    });
    $("comment").value = rec.comment || (rec.review && rec.review.comment) || "";
    const notes = [];
    if (rec.review) notes.push("image " + rec.review.verdict + "ed" + (rec.review.comment ? ": " + rec.review.comment : ""));
    for (const [k, v] of Object.entries(rec.objects || {})) {
      notes.push("object " + (Number(k) + 1) + " " + v.verdict + "ed" + (v.comment ? ": " + v.comment : ""));
      if (S.objects[Number(k)]) S.objects[Number(k)].review = v.verdict + (v.comment ? ": " + v.comment : "");
    }
    $("review-notes").textContent = notes.join("; ");
    fn.renderObjects();
  }
  function apply(im, rec) {
    im.status = rec.status; im.review = rec;
    show(im); refreshCounts();
  }
  async function setStatus(status) {
    const im = current();
    if (!im) return;
    try {
      const body = { status, comment: $("comment").value };
      apply(im, await (await fn.api("PUT", "/api/images/" + im.id + "/status", body)).json());
      fn.status("status: " + NAMES[status]);
    } catch (e) { fn.status(e.message, true); }
  }
  async function review(verdict, object) {
    const im = current();
    if (!im) return;
    if (object && S.selected < 0) { fn.status("select an object to review", true); return; }
    try {
      const body = { verdict, comment: $("comment").value, object: object ? S.selected : null };
      apply(im, await (await fn.api("POST", "/api/images/" + im.id + "/review", body)).json());
      fn.status((object ? "object " + (S.selected + 1) : "image") + " " + verdict + "ed");
    } catch (e) { fn.status(e.message, true); }
  }
  // Progress of the whole team: read at every change here and every few seconds.
  async function refreshCounts() {
    try {
      const res = await (await fn.api("GET", "/api/progress")).json();
      S.counts = res.counts;
      $("counts").textContent = Object.entries(res.counts).filter(([, n]) => n)
        .map(([k, n]) => n + " " + NAMES[k]).join(" \u00b7 ");
      const filter = $("filter");
      for (const opt of filter.options) {
        if (opt.value) opt.textContent = NAMES[opt.value] + " (" + res.counts[opt.value] + ")";
      }
    } catch (e) { /* the next poll tries again */ }
  }
  async function refreshImages() {  // statuses set by others, for the filter
    try {
      const list = await (await fn.api("GET", "/api/images")).json();
      for (const it of list) {
        const im = S.images[it.id];
        if (im && im !== current()) { im.status = it.status; im.review = it.review; im.annotated = it.annotated; }
      }
    } catch (e) { /* the next poll tries again */ }
  }

  // Leases: the open image is held for this page (renewed while open), so that "next to do"
  // hands other annotators other images.
  async function lease(im) {
    try {
      await fn.api("POST", "/api/images/" + im.id + "/lease");
      im.leased_by = null;
    } catch (e) {
      if (e.status !== 409) return;
      im.leased_by = e.message.replace(/^.*being edited by /, "");
      if (im === current()) fn.status("also open by " + im.leased_by + ": saves of one may be refused", true);
    }
  }
  async function nextTodo() {
    try {
      const res = await (await fn.api("POST", "/api/next", { after: Math.max(S.cur, 0) })).json();
      if (res.id === null) fn.status("no image left to do (or all are open by others)");
      else fn.open(res.id);
    } catch (e) { fn.status(e.message, true); }
  }

  fn.opened = (im) => { show(im); lease(im); };
  fn.nextUnannotated = nextTodo;
  fn.saved = (im, count) => {  // what the server did to the status on a save (review.py)
    const rec = im.review || (im.review = { objects: {} });
    if (im.status === "todo" || (count && ["no_objects", "skipped"].includes(im.status))) {
      im.status = "in_progress";
    }
    for (const k of Object.keys(rec.objects || {})) if (Number(k) >= count) delete rec.objects[k];
    show(im); refreshCounts();
  };
  fn.started = () => {
    const box = $("status-buttons");
    for (const k of SETTABLE) {
      const b = document.createElement("button");
      b.textContent = NAMES[k]; b.dataset.status = k;
      b.onclick = () => setStatus(k);
      box.appendChild(b);
    }
    for (const k of Object.keys(NAMES)) $("filter").add(new Option(NAMES[k], k));
    $("filter").onchange = (ev) => {
      S.filter = ev.target.value;
      const im = current();
      if (S.filter && im && im.status !== S.filter) fn.step(1);
    };
    $("accept-image").onclick = () => review("accept", false);
    $("reject-image").onclick = () => review("reject", false);
    $("accept-object").onclick = () => review("accept", true);
    $("reject-object").onclick = () => review("reject", true);
    const name = $("annotator");
    name.value = S.annotator;
    name.onchange = () => {
      S.annotator = name.value.trim();
      localStorage.setItem("samkit-annotator", S.annotator);
    };
    refreshCounts();
    S.poll = setInterval(refreshCounts, 5000);
    S.pollImages = setInterval(refreshImages, 30000);  // others' statuses, for the filter
    S.renew = setInterval(() => { if (current()) lease(current()); }, 30000);
  };
  Object.assign(fn, { setStatus, review, refreshCounts });
})();
