// The mask widget's click tool (loaded by masks.js, offered where the task type proposes objects).
// With a class picked, a person clicks one object's four extreme points (its top-, left-, bottom-
// and right-most pixels, in any order); the server proposes the object's mask (POST
// /api/propose, from the image and the clicks only, never a model's guess, so validation images
// get it too) and the widget paints it with the class. Each further click corrects it: on a pixel
// the mask has, "not the object" (a negative click); on one it lacks, "the object too" (a
// positive click); the server proposes again from all the clicks. Ctrl+Z takes back the last
// click; Enter (or Object done, or another tool) finishes the object, and the next click starts
// the next one. An object covers what was painted under it (later objects over earlier ones); a
// negative click gives those pixels back. The brush and eraser fix the last pixels.
(() => {
  "use strict";

  const DOT_PX = 4;  // screen pixels: a click's mark

  // `s`: the mask widget's state (ids, W, H, cls, ctx, history); `host`: its show, checkpoint,
  // controls, marks and status.
  function create(s, host) {
    let obj = null;  // the open object: {cls, points, clicks, base (ids before it), mask, steps, busy}

    function paint() {  // the object over what was there before it
      const ids = obj.base.slice(), value = obj.cls + 1;
      if (obj.mask) for (let i = 0; i < ids.length; i++) if (obj.mask[i]) ids[i] = value;
      s.ids = ids;
      host.show();
    }
    function fromRuns(reply) {  // the server's box and row-major run lengths, off first
      const mask = new Uint8Array(s.W * s.H);
      if (!reply.box) return mask;
      const [x0, y0, w] = reply.box;
      let k = 0, on = false;
      for (const n of reply.counts) {
        if (on) for (let j = k; j < k + n; j++) mask[(y0 + Math.floor(j / w)) * s.W + x0 + (j % w)] = 1;
        k += n; on = !on;
      }
      return mask;
    }
    function summary() {
      const n = obj.mask ? obj.mask.reduce((a, v) => a + v, 0) : 0;
      return s.ctx.categories[obj.cls] + ": " + n + " px · click a wrong region to fix it, Enter when the object is done";
    }

    async function propose() {
      const mine = obj;
      mine.busy = true;
      host.status("proposing the object's mask…");
      try {
        const reply = await s.ctx.api("/api/propose", {
          job: s.ctx.job, item: s.item.index, points: mine.points.map((p) => [p.x, p.y]),
          clicks: mine.clicks.map((c) => ({x: c.x, y: c.y, positive: c.positive})),
        });
        mine.busy = false;
        if (obj !== mine) return;
        mine.mask = fromRuns(reply);
        paint();
        host.status(summary());
      } catch (err) {
        mine.busy = false;
        if (obj !== mine) return;
        takeBack();  // the click that asked stays unanswered: take it back, so what shows is what was asked
        host.status("no mask proposed (" + err.message + "); click again");
      } finally {
        host.marks();
      }
    }
    function takeBack() {  // the last click of the open object, and what it made
      const step = obj.steps.pop();
      if (obj.clicks.length) obj.clicks.pop(); else obj.points.pop();
      obj.mask = step.mask;
      if (!obj.points.length) {  // nothing left of it: as if it never started
        s.ids = obj.base;
        s.history.pop();
        obj = null;
        host.show();
      } else paint();
    }

    return {
      click(p) {
        const x = Math.floor(p.x), y = Math.floor(p.y);
        if (x < 0 || y < 0 || x >= s.W || y >= s.H) return;
        if (obj && obj.busy) { host.status("wait for the object's mask"); return; }
        s.spent += 1;
        if (!obj) {
          host.checkpoint();  // the whole object is one step of the widget's undo once it is done
          obj = {cls: s.cls, points: [], clicks: [], base: s.ids.slice(), mask: null, steps: [], busy: false};
        }
        obj.steps.push({mask: obj.mask});
        if (obj.points.length < 4) {
          obj.points.push({x, y});
          if (obj.points.length < 4) {
            host.status("extreme point " + obj.points.length + " of 4 (top, left, bottom, right: any order)");
            host.marks();
            return;
          }
        } else {
          obj.clicks.push({x, y, positive: !obj.mask[y * s.W + x]});
        }
        host.marks();
        propose();
      },
      undo() {  // true when it took back a click of the open object
        if (!obj) return false;
        if (!obj.busy) takeBack();
        host.marks();
        host.controls();
        return true;
      },
      finish() {
        if (!obj || obj.busy) return;
        const done = obj;
        obj = null;
        if (done.points.length < 4) { s.ids = done.base; s.history.pop(); host.show(); }  // an unfinished object is dropped
        host.marks();
        host.controls();
      },
      open: () => obj !== null,
      busy: () => obj !== null && obj.busy,
      marks(make, scale) {  // the open object's clicks: extreme points white, positive green, negative red
        if (!obj) return;
        const r = DOT_PX / scale;
        obj.points.forEach((p) => make("circle", {class: "extreme", cx: p.x + 0.5, cy: p.y + 0.5, r}));
        obj.clicks.forEach((c) => make("circle", {class: c.positive ? "positive" : "negative", cx: c.x + 0.5, cy: c.y + 0.5, r}));
      },
      controls(doneButton) { if (doneButton) doneButton.disabled = !obj || obj.busy; },
    };
  }

  window.labelloopMaskClicks = {create};
})();
