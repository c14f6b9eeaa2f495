// The classification widget (image- and text-classification): shows the item's image or text,
// the model's suggestion when the server sent one, and one button per category. Keys: a
// category's number or letter answers it; Enter confirms the suggestion.
(() => {
  "use strict";


  function show(stage, item, el) {
    stage.className = item.kind;
    if (item.kind === "image") {
      stage.replaceChildren(el("img", {id: "image", src: item.image_url, alt: item.source_ref || "item to label"}));
    } else {
      const text = el("pre", {id: "text"});
      text.textContent = item.text;  // text, never HTML
      stage.replaceChildren(text);
    }
  }

  const widget = {
    render(slots, item, ctx) {
      const el = ctx.el;
      if (ctx.fresh) show(slots.stage, item, el);
      const g = item.guess;
      if (g) {
        const pct = g.confidence == null ? "" : " (" + Math.round(100 * g.confidence) + " %)";
        slots.guess.replaceChildren("model suggests: ", el("b", {textContent: g.name}), pct,
          " — press ", el("kbd", {textContent: "Enter"}), "to confirm, or choose another category");
      }
      const box = el("div", {id: "categories"});
      ctx.categories.forEach((name, i) => {
        const b = el("button", {type: "button"});
        b.dataset.class = i;
        const k = ctx.keyFor(i);
        if (k) b.append(el("kbd", {textContent: k}));
        b.append(name);
        if (g && g.class === i) b.classList.add("suggested");
        b.addEventListener("click", () => ctx.answer(i));
        box.append(b);
      });
      slots.answer.replaceChildren(box);
      slots.hint.replaceChildren("keys: category number or letter · ", el("kbd", {textContent: "Enter"}),
        " confirms the suggestion");
    },
    key(e, item, ctx) {
      if (e.key === "Enter") {
        e.preventDefault();
        if (item.guess) ctx.answer(item.guess.class);
        return;
      }
      const k = e.key.toLowerCase();
      for (let i = 0; i < ctx.categories.length; i++) {
        if (ctx.keyFor(i) === k) { e.preventDefault(); ctx.answer(i); return; }
      }
    },
  };
  (window.labelloopWidgets = window.labelloopWidgets || {}).classification = widget;
})();
