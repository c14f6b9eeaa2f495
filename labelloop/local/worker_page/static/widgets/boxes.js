// The bounding-box widget (object-detection): the image with its boxes, which a person draws
// (drag on the image), moves (drag a box), resizes (drag a corner), deletes and classes. A
// routed image starts from the model's boxes to adjust; a validation image starts empty.
// Keys: a category's number or letter picks the class of new boxes (and of the selected box);
// Delete removes the selected box; Escape deselects; Enter submits the boxes shown ("no
// objects" when there are none). Boxes are kept in the image's own pixels, whatever its size
// on screen, and the answer is Ground Truth's object-detection value.
(() => {
  "use strict";

  const MIN_SIZE = 2;  // image pixels: a click is not a box
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const round1 = (v) => Math.round(v * 10) / 10;

  // One image's editing state; recreated for each new item.
  let s = null;

  function fresh(item) {
    const g = item.guess && item.guess.class && Array.isArray(item.guess.class.annotations) ? item.guess.class : null;
    return {
      item, img: null, layer: null, cls: 0, selected: -1, drag: null,
      boxes: g ? g.annotations.map((a) => ({class_id: a.class_id, left: a.left, top: a.top, width: a.width, height: a.height})) : [],
      suggested: !!g,
    };
  }
  function scale() { return s.img.naturalWidth ? s.img.clientWidth / s.img.naturalWidth : 1; }
  function toImage(e) {
    const r = s.img.getBoundingClientRect(), k = scale();
    return {x: clamp((e.clientX - r.left) / k, 0, s.img.naturalWidth), y: clamp((e.clientY - r.top) / k, 0, s.img.naturalHeight)};
  }

  function draw(ctx) {
    if (!s.layer) return;
    const el = ctx.el;
    const k = scale();
    s.layer.style.width = s.img.clientWidth + "px";
    s.layer.style.height = s.img.clientHeight + "px";
    s.layer.replaceChildren(...s.boxes.map((b, i) => {
      const d = el("div", {className: "box" + (i === s.selected ? " selected" : "")});
      d.dataset.index = i;
      d.dataset.class = b.class_id;
      Object.assign(d.style, {left: b.left * k + "px", top: b.top * k + "px", width: b.width * k + "px", height: b.height * k + "px"});
      d.style.setProperty("--hue", String((b.class_id * 67) % 360));
      d.append(el("span", {className: "tag", textContent: ctx.categories[b.class_id] || String(b.class_id)}));
      d.append(el("span", {className: "handle"}));
      return d;
    }));
    const count = document.getElementById("box-count");
    if (count) count.textContent = s.boxes.length ? s.boxes.length + (s.boxes.length === 1 ? " box" : " boxes") : "no boxes: submitting says “no objects”";
  }

  function pick(ctx, i) {
    s.cls = i;
    if (s.selected >= 0) s.boxes[s.selected].class_id = i;
    document.querySelectorAll("#box-classes button").forEach((b) => b.classList.toggle("current", Number(b.dataset.class) === i));
    draw(ctx);
  }

  function submit(ctx) {
    const boxes = s.boxes.map((b) => ({class_id: b.class_id, left: round1(b.left), top: round1(b.top),
                                        width: round1(b.width), height: round1(b.height)}));
    ctx.answer({image_size: [{width: s.img.naturalWidth, height: s.img.naturalHeight, depth: 3}], annotations: boxes});
  }

  function onDown(e, ctx) {
    if (e.button !== 0 || !s.img.naturalWidth) return;
    e.preventDefault();
    const p = toImage(e);
    const target = e.target.closest(".box");
    if (target) {
      const i = Number(target.dataset.index), b = s.boxes[i];
      s.selected = i;
      s.drag = e.target.classList.contains("handle")
        ? {mode: "resize", i, x0: b.left, y0: b.top}
        : {mode: "move", i, dx: p.x - b.left, dy: p.y - b.top};
    } else {
      s.boxes.push({class_id: s.cls, left: p.x, top: p.y, width: 0, height: 0});
      s.selected = s.boxes.length - 1;
      s.drag = {mode: "draw", i: s.selected, x0: p.x, y0: p.y};
    }
    draw(ctx);
  }
  function onMove(e, ctx) {
    if (!s || !s.drag) return;
    const p = toImage(e), d = s.drag, b = s.boxes[d.i], W = s.img.naturalWidth, H = s.img.naturalHeight;
    if (d.mode === "move") {
      b.left = clamp(p.x - d.dx, 0, W - b.width);
      b.top = clamp(p.y - d.dy, 0, H - b.height);
    } else {
      b.left = Math.min(d.x0, p.x); b.top = Math.min(d.y0, p.y);
      b.width = Math.abs(p.x - d.x0); b.height = Math.abs(p.y - d.y0);
    }
    draw(ctx);
  }
  function onUp(ctx) {
    if (!s || !s.drag) return;
    const b = s.boxes[s.drag.i];
    if (b.width < MIN_SIZE || b.height < MIN_SIZE) {  // a click, not a box
      if (s.drag.mode !== "move") { s.boxes.splice(s.drag.i, 1); s.selected = -1; }
    }
    s.drag = null;
    draw(ctx);
  }

  const widget = {
    render(slots, item, ctx) {
      const el = ctx.el;
      if (ctx.fresh || !s || s.item.index !== item.index) {
        s = fresh(item);
        const wrap = el("div", {id: "box-stage"});
        s.img = el("img", {id: "image", src: item.image_url, alt: item.source_ref || "image to box", draggable: false});
        s.layer = el("div", {id: "box-layer"});
        wrap.append(s.img, s.layer);
        slots.stage.className = "boxes";
        slots.stage.replaceChildren(wrap);
        s.img.addEventListener("load", () => draw(ctx));
        wrap.addEventListener("mousedown", (e) => onDown(e, ctx));
        window.onmousemove = (e) => onMove(e, ctx);
        window.onmouseup = () => onUp(ctx);
      }
      if (s.suggested) {
        const g = item.guess, pct = g.confidence == null ? "" : " (" + Math.round(100 * g.confidence) + " %)";
        slots.guess.replaceChildren("the model's boxes" + pct + " are drawn: adjust them, then press ",
          el("kbd", {textContent: "Enter"}));
      }
      const bar = el("div", {id: "box-classes"});
      ctx.categories.forEach((name, i) => {
        const b = el("button", {type: "button", className: i === s.cls ? "current" : ""});
        b.dataset.class = i;
        const k = ctx.keyFor(i);
        if (k) b.append(el("kbd", {textContent: k}));
        b.append(name);
        b.addEventListener("click", () => pick(ctx, i));
        bar.append(b);
      });
      const remove = el("button", {type: "button", id: "box-delete", textContent: "Delete box"});
      remove.addEventListener("click", () => { if (s.selected >= 0) { s.boxes.splice(s.selected, 1); s.selected = -1; draw(ctx); } });
      const none = el("button", {type: "button", id: "box-none", textContent: "No objects"});
      none.addEventListener("click", () => { s.boxes = []; s.selected = -1; submit(ctx); });
      const done = el("button", {type: "button", id: "box-submit"});
      done.append(el("kbd", {textContent: "Enter"}), "Submit boxes");
      done.addEventListener("click", () => submit(ctx));
      slots.answer.replaceChildren(bar, el("div", {id: "box-tools"}));
      slots.answer.lastChild.append(done, remove, none, el("span", {id: "box-count"}));
      slots.hint.replaceChildren("drag to draw · drag a box to move, its corner to resize · ",
        el("kbd", {textContent: "Del"}), "deletes · number/letter: class");
      draw(ctx);
    },
    key(e, item, ctx) {
      if (!s) return;
      if (e.key === "Enter") { e.preventDefault(); submit(ctx); return; }
      if (e.key === "Delete") {
        e.preventDefault();
        if (s.selected >= 0) { s.boxes.splice(s.selected, 1); s.selected = -1; draw(ctx); }
        return;
      }
      if (e.key === "Escape") { s.selected = -1; draw(ctx); return; }
      const k = e.key.toLowerCase();
      for (let i = 0; i < ctx.categories.length; i++) {
        if (ctx.keyFor(i) === k) { e.preventDefault(); pick(ctx, i); return; }
      }
    },
  };
  (window.labelloopWidgets = window.labelloopWidgets || {}).boxes = widget;
})();
