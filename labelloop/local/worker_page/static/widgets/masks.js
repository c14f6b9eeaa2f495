// The mask widget (semantic-segmentation): a person paints each object's pixels with its class
// over the image. Tools: a round brush of adjustable size, an eraser (paints background) and a
// polygon (click its corners; click the first one again, or press Enter, to fill it with the
// class). A routed image starts from the model's mask to fix; a validation image starts empty
// (the server sends no guess for it). Keys: a category's number or letter picks the class; B, E
// and P pick the tools unless a category owns the letter; [ and ] size the brush; Ctrl+Z undoes
// the last stroke or polygon (a polygon's last corner while it is open); Escape drops an open
// polygon; Enter fills an open polygon, else submits. Where the task type offers it, the click
// tool (C) makes an object from its four extreme points and corrective clicks (mask_clicks.js).
//
// The mask is a class-id buffer at the image's own size, one byte a pixel (0 background, category
// k is k + 1), never a canvas: canvas drawing blends edges into colours that are no class. A
// canvas only shows the buffer, each class in its internal-color-map colour. The answer is the
// buffer as a greyscale PNG, the task type's value, encoded here.
(() => {
  "use strict";

  const MAX_UNDO = 50;        // steps kept to undo; each keeps a copy of the mask (a byte a pixel)
  const CLOSE_PX = 10;        // screen pixels: a click this near a polygon's first corner closes it
  const SVG = "http://www.w3.org/2000/svg";
  const TOOLS = [{name: "brush", key: "b", label: "Brush"}, {name: "eraser", key: "e", label: "Eraser"},
                 {name: "polygon", key: "p", label: "Polygon"}, {name: "clicks", key: "c", label: "Clicks", clicks: true}];
  // The PNG codec and the click tool are scripts of their own beside this one, loaded with its nonce.
  const me = document.currentScript;
  const helper = (name) => new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), {nonce: me.nonce, src: me.src.replace("/masks.js", "/" + name)});
    script.onload = resolve;
    script.onerror = () => reject(new Error("cannot load " + name));
    document.head.append(script);
  });
  const ready = Promise.all([helper("mask_png.js"), helper("mask_clicks.js")]);
  const png = () => window.labelloopMaskPng;

  let s = null;  // one image's painting state; recreated for each new item

  function fresh(item, ctx) {
    // Each class in the task type's internal-color-map colour (index = class id), as its masks are painted.
    const colors = ((item.widget_options || {}).colors || []).map(hexToRgb);
    return {
      item, ctx, colors, guess: item.guess && typeof item.guess.class === "string" ? item.guess : null,
      img: null, paint: null, marks: null, g2d: null, W: 0, H: 0, ids: null, pixels: null,
      cls: 0, tool: "brush", size: 1, history: [], last: null, poly: [], hover: null,
      ready: false, sending: false, note: "", clicks: null,
      spent: 0,  // the click tool's clicks on this image, taken-back ones too: the answer's cost in clicks
    };
  }
  function hexToRgb(hex) { const v = parseInt(String(hex).slice(1), 16); return [v >> 16, (v >> 8) & 255, v & 255]; }
  const paintValue = () => (s.tool === "eraser" ? 0 : s.cls + 1);
  const scale = () => s.paint.getBoundingClientRect().width / s.W;  // screen pixels per image pixel
  function toImage(e) {
    const r = s.paint.getBoundingClientRect(), k = r.width / s.W;
    return {x: (e.clientX - r.left) / k, y: (e.clientY - r.top) / k};
  }

  // ------------------------------------------------------------ the buffer and what shows it

  async function start(mine) {
    s.W = s.img.naturalWidth; s.H = s.img.naturalHeight;
    s.paint.width = s.W; s.paint.height = s.H;
    s.marks.setAttribute("viewBox", "0 0 " + s.W + " " + s.H);
    s.g2d = s.paint.getContext("2d");
    s.pixels = s.g2d.createImageData(s.W, s.H);
    s.ids = new Uint8Array(s.W * s.H);
    s.size = Math.max(1, Math.round(Math.min(s.W, s.H) / 25));
    if ((s.item.widget_options || {}).clicks) s.clicks = window.labelloopMaskClicks.create(s, {show, checkpoint, controls, marks, status});
    if (s.guess) {
      const ids = await png().decodeMask(s.guess.class, s.W, s.H, s.ctx.categories.length).catch((err) => err);
      if (s !== mine) return;  // the person moved on meanwhile
      if (ids instanceof Error) s.note = "the model's mask cannot be shown (" + ids.message + "): paint from scratch";
      else s.ids = ids;
    }
    s.ready = true;
    show();
    controls();
  }

  // Recolour the pixels of [x0, x1) x [y0, y1) from the buffer and put only those on the canvas.
  function show(x0 = 0, y0 = 0, x1 = s.W, y1 = s.H) {
    const px = s.pixels.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0, i = y * s.W + x0; x < x1; x++, i++) {
        const id = s.ids[i], c = s.colors[id] || [0, 0, 0];
        px[4 * i] = c[0]; px[4 * i + 1] = c[1]; px[4 * i + 2] = c[2]; px[4 * i + 3] = id ? 255 : 0;  // see-through: masks.css
      }
    }
    s.g2d.putImageData(s.pixels, 0, 0, x0, y0, x1 - x0, y1 - y0);
  }

  function checkpoint() {  // before each stroke or polygon: what Ctrl+Z goes back to
    s.history.push(s.ids.slice());
    if (s.history.length > MAX_UNDO) s.history.shift();
  }

  // The brush: the pixels whose centres lie in a disc of its diameter, and always the pixel under
  // its centre (so a 1-pixel brush paints one pixel wherever it is). `box` grows to what it touched.
  function disc(cx, cy, value, box) {
    const r = s.size / 2;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(s.W - 1, Math.floor(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(s.H - 1, Math.floor(cy + r));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        if (dx * dx + dy * dy <= r * r) s.ids[y * s.W + x] = value;
      }
    }
    const px = Math.floor(cx), py = Math.floor(cy);
    if (px >= 0 && py >= 0 && px < s.W && py < s.H) s.ids[py * s.W + px] = value;
    box.x0 = Math.min(box.x0, x0); box.y0 = Math.min(box.y0, y0);
    box.x1 = Math.max(box.x1, x1); box.y1 = Math.max(box.y1, y1);
  }
  // A stroke from a to b: discs close enough together that a fast drag leaves no gaps.
  function line(a, b, value) {
    const step = Math.max(0.5, s.size / 4);
    const n = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / step));
    const box = {x0: Infinity, y0: Infinity, x1: -Infinity, y1: -Infinity};
    for (let k = 0; k <= n; k++) disc(a.x + (b.x - a.x) * k / n, a.y + (b.y - a.y) * k / n, value, box);
    if (box.x1 >= box.x0 && box.y1 >= box.y0) show(box.x0, box.y0, box.x1 + 1, box.y1 + 1);
  }
  // Even-odd scanline fill at pixel centres: a pixel is the class exactly when its centre is inside.
  function fillPolygon(points, value) {
    const ys = points.map((p) => p.y);
    const y0 = Math.max(0, Math.floor(Math.min(...ys))), y1 = Math.min(s.H - 1, Math.ceil(Math.max(...ys)));
    for (let y = y0; y <= y1; y++) {
      const yc = y + 0.5, xs = [];
      points.forEach((a, i) => {
        const b = points[(i + 1) % points.length];
        if ((a.y <= yc) !== (b.y <= yc)) xs.push(a.x + (yc - a.y) * (b.x - a.x) / (b.y - a.y));
      });
      xs.sort((p, q) => p - q);
      for (let k = 0; k + 1 < xs.length; k += 2) {
        const from = Math.max(0, Math.ceil(xs[k] - 0.5)), to = Math.min(s.W, Math.ceil(xs[k + 1] - 0.5));
        if (to > from) s.ids.fill(value, y * s.W + from, y * s.W + to);
      }
    }
    show(0, y0, s.W, y1 + 1);
  }

  // ------------------------------------------------------------ tools

  function onDown(e) {
    if (e.button !== 0 || !s.ready || s.sending) return;
    e.preventDefault();
    const p = toImage(e);
    if (s.tool === "polygon") { corner(p); return; }
    if (s.tool === "clicks") { if (s.clicks) s.clicks.click(p); return; }
    e.currentTarget.setPointerCapture(e.pointerId);  // a stroke that leaves the image still ends on release
    checkpoint();
    s.last = p;
    line(p, p, paintValue());
  }
  function onMove(e) {
    if (!s || !s.ready) return;
    const p = toImage(e);
    s.hover = p.x >= 0 && p.y >= 0 && p.x <= s.W && p.y <= s.H ? p : null;
    if (s.last) { line(s.last, p, paintValue()); s.last = p; }
    marks();
  }
  function onUp() { if (s && s.last) { s.last = null; controls(); } }  // the stroke ends
  function corner(p) {
    const first = s.poly[0];
    if (s.poly.length >= 3 && Math.hypot(p.x - first.x, p.y - first.y) * scale() <= CLOSE_PX) { closePolygon(); return; }
    s.poly.push({x: Math.max(0, Math.min(s.W, p.x)), y: Math.max(0, Math.min(s.H, p.y))});
    marks();
    controls();
  }
  function closePolygon() {
    if (s.poly.length < 3) { status("a polygon needs 3 corners or more (Escape drops it)"); return; }
    checkpoint();
    fillPolygon(s.poly, s.cls + 1);
    s.poly = [];
    marks();
    controls();
  }
  function undoStep() {  // true when there was a step of this image's to undo
    if (!s || !s.ready || s.last) return false;
    if (s.clicks && s.clicks.undo()) return true;
    if (s.poly.length) s.poly.pop();
    else if (s.history.length) { s.ids = s.history.pop(); show(); }
    else return false;
    marks();
    controls();
    return true;
  }

  // The brush's outline under the pointer, and an open polygon's corners with a line to the pointer.
  function marks() {
    const shapes = [];
    const make = (tag, attrs) => {
      const node = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries({"vector-effect": "non-scaling-stroke", ...attrs})) node.setAttribute(k, v);
      shapes.push(node);
    };
    if (s.poly.length) {
      const pts = s.hover ? [...s.poly, s.hover] : s.poly;
      make("polyline", {class: "edge", points: pts.map((p) => p.x + "," + p.y).join(" ")});
      make("circle", {class: "first", cx: s.poly[0].x, cy: s.poly[0].y, r: CLOSE_PX / scale()});
    } else if (s.tool === "clicks") {
      if (s.clicks) s.clicks.marks(make, scale());
    } else if (s.hover && s.tool !== "polygon") {
      make("circle", {class: "brush", cx: s.hover.x, cy: s.hover.y, r: s.size / 2});
    }
    s.marks.replaceChildren(...shapes);
  }

  // ------------------------------------------------------------ controls

  function pick(i) {  // picking a class means painting with it: the eraser gives way to the brush
    s.cls = i;
    if (s.tool === "eraser") s.tool = "brush";
    controls();
  }
  function setTool(name) {
    if (name !== "clicks" && s.clicks) s.clicks.finish();
    s.tool = name; if (name !== "polygon") s.poly = []; marks(); controls();
  }
  function resize(direction) {
    s.size = Math.max(1, Math.min(maxSize(), s.size + direction * Math.max(1, Math.round(s.size / 8))));
    marks();
    controls();
  }
  const maxSize = () => Math.max(16, Math.round(Math.max(s.W, s.H) / 4));  // a quarter of the image
  function toolKey(tool) {  // a category's key always wins
    const ctx = s.ctx;
    return ctx.categories.some((_, i) => ctx.keyFor(i) === tool.key) ? null : tool.key;
  }
  function status(text) { s.note = text; controls(); }

  // Bring the buttons, the size and the status line in line with the state.
  function controls() {
    const $ = (id) => document.getElementById(id);
    if (!$("mask-tools")) return;
    document.querySelectorAll("#mask-classes button").forEach((b) => b.classList.toggle("current", Number(b.dataset.class) === s.cls));
    document.querySelectorAll("#mask-tools button[data-tool]").forEach((b) => b.classList.toggle("current", b.dataset.tool === s.tool));
    Object.assign($("mask-size"), {max: String(maxSize()), value: String(s.size)});
    $("mask-size-label").textContent = s.size + " px";
    $("mask-undo").disabled = !s.history.length && !s.poly.length && !(s.clicks && s.clicks.open());
    if (s.clicks) s.clicks.controls($("mask-object-done"));
    let text = s.note;
    if (!text && !s.ready) text = s.guess ? "loading the model's mask…" : "loading…";
    if (!text) {
      const painted = s.ids.reduce((n, id) => n + (id !== 0), 0);
      text = painted ? Math.round(100 * painted / s.ids.length) + " % painted" : "nothing painted: submitting says all background";
    }
    $("mask-status").textContent = text;
    s.note = "";  // a note shows once, until the next change
  }

  async function submit() {
    if (!s.ready || s.sending) return;
    if (s.poly.length) { status("finish the polygon first: click its first corner or press Enter (Escape drops it)"); return; }
    if (s.clicks && s.clicks.busy()) { status("wait for the object's mask"); return; }
    const mine = s;
    s.sending = true;
    try {
      const bytes = await png().encodeMask(s.ids, s.W, s.H);
      if (s === mine) s.ctx.answer("data:image/png;base64," + png().toBase64(bytes), s.clicks ? {clicks: s.spent} : {});
    } finally {
      mine.sending = false;
    }
  }

  function button(el, props, label, key, onClick) {
    const b = el("button", {type: "button", ...props});
    if (key) b.append(el("kbd", {textContent: key}));
    b.append(label);
    // Blurred after a click, so Enter (submit) never also presses the last button clicked.
    b.addEventListener("click", () => { b.blur(); onClick(); });
    return b;
  }

  const widget = {
    render(slots, item, ctx) {
      const el = ctx.el;
      if (ctx.fresh || !s || s.item.index !== item.index) {
        s = fresh(item, ctx);
        const mine = s, wrap = el("div", {id: "mask-stage"});
        s.img = el("img", {id: "image", src: item.image_url, alt: item.source_ref || "image to paint", draggable: false});
        s.paint = el("canvas", {id: "mask-paint"});
        s.marks = document.createElementNS(SVG, "svg");
        s.marks.id = "mask-marks";
        s.marks.setAttribute("preserveAspectRatio", "none");
        wrap.append(s.img, s.paint, s.marks);
        slots.stage.className = "masks";
        slots.stage.replaceChildren(wrap);
        s.img.addEventListener("load", () => { if (s === mine) start(mine); });
        wrap.addEventListener("pointerdown", onDown);
        window.onpointermove = onMove;  // one handler at a time, whichever image is shown
        window.onpointerup = window.onpointercancel = onUp;
      }
      s.ctx = ctx;
      if (s.guess) {
        const g = s.guess, pct = g.confidence == null ? "" : " (" + Math.round(100 * g.confidence) + " %)";
        slots.guess.replaceChildren("the model's mask" + pct + " is painted: fix it, then press ", el("kbd", {textContent: "Enter"}));
      }
      const classes = el("div", {id: "mask-classes"});
      ctx.categories.forEach((name, i) => {
        const b = button(el, {}, name, ctx.keyFor(i), () => pick(i));
        const swatch = el("span", {className: "swatch"});
        swatch.style.background = "rgb(" + (s.colors[i + 1] || [128, 128, 128]).join(",") + ")";
        b.prepend(swatch);
        b.dataset.class = i;
        classes.append(b);
      });
      const tools = el("div", {id: "mask-tools"});
      TOOLS.filter((t) => !t.clicks || (item.widget_options || {}).clicks).forEach((t) => {
        const b = button(el, {}, t.label, toolKey(t), () => setTool(t.name));
        b.dataset.tool = t.name;
        tools.append(b);
      });
      const size = el("input", {type: "range", id: "mask-size", min: "1", title: "brush size ([ and ])"});
      size.addEventListener("input", () => { s.size = Number(size.value); marks(); controls(); });
      size.addEventListener("pointerup", () => size.blur());
      // Arrow keys move the slider, not the page (← there undoes the last answer).
      size.addEventListener("keydown", (e) => { if (e.key.startsWith("Arrow")) e.stopPropagation(); });
      const sizeLabel = el("label", {className: "size"});
      sizeLabel.append("size ", size, el("span", {id: "mask-size-label"}));
      const clear = () => {
        if (!s.ready || (s.clicks && s.clicks.busy())) return;
        if (s.clicks) s.clicks.finish();
        checkpoint(); s.ids.fill(0); show(); controls();
      };
      if ((item.widget_options || {}).clicks) tools.append(button(el, {id: "mask-object-done"}, "Object done", "Enter", () => s.clicks && s.clicks.finish()));
      tools.append(sizeLabel, button(el, {id: "mask-undo"}, "Undo step", "Ctrl+Z", undoStep),
                   button(el, {id: "mask-clear"}, "Clear", "", clear));
      const done = el("div", {id: "mask-submit-row"});
      done.append(button(el, {id: "mask-submit"}, "Submit mask", "Enter", () => submit()), el("span", {id: "mask-status"}));
      slots.answer.replaceChildren(classes, tools, done);
      slots.hint.replaceChildren("drag to paint · ", el("kbd", {textContent: "["}), el("kbd", {textContent: "]"}),
        "brush size · number/letter: class", (item.widget_options || {}).clicks ? " · Clicks: an object's 4 extreme points, then a click on each wrong region" : "");
      controls();
    },
    key(e) {
      if (!s) return;
      if (e.key === "Enter") {
        e.preventDefault();
        if (s.poly.length) closePolygon(); else if (s.clicks && s.clicks.open()) s.clicks.finish(); else submit();
        return;
      }
      if (e.key === "Escape") { s.poly = []; marks(); controls(); return; }
      if (!s.ready) return;
      if (e.key === "[" || e.key === "]") { e.preventDefault(); resize(e.key === "]" ? 1 : -1); return; }
      const k = e.key.toLowerCase(), ctx = s.ctx;
      for (let i = 0; i < ctx.categories.length; i++) {
        if (ctx.keyFor(i) === k) { e.preventDefault(); pick(i); return; }
      }
      const tool = TOOLS.find((t) => toolKey(t) === k);
      if (tool) { e.preventDefault(); setTool(tool.name); }
    },
    undo() { return undoStep(); },
    ready,  // the page waits for the helpers before it renders
  };
  (window.labelloopWidgets = window.labelloopWidgets || {}).masks = widget;
})();
