// samkit label: saving an image's objects. Saves run one after another (each PUT carries the
// version the previous one returned) and send the objects as they were when asked for. When
// another annotator saved the image meanwhile (412), the two are merged object by object:
// their objects, less the ones this page removed or changed, plus the ones it added. A save
// that fails because the server is away or failed (no answer, 5xx) is retried with growing
// waits until it succeeds or a newer save of the same image replaces it; leaving the page
// while saves are pending asks first.
"use strict";

(function () {
  const S = window.samkit, fn = S.fn;
  const latest = {};  // image id -> number of its newest save
  let count = 0;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function save() {
    const im = S.images[S.cur];
    const body = S.objects.map((o) => (o.crowd ? { label: o.label, rle: o.rle, crowd: true }
      : { label: o.label, rle: o.rle }));
    const n = latest[im.id] = ++count;
    S.saving++;
    fn.status("saving...");
    S.chain = S.chain.then(() => putObjects(im, body, n)).finally(() => { S.saving--; });
  }
  async function putObjects(im, body, n) {
    for (let attempt = 0; ; attempt++) {
      try {
        const match = im.etag ? { "If-Match": im.etag } : {};
        const res = await fn.api("PUT", "/api/images/" + im.id + "/annotations", body, match);
        im.etag = res.headers.get("ETag");
        im.base = await res.json();
        im.annotated = true;
        if (fn.saved) fn.saved(im, body.length);
        fn.renderProgress();
        fn.status("saved " + body.length + " objects");
        return;
      } catch (e) {
        if (e.status === 412) {  // someone else saved this image: merge, then save again
          body = await merge(im, body);
          continue;
        }
        if (e.status && e.status < 500) { fn.status("not saved: " + e.message, true); return; }
        if (latest[im.id] !== n) return;  // a newer save of this image follows
        const wait = Math.min(30, 2 ** attempt);
        S.retries = (S.retries || 0) + 1;
        fn.status("not saved (" + e.message + "): retrying in " + wait + " s", true);
        await sleep(wait * 1000);
      }
    }
  }
  const key = (o) => o.label + "|" + (o.crowd ? 1 : 0) + "|" + JSON.stringify(o.rle);
  // Theirs (the server's objects now) less what this page removed since `im.base`, plus what
  // it added; the page shows the result when the image is still open.
  async function merge(im, mine) {
    const res = await fn.api("GET", "/api/images/" + im.id + "/annotations");
    const theirs = await res.json();
    const base = new Set((im.base || []).map(key)), kept = new Set(mine.map(key));
    const removed = new Set([...base].filter((k) => !kept.has(k)));
    const merged = theirs.filter((o) => !removed.has(key(o)))
      .concat(mine.filter((o) => !base.has(key(o))));
    im.etag = res.headers.get("ETag");
    im.base = theirs;
    S.merges = (S.merges || 0) + 1;
    if (S.images[S.cur] === im) {
      const mineByKey = new Map(S.objects.map((o) => [key(o), o]));
      S.objects = merged.map((o) => mineByKey.get(key(o)) || fn.makeObject(o.label, o.rle, null, o.crowd));
      S.selected = -1;
      fn.renderObjects(); fn.draw();
      fn.status("merged with another annotator's save of this image");
    }
    return merged;
  }
  window.addEventListener("beforeunload", (ev) => {
    if (S.saving > 0) { ev.preventDefault(); ev.returnValue = ""; }  // unsaved edits
  });
  Object.assign(fn, { save, merge });
})();
