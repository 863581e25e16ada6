// samkit label: saving an image's objects. Saves run one after another (each PUT carries the
// version the previous one returned) and send the objects as they were when asked for. A save
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
        im.annotated = true;
        if (fn.saved) fn.saved(im, body.length);
        fn.renderProgress();
        fn.status("saved " + body.length + " objects");
        return;
      } catch (e) {
        if (e.status === 412) {
          if (S.images[S.cur] === im) {
            await reloadObjects(im);  // someone else saved this image: show theirs
            fn.status("this image was changed by another annotator: reloaded, redo your last change", true);
          }
          return;
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
  async function reloadObjects(im) {
    const res = await fn.api("GET", "/api/images/" + im.id + "/annotations");
    im.etag = res.headers.get("ETag");
    S.objects = (await res.json()).map((a) => fn.makeObject(a.label, a.rle, null, a.crowd));
    S.selected = -1;
    fn.renderObjects(); fn.draw();
  }
  window.addEventListener("beforeunload", (ev) => {
    if (S.saving > 0) { ev.preventDefault(); ev.returnValue = ""; }  // unsaved edits
  });
  Object.assign(fn, { save, reloadObjects });
})();
