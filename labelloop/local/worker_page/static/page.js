// The worker page: asks the server for the next item, hands it to the widget its view names,
// and sends answers, skips and undos. What an item looks like, and how it is answered, is the
// widget's business (static/widgets/NAME.js registers itself in window.labelloopWidgets):
//   widget.render(slots, item, ctx)  draws into slots.stage / .guess / .answer / .hint;
//                                    ctx = {categories, fresh (a new item), answer(label), keyFor(i), el(tag, props),
//                                           job, api(path, body): a POST to the server, e.g. /api/propose};
//                                    label: what the task type's read_value accepts;
//                                    item.widget_options: what else the task type gives it (a mask's colours)
//   widget.key(event, item, ctx)     a key press not taken by the page (skip, undo)
//   widget.undo(item, ctx)           optional: Ctrl+Z asks it first; true when it took back a step
//                                    of its own (a painted stroke), else Ctrl+Z undoes the last answer
//   widget.ready                     optional: a Promise the page waits for before it renders (helper scripts)
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const workerParam = params.get("worker");
  const nonce = document.currentScript ? document.currentScript.nonce : "";
  const $ = (id) => document.getElementById(id);
  const loaded = {};  // widget name -> Promise of the widget
  let view = null, widget = null, ctx = null, busy = false, timer = null, shownKey = null;

  function apiUrl(path) {
    const q = new URLSearchParams();
    if (workerParam) q.set("worker", workerParam);
    const s = q.toString();
    return path + (s ? "?" + s : "");
  }
  function staticUrl(name) { return "/static/" + name + "?token=" + encodeURIComponent(token); }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  async function api(path, body) {
    const res = await fetch(apiUrl(path), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Labelloop-Token": token},
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = {error: "the server answered " + res.status}; }
    if (!res.ok) { const err = new Error(data.error || ("HTTP " + res.status)); err.status = res.status; throw err; }
    return data;
  }
  function showError(text) { const e = $("error"); e.textContent = text || ""; e.style.display = text ? "block" : "none"; }
  function flash(text) { $("flash").textContent = text || ""; }
  function schedule(ms) { clearTimeout(timer); timer = setTimeout(load, ms); }

  function widgetError(text) { const e = new Error(text); e.widget = true; return e; }
  function loadWidget(name) {
    if (!/^[a-z][a-z0-9-]{0,40}$/.test(name || "")) return Promise.reject(widgetError("the item names no usable widget"));
    if (!loaded[name]) {
      loaded[name] = new Promise((resolve, reject) => {
        const css = document.createElement("link");
        css.rel = "stylesheet"; css.href = staticUrl("widgets/" + name + ".css");
        document.head.append(css);
        const script = document.createElement("script");
        script.nonce = nonce; script.src = staticUrl("widgets/" + name + ".js");
        script.onload = () => {
          const w = (window.labelloopWidgets || {})[name];
          if (!w) { reject(widgetError("the " + name + " widget did not load")); return; }
          Promise.resolve(w.ready).then(() => resolve(w),
            (e) => { delete loaded[name]; reject(widgetError("the " + name + " widget did not load (" + e.message + ")")); });
        };
        script.onerror = () => { delete loaded[name]; reject(widgetError("cannot load the " + name + " widget")); };
        document.head.append(script);
      });
    }
    return loaded[name];
  }

  // What every widget needs: a category's shortcut key (1-9, 0, a-z) and an element maker.
  function keyFor(i) {
    if (i < 9) return String(i + 1);
    if (i === 9) return "0";
    if (i < 36) return String.fromCharCode(97 + i - 10);
    return null;
  }
  function makeElement(tag, props) { return Object.assign(document.createElement(tag), props || {}); }

  function renderProgress(v) {
    const p = v.progress;
    if (!p) { $("bar").style.width = "0"; $("progress-text").textContent = ""; return; }
    $("bar").style.width = (p.total ? (100 * p.done / p.total) : 0) + "%";
    let text = p.done + " / " + p.total + " done";
    if (v.workers_per_object > 1) text += " · " + p.answers + " / " + p.needed + " answers (" + v.workers_per_object + " workers per item)";
    text += " · " + p.mine + " by you";
    $("progress-text").textContent = text;
  }

  function render(v, w) {
    view = v;
    $("worker").textContent = v.worker || "";
    $("job").textContent = v.job ? "batch " + v.job : "";
    renderProgress(v);
    const hasItem = v.state === "item";
    $("item").hidden = !hasItem;
    $("message").hidden = hasItem;
    $("undo-only").hidden = hasItem || !v.can_undo;
    document.body.dataset.state = v.state;
    if (!hasItem) { $("message").textContent = v.message || ""; shownKey = null; widget = ctx = null; schedule(1500); return; }
    const it = v.item;
    const el = $("item");
    el.dataset.index = it.index; el.dataset.key = it.key; el.dataset.job = v.job;
    const key = v.job + "/" + it.index + "/" + it.widget;
    const slots = {stage: $("stage"), guess: $("guess"), answer: $("answer"), hint: $("hint")};
    ctx = {categories: v.categories, fresh: shownKey !== key, answer: answer, keyFor: keyFor, el: makeElement, job: v.job, api: api};
    if (ctx.fresh) { slots.stage.replaceChildren(); slots.stage.className = ""; }
    shownKey = key;
    slots.guess.replaceChildren(); slots.answer.replaceChildren(); slots.hint.replaceChildren();
    widget = w;
    w.render(slots, it, ctx);
    slots.guess.hidden = !slots.guess.hasChildNodes();
    $("skipped-note").hidden = !it.skipped_before;
    $("undo").disabled = !v.can_undo;
  }

  async function load() {
    clearTimeout(timer);
    try {
      const v = await api("/api/next");
      const w = v.state === "item" ? await loadWidget(v.item.widget) : null;
      showError("");
      render(v, w);
    } catch (e) {
      if (e.status === 401 || e.status === 403) { showError(e.message); return; }
      showError(e.status || e.widget ? e.message : "Cannot reach the labeling server (the run may have ended). Retrying…");
      schedule(3000);
    }
  }

  async function act(path, body, done) {
    if (busy) return;
    busy = true;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    try { const r = await api(path, body); showError(""); flash(done(r)); }
    catch (e) { showError(e.message); }
    finally { busy = false; }
    await load();
  }
  function answer(label, extra) {  // extra: what else the answer says ({clicks}: its cost in the click tool's clicks)
    if (!view || view.state !== "item") return;
    // A class index names its category; a richer answer (boxes) says how many it holds.
    const name = typeof label === "number" ? view.categories[label]
      : (label.annotations ? label.annotations.length + " box(es)" : "answer");
    act("/api/answer", {...extra, job: view.job, item: view.item.index, label: label, answer_id: newId()}, () => "saved: " + name);
  }
  function skip() {
    if (!view || view.state !== "item") return;
    act("/api/skip", {job: view.job, item: view.item.index}, () => "skipped; it comes back at the end");
  }
  function undo() {
    if (!view || !view.job || !view.can_undo) return;
    act("/api/undo", {job: view.job}, () => "undone: answer it again");
  }
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("undo2").addEventListener("click", undo);

  document.addEventListener("keydown", (e) => {
    if (e.repeat || e.altKey) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") {
      e.preventDefault();
      if (view && view.state === "item" && widget && widget.undo && widget.undo(view.item, ctx)) return;
      undo();
      return;
    }
    if (e.ctrlKey || e.metaKey) return;
    if (e.key === "Backspace" || e.key === "ArrowLeft") { e.preventDefault(); undo(); return; }
    if (!view || view.state !== "item" || !widget) return;
    if (e.key === "ArrowRight") { e.preventDefault(); skip(); return; }
    if (widget.key) widget.key(e, view.item, ctx);
  });
  load();
})();
