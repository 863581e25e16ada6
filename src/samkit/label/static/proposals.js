// samkit label: proposals (segment everything, the detector's boxes) to accept or reject. The
// ones shown pass the score and area filters; each has its own colour, a click inside one
// accepts it (its own class, else the active one), Y / N take the highlighted (first) one.
"use strict";

(function () {
  const S = window.samkit, fn = S.fn, M = window.samkitMasks;
  const $ = (id) => document.getElementById(id);
  let pool = [];  // every proposal not yet accepted or rejected

  const area = (rle) => (typeof rle.counts === "string" ? M.decodeCounts(rle.counts) : rle.counts)
    .reduce((sum, n, i) => sum + (i % 2 ? n : 0), 0);
  function filter() {
    const minScore = Number($("min-score").value) || 0, minArea = Number($("min-area").value) || 0;
    S.proposals = pool.filter((p) => p.score >= minScore && p.area >= minArea);
    renderProposals(); fn.draw();
  }
  function drop(taken) {
    pool = pool.filter((p) => !taken.includes(p));
    filter();
  }
  function renderProposals() {
    const hidden = pool.length - S.proposals.length;
    $("proposal-count").textContent = pool.length
      ? "(" + S.proposals.length + (hidden ? ", " + hidden + " filtered out" : "") + ")" : "";
    $("proposal-actions").hidden = !S.proposals.length;
    $("detect").hidden = !S.detector;
  }
  async function propose(kind) {
    if (!S.image) return;
    const id = S.images[S.cur].id;
    fn.status(kind === "detector" ? "detecting..." : "segmenting everything...");
    try {
      const res = await (await fn.api("POST", "/api/images/" + id + "/proposals", { kind })).json();
      if (id !== S.images[S.cur].id) return;
      pool = res.proposals.map((p, i) => Object.assign(p, { area: area(p.rle), color: S.fn.color(i + 101) }));
      filter();
      if (pool.length) {
        fn.status(pool.length + " proposals: click one to accept it, Y / N accept / reject the highlighted one");
      } else fn.status(kind === "detector" ? "the detector found nothing here" : "no proposals found");
    } catch (e) { fn.status(e.message, true); }
  }
  function accept(taken) {
    drop(taken);
    if (taken.length) {
      fn.setObjects(S.objects.concat(taken.map((p) => fn.makeObject(p.label || S.label, p.rle))));
    }
  }
  const acceptProposals = (count) => accept(S.proposals.slice(0, count));
  function pickProposal(x, y) {
    const p = S.proposals.find((q) => M.has(q.rle, x, y));
    if (!p) return false;
    accept([p]);
    return true;
  }
  const rejectProposals = (count) => drop(S.proposals.slice(0, count));
  function clearProposals() { pool = []; S.proposals = []; renderProposals(); }

  $("min-score").oninput = filter;
  $("min-area").oninput = filter;
  Object.assign(fn, { renderProposals, propose, acceptProposals, pickProposal, rejectProposals,
    clearProposals });
})();
