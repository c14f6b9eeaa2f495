"""A run's report: one self-contained HTML page about a labeling run's output folder.

`labelloop report OUTPUT_DIR` reads what the loop wrote (see `labelloop.layout`): the settings,
each iteration's `metrics.json`, the labels (the output manifest of a
finished run, else the newest ledger of a run still going), the human batch waiting for people,
`output/summary.json` and `output/evaluation.json` when they exist. It writes
`OUTPUT_DIR/report/report.html` with every image embedded (base64 PNGs), and the plots again as
PNG files beside it. A folder with nothing in it yet gets a page that says so.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from labelloop import layout

DEFAULT_PRICE_PER_LABEL = 0.08  # dollars per label per worker, as `labelloop run` assumes
REPORT_DIR = "report"
REPORT_NAME = "report.html"
PLOTS = ("labels.png", "calibration.png", "classes.png")
THUMB_PX = 96


@dataclass
class Item:
    """One item as the report needs it, whichever file it came from."""

    source: dict[str, Any]
    class_id: int | None = None
    class_name: str | None = None
    confidence: float | None = None
    human: bool = False
    iteration: int | None = None  # 0: labeled in the input manifest; None: not known

    @property
    def labeled(self) -> bool:
        return self.class_id is not None


@dataclass
class RunData:
    root: Path
    settings: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    labels: "Labels" = field(default_factory=lambda: Labels(24))
    items_from: Path | None = None
    pending: list[Item] = field(default_factory=list)  # the human batch waiting for people (first examples)
    pending_count: int = 0
    pending_from: Path | None = None
    summary: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (self.settings or self.metrics or self.labels.total)


class Labels:
    """Counts of the labels, streamed (a run may have millions of items), and a few examples.

    Keeps the `n` least confident auto-labels and the `n` newest human labels (input order
    within an iteration), as a full sort would order them.
    """

    def __init__(self, n: int):
        self.n = max(0, n)
        self.total = self.human = self.auto = self.human_by_job = 0
        self.per_class: dict[tuple[int, bool], int] = {}  # (class, human) -> count
        self.names: dict[int, str] = {}
        self._auto: list[tuple[float, int, Item]] = []  # max-heap on (confidence, seq) via negation
        self._human: list[tuple[int, int, Item]] = []  # min-heap on (iteration, -seq): the worst kept on top

    def add(self, item: Item) -> None:
        seq = self.total
        self.total += 1
        if not item.labeled:
            return
        key = (item.class_id, item.human)
        self.per_class[key] = self.per_class.get(key, 0) + 1
        if item.class_name is not None:
            self.names.setdefault(item.class_id, item.class_name)
        if item.human:
            self.human += 1
            self.human_by_job += item.iteration is not None and item.iteration >= 1
            entry = (item.iteration or 0, -seq, item)
            if len(self._human) < self.n:
                heapq.heappush(self._human, entry)
            elif self.n and entry[:2] > self._human[0][:2]:
                heapq.heapreplace(self._human, entry)
        else:
            self.auto += 1
            entry = (-(item.confidence or 0.0), -seq, item)
            if len(self._auto) < self.n:
                heapq.heappush(self._auto, entry)
            elif self.n and entry[:2] > self._auto[0][:2]:
                heapq.heapreplace(self._auto, entry)

    def auto_examples(self) -> list[Item]:
        return [e[2] for e in sorted(self._auto, key=lambda e: (-e[0], -e[1]))]

    def human_examples(self) -> list[Item]:
        return [e[2] for e in sorted(self._human, key=lambda e: (-e[0], -e[1]))]


# ---------------------------------------------------------------- reading the output folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """JSON objects, one a line; a torn or foreign line (a run still writing) is skipped."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError:
        return
    with handle:
        for text in handle:
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                yield value


def _iteration_dirs(root: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (root / "iterations").glob("[0-9][0-9][0-9]*"):
        if path.is_dir() and path.name.isdigit():
            found.append((int(path.name), path))
    return sorted(found)


def newest_ledger(root: Path) -> Path | None:
    """The ledger the loop wrote last: highest iteration, then input < human < auto."""
    found = layout.ledgers([str(p) for p in (root / "iterations").glob("*/ledger-*.jsonl") if p.is_file()])
    return Path(found[-1][2]) if found else None


def _label_attribute(settings: dict[str, Any], line: dict[str, Any]) -> str | None:
    if settings.get("LabelAttributeName"):
        return str(settings["LabelAttributeName"])
    for key, value in line.items():
        if key.endswith("-metadata") and isinstance(value, dict) and str(value.get("type", "")).startswith("groundtruth/"):
            return key[: -len("-metadata")]
    return None


_JOB_ITERATION = re.compile(r"-(\d{3})-(?:label|auto)$")


def _items_from_manifest(path: Path, settings: dict[str, Any], classes: list[str]) -> Iterator[Item]:
    attribute = None
    for line in _iter_jsonl(path):
        attribute = attribute or _label_attribute(settings, line)
        meta = line.get(f"{attribute}-metadata") if attribute else None
        source = {k: v for k, v in line.items() if not attribute or k not in (attribute, f"{attribute}-metadata")}
        value = line.get(attribute) if attribute else None
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(meta, dict):
            match = _JOB_ITERATION.search(str(meta.get("job-name", "")))
            name = meta.get("class-name")
            yield Item(
                source=source,
                class_id=value,
                class_name=str(name) if name is not None else (classes[value] if value < len(classes) else str(value)),
                confidence=_number(meta.get("confidence")),
                human=meta.get("human-annotated") == "yes",
                iteration=int(match.group(1)) if match else None,
            )
        else:
            yield Item(source=source)


def _items_from_ledger(path: Path, classes: list[str]) -> Iterator[Item]:
    for record in _iter_jsonl(path):
        source = record.get("source") if isinstance(record.get("source"), dict) else {}
        label = record.get("label")
        if isinstance(label, dict) and isinstance(label.get("class"), int):
            cls = label["class"]
            yield Item(
                source=source,
                class_id=cls,
                class_name=classes[cls] if 0 <= cls < len(classes) else str(cls),
                confidence=_number(label.get("confidence")),
                human=bool(label.get("human")),
                iteration=label.get("iteration") if isinstance(label.get("iteration"), int) else None,
            )
        else:
            yield Item(source=source)


def _pending_batch(root: Path) -> Path | None:
    """The newest human batch whose answers are not merged yet (a run waiting for people)."""
    dirs = _iteration_dirs(root)
    if not dirs:
        return None
    _, folder = dirs[-1]
    batch = folder / "human-input.manifest"
    if batch.is_file() and not (folder / "ledger-human.jsonl").exists():
        return batch
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def load_run(root: Path, examples: int = 24) -> RunData:
    root = Path(root)
    data = RunData(root=root, labels=Labels(examples))
    data.settings = _read_json(root / "config" / "settings.json") or {}
    config = _read_json(root / "config" / "label-categories.json")
    if isinstance(config, dict) and isinstance(config.get("labels"), list):
        data.classes = [str(entry.get("label")) for entry in config["labels"] if isinstance(entry, dict)]
    elif data.settings.get("LabelCategories"):
        data.classes = [str(c) for c in data.settings["LabelCategories"]]
    for number, folder in _iteration_dirs(root):
        metrics = _read_json(folder / "metrics.json")
        if isinstance(metrics, dict):
            metrics.setdefault("Iteration", number)
            data.metrics.append(metrics)
    summary = _read_json(root / "output" / "summary.json")
    data.summary = summary if isinstance(summary, dict) else None
    evaluation = _read_json(root / "output" / "evaluation.json")
    data.evaluation = evaluation if isinstance(evaluation, dict) else None
    output = root / "output" / "output.manifest"
    ledger = newest_ledger(root)
    if output.is_file() and (data.summary is not None or ledger is None):
        data.items_from, items = output, _items_from_manifest(output, data.settings, data.classes)
    elif ledger is not None:
        data.items_from, items = ledger, _items_from_ledger(ledger, data.classes)
    else:
        items = iter(())
    for item in items:
        data.labels.add(item)
    if not data.classes:
        names = data.labels.names
        data.classes = [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]
    pending = _pending_batch(root) if data.summary is None else None
    if pending is not None:
        data.pending_from = pending
        for line in _iter_jsonl(pending):
            data.pending_count += 1
            if len(data.pending) < examples:
                data.pending.append(Item(source={k: v for k, v in line.items() if not k.startswith("labelloop-")}))
    return data


# ---------------------------------------------------------------- numbers


@dataclass
class Totals:
    items: int
    human: int
    auto: int
    unlabeled: int
    human_by_job: int  # human labels this job paid for (not those the input already had)
    price: float
    workers: int

    @property
    def cost(self) -> float:
        return round(self.human_by_job * self.price * self.workers, 2)


def totals(data: RunData, price_per_label: float | None = None) -> Totals:
    labels = data.labels
    if data.summary and isinstance(data.summary.get("HumanLabeledByThisJob"), int):
        by_job = data.summary["HumanLabeledByThisJob"]
    elif data.items_from is not None and data.items_from.name.startswith("ledger-"):
        by_job = labels.human_by_job  # ledgers know each label's iteration (0: came with the input)
    elif data.metrics:
        by_job = int(data.metrics[-1].get("HumanLabeled") or 0)
    else:
        by_job = labels.human_by_job
    if price_per_label is None:
        price = _number(data.settings.get("PricePerLabel"))
        price_per_label = DEFAULT_PRICE_PER_LABEL if price is None else price
    workers = data.settings.get("WorkersPerObject")
    workers = workers if isinstance(workers, int) and not isinstance(workers, bool) and workers > 0 else 1
    return Totals(labels.total, labels.human, labels.auto, labels.total - labels.human - labels.auto, by_job,
                  float(price_per_label), workers)


def class_counts(data: RunData) -> list[tuple[str, int, int]]:
    """(class name, human labels, auto-labels) for each class, in class-index order."""
    human = {cls: count for (cls, is_human), count in data.labels.per_class.items() if is_human}
    auto = {cls: count for (cls, is_human), count in data.labels.per_class.items() if not is_human}
    n = max(len(data.classes), max([*human, *auto], default=-1) + 1)
    names = data.classes + [str(i) for i in range(len(data.classes), n)]
    return [(names[i], human.get(i, 0), auto.get(i, 0)) for i in range(n)]


# ---------------------------------------------------------------- plots


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


HUMAN_COLOR, AUTO_COLOR, REST_COLOR = "#e07b39", "#2f6fde", "#9aa1ad"


def plot_labels(metrics: list[dict[str, Any]]) -> bytes | None:
    if not metrics:
        return None
    its = [m["Iteration"] for m in metrics]
    human_new = [m.get("HumanLabeledThisIteration") or 0 for m in metrics]
    auto_new = [m.get("AutoLabeledThisIteration") or 0 for m in metrics]
    fig = _figure(9.0, 3.3)
    left, right = fig.subplots(1, 2)
    width = 0.4
    left.bar([i - width / 2 for i in its], human_new, width, label="human", color=HUMAN_COLOR)
    left.bar([i + width / 2 for i in its], auto_new, width, label="auto", color=AUTO_COLOR)
    left.set_title("labels added per iteration")
    left.set_xlabel("iteration")
    left.set_xticks(its)
    left.set_xlim(min(its) - 0.9, max(its) + 0.9)
    left.legend(frameon=False, fontsize=8)
    right.plot(its, [m.get("HumanLabeled") or 0 for m in metrics], "o-", color=HUMAN_COLOR, label="human")
    right.plot(its, [m.get("AutoLabeled") or 0 for m in metrics], "o-", color=AUTO_COLOR, label="auto")
    right.plot(its, [m.get("Remaining") or 0 for m in metrics], "o--", color=REST_COLOR, label="unlabeled")
    right.set_title("labels so far")
    right.set_xlabel("iteration")
    right.set_xticks(its)
    right.set_ylim(bottom=0)
    right.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in (left, right):
        ax.yaxis.set_major_locator(_integer_ticks())
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_calibration(metrics: list[dict[str, Any]], target: float | None) -> bytes | None:
    if not metrics:
        return None
    its = [m["Iteration"] for m in metrics]
    nan = float("nan")
    series = {
        "threshold": [_number(m.get("Threshold")) for m in metrics],
        "validation accuracy": [_number(m.get("ValidationAccuracy")) for m in metrics],
        "accuracy lower bound": [_number(m.get("LowerBound")) for m in metrics],
    }
    fig = _figure(9.0, 3.3)
    ax = fig.subplots()
    styles = {"threshold": ("s-", "#7b4fd6"), "validation accuracy": ("o-", "#1f8a4c"), "accuracy lower bound": ("^:", "#1f8a4c")}
    values = []
    for name, ys in series.items():
        if any(y is not None for y in ys):
            marker, color = styles[name]
            ax.plot(its, [nan if y is None else y for y in ys], marker, color=color, label=name)
            values += [y for y in ys if y is not None]
    if target is not None:
        ax.axhline(target, color="#c23b3b", linestyle="--", linewidth=1, label=f"target accuracy {target:g}")
        values.append(target)
    low = min(values, default=0.0)
    ax.set_ylim(max(0.0, min(0.5, low - 0.05)), 1.01)
    ax.set_xticks(its)
    ax.set_xlabel("iteration")
    ax.set_title("auto-label threshold and validation accuracy")
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def plot_classes(counts: list[tuple[str, int, int]]) -> bytes | None:
    if not counts or not any(h or a for _, h, a in counts):
        return None
    names = [n for n, _, _ in counts]
    human = [h for _, h, _ in counts]
    auto = [a for _, _, a in counts]
    fig = _figure(max(4.5, min(11.0, 0.42 * len(names) + 2.2)), 3.3)
    ax = fig.subplots()
    xs = list(range(len(names)))
    ax.bar(xs, human, color=HUMAN_COLOR, label="human")
    ax.bar(xs, auto, bottom=human, color=AUTO_COLOR, label="auto")
    ax.set_xticks(xs, [n if len(n) <= 14 else n[:13] + "…" for n in names], rotation=0 if len(names) <= 12 else 45,
                  ha="center" if len(names) <= 12 else "right")
    ax.set_title("labels per class")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


# ---------------------------------------------------------------- examples


def _thumbnail(ref: str) -> str | None:
    """A data: URI of a small PNG of a local image, or None."""
    if ref.startswith("s3://"):
        return None
    try:
        from PIL import Image

        with Image.open(ref) as image:
            image = image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()
    except Exception:
        return None
    if max(image.size) < THUMB_PX:  # small images (8x8 digits): scale up, keep the pixels sharp
        factor = max(1, THUMB_PX // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    image.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _example_html(item: Item, caption: str) -> str:
    e = html.escape
    ref = item.source.get("source-ref")
    if isinstance(ref, str):
        uri = _thumbnail(ref)
        body = f'<img src="{uri}" alt="{e(ref)}" title="{e(ref)}">' if uri else f'<div class="missing" title="{e(ref)}">no preview</div>'
    else:
        text = str(item.source.get("source", ""))
        snippet = text if len(text) <= 180 else text[:180] + "…"
        body = f'<div class="snippet" title="{e(text[:1000])}">{e(snippet)}</div>'
    return f'<figure class="example">{body}<figcaption>{caption}</figcaption></figure>'


def example_grids(data: RunData) -> list[tuple[str, str, str]]:
    """(title, note, grid html) for auto-labels, human labels and the batch waiting for people."""
    e = html.escape
    grids = []
    labels = data.labels
    auto = labels.auto_examples()
    if auto:
        cells = [
            _example_html(i, f"<b>{e(i.class_name or '')}</b> {_pct(i.confidence)}" + _iter_note(i.iteration))
            for i in auto
        ]
        grids.append(("Auto-labeled", f"the {len(auto)} least confident of {labels.auto:,}, closest to the threshold first",
                      "".join(cells)))
    human = labels.human_examples()
    if human:
        cells = [
            _example_html(i, f"<b>{e(i.class_name or '')}</b>" + _iter_note(i.iteration) +
                          ("" if i.confidence is None or i.confidence >= 0.95 else f" · agreement {_pct(i.confidence)}"))
            for i in human
        ]
        grids.append(("Routed to humans", f"{len(human)} of {labels.human:,} human labels, newest first", "".join(cells)))
    if data.pending:
        cells = [_example_html(i, "waiting for people") for i in data.pending]
        grids.append(("Waiting for people", f"{len(data.pending)} of {data.pending_count:,} items in the current human batch",
                      "".join(cells)))
    return grids


# ---------------------------------------------------------------- HTML


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _money(value: float) -> str:
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


def _iter_note(iteration: int | None) -> str:
    if iteration is None:
        return ""
    return " · input" if iteration == 0 else f" · it. {iteration}"


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return _pct(_number(value))
    if kind == "thr":
        return f"{value:.4f}" if isinstance(value, (int, float)) else html.escape(str(value))
    if kind == "money":
        return f"${value:,.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


TABLE_COLUMNS = [
    ("it.", "Iteration", ""),
    ("human", "HumanLabeled", ""),
    ("+human", "HumanLabeledThisIteration", ""),
    ("auto", "AutoLabeled", ""),
    ("+auto", "AutoLabeledThisIteration", ""),
    ("unlabeled", "Remaining", ""),
    ("threshold", "Threshold", "thr"),
    ("val. acc.", "ValidationAccuracy", "pct"),
    ("acc. bound", "LowerBound", "pct"),
    ("support", "Support", ""),
    ("val. n", "ValidationCount", ""),
    ("train n", "TrainCount", ""),
    ("next", "NextHumanBatch", ""),
    ("cost", "HumanCost", "money"),
    ("stop", "StopReason", ""),
]


def _cell(m: dict[str, Any], key: str, kind: str) -> str:
    if key == "NextHumanBatch" and m.get("RetrainFirst"):
        return "none: retrain first"  # the gate held the batch back for a model trained on retired items
    return _fmt(m.get(key), kind)


def _table(metrics: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _, _ in TABLE_COLUMNS)
    rows = []
    for m in metrics:
        cells = "".join(f"<td>{_cell(m, key, kind)}</td>" for _, key, kind in TABLE_COLUMNS)
        rows.append(f"<tr>{cells}</tr>")
    return f'<table class="iterations"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _status(data: RunData) -> str:
    if data.summary:
        reason = data.summary.get("StopReason") or "done"
        error = data.summary.get("Error")
        if error:
            return f"stopped early ({reason})"
        return f"finished ({reason})"
    if data.pending_count:
        return f"in progress: {data.pending_count:,} items waiting for people"
    if data.metrics:
        return f"in progress (iteration {data.metrics[-1]['Iteration'] + 1})"
    return "just started"


CSS = """
:root { --fg:#1d2433; --muted:#6b7385; --line:#e1e4eb; --bg:#f6f7fa; --human:#e07b39; --auto:#2f6fde; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:1.5rem 1.2rem 3rem; }
h1 { font-size:1.5rem; margin:0 0 .2rem; } h2 { font-size:1.1rem; margin:2rem 0 .6rem; } h3 { font-size:.95rem; margin:1.2rem 0 .5rem; }
.sub { color:var(--muted); margin:0 0 1.2rem; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(150px,1fr)); gap:.7rem; }
.card { background:#fff; border:1px solid var(--line); border-radius:9px; padding:.7rem .9rem; }
.card .k { color:var(--muted); font-size:.8rem; } .card .v { font-size:1.35rem; font-weight:600; }
.card .n { color:var(--muted); font-size:.8rem; }
.panel { background:#fff; border:1px solid var(--line); border-radius:9px; padding:1rem; overflow-x:auto; }
.panel img.plot { max-width:100%; height:auto; display:block; margin:0 auto; }
.notice { background:#fff8e6; border:1px solid #f1dca6; border-radius:9px; padding:1rem 1.2rem; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; font-size:.85rem; }
.split { display:flex; gap:1.5rem; align-items:flex-start; flex-wrap:wrap; } .split > img.plot { flex:0 1 auto; max-width:100%; min-width:0; margin:0; }
table.classes { width:auto; flex:0 0 auto; }
th, td { padding:.3rem .45rem; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { font-size:.8rem; color:var(--muted); font-weight:600; }
td:last-child, th:last-child { text-align:left; }
table.classes td:first-child, table.classes th:first-child { text-align:left; }
table.classes td:last-child, table.classes th:last-child { text-align:right; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(112px,1fr)); gap:.6rem; }
figure.example { margin:0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:.4rem; text-align:center; }
figure.example img { width:96px; height:96px; object-fit:contain; image-rendering:pixelated; background:#000; border-radius:4px; }
figure.example .snippet { text-align:left; font-size:.75rem; height:96px; overflow:hidden; color:#333; }
figure.example .missing { height:96px; display:flex; align-items:center; justify-content:center; color:var(--muted); font-size:.8rem; }
figcaption { font-size:.78rem; margin-top:.25rem; color:var(--muted); } figcaption b { color:var(--fg); font-size:.9rem; }
.note { color:var(--muted); font-weight:normal; font-size:.85rem; }
.swatch { display:inline-block; width:.8em; height:.8em; border-radius:2px; vertical-align:-.05em; }
footer { margin-top:2.5rem; color:var(--muted); font-size:.8rem; }
"""


def render_html(data: RunData, plots: dict[str, bytes], price_per_label: float | None = None) -> str:
    e = html.escape
    job = data.settings.get("JobName") or data.root.name
    parts = [f"<h1>labelloop report · {e(str(job))}</h1>",
             f'<p class="sub">{e(str(data.root))} · {e(_status(data))}</p>']
    if data.empty:
        parts.append(
            '<div class="notice"><b>Nothing to report yet.</b> This folder holds no labeling run, or the run has only '
            "just started: no settings, no iteration and no labels were found. Run <code>labelloop report</code> "
            "again once the first iteration has finished.</div>"
        )
        return _page(str(job), "".join(parts))

    t = totals(data, price_per_label)
    pct = lambda n: _pct(n / t.items) if t.items else "–"  # noqa: E731
    cards = [
        ("items", f"{t.items:,}", data.settings.get("TaskType") or ""),
        ("human labels", f"{t.human:,}", pct(t.human)),
        ("auto-labels", f"{t.auto:,}", pct(t.auto)),
        ("unlabeled", f"{t.unlabeled:,}", pct(t.unlabeled)),
        ("cost so far", f"${t.cost:,.2f}",
         f"{t.human_by_job:,} labels × {_money(t.price)} × {t.workers} worker{'s' if t.workers != 1 else ''}"),
        ("iterations", str(len(data.metrics)), f"target {_pct(_number(data.settings.get('TargetAccuracy')))}"),
    ]
    if data.evaluation and data.evaluation.get("auto_accuracy") is not None:
        cards.append(("auto-label accuracy", _pct(data.evaluation["auto_accuracy"]), "against the true labels"))
    parts.append('<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{e(k)}</div><div class="v">{v}</div><div class="n">{e(str(n))}</div></div>'
        for k, v, n in cards) + "</div>")
    if data.summary and data.summary.get("Error"):
        err = data.summary["Error"]
        parts.append(f'<h2>Stopped early</h2><div class="notice">{e(str(err.get("Error") if isinstance(err, dict) else err))}: '
                     f'{e(str(err.get("Cause") if isinstance(err, dict) else ""))[:2000]}</div>')

    parts.append("<h2>Iterations</h2>")
    if data.metrics:
        parts.append(f'<div class="panel">{_table(data.metrics)}</div>')
        for name, title in (("labels.png", "human labels and auto-labels per iteration"),
                            ("calibration.png", "threshold and validation accuracy per iteration")):
            if name in plots:
                parts.append(f'<h2>{e(title[0].upper() + title[1:])}</h2><div class="panel">'
                             f'<img class="plot" alt="{e(title)}" src="data:image/png;base64,{base64.b64encode(plots[name]).decode()}"></div>')
    else:
        parts.append('<div class="notice">No iteration has finished yet: the first model is still being trained '
                     "(or the first human batch is being labeled). The table and plots appear after iteration 1.</div>")

    counts = class_counts(data)
    parts.append(f'<h2>Labels per class <span class="note">from {e(str(data.items_from.relative_to(data.root)) if data.items_from else "–")}'
                 "</span></h2>")
    if any(h or a for _, h, a in counts):
        rows = "".join(f"<tr><td>{e(n)}</td><td>{h:,}</td><td>{a:,}</td><td>{h + a:,}</td></tr>" for n, h, a in counts)
        table = (f'<table class="classes"><thead><tr><th>class</th><th><span class="swatch" style="background:{HUMAN_COLOR}"></span> human</th>'
                 f'<th><span class="swatch" style="background:{AUTO_COLOR}"></span> auto</th><th>total</th></tr></thead><tbody>{rows}</tbody></table>')
        img = ""
        if "classes.png" in plots:
            img = f'<img class="plot" alt="labels per class" src="data:image/png;base64,{base64.b64encode(plots["classes.png"]).decode()}">'
        parts.append(f'<div class="panel split">{img}{table}</div>')
    else:
        parts.append('<div class="notice">No labels yet.</div>')

    grids = example_grids(data)
    if grids:
        parts.append("<h2>Examples</h2>")
        for title, note, cells in grids:
            parts.append(f'<h3>{e(title)} <span class="note">{e(note)}</span></h3><div class="grid">{cells}</div>')
    return _page(str(job), "".join(parts))


def _page(title: str, body: str) -> str:
    made = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>labelloop report · {html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}<footer>written by labelloop report, {made}</footer></main></body></html>\n"
    )


# ---------------------------------------------------------------- entry points


def write_report(output_dir: Path, price_per_label: float | None = None, examples: int = 24) -> Path:
    """Write OUTPUT_DIR/report/report.html (self-contained) and its plots as PNGs; returns the HTML path.

    price_per_label: dollars per label per worker; default: the run's PricePerLabel setting, else $0.08.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    data = load_run(root, examples)
    target = _number(data.settings.get("TargetAccuracy"))
    plots: dict[str, bytes] = {}
    if not data.empty:
        made = {
            "labels.png": plot_labels(data.metrics),
            "calibration.png": plot_calibration(data.metrics, target),
            "classes.png": plot_classes(class_counts(data)),
        }
        plots = {name: png for name, png in made.items() if png}
    out = root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        if name in plots:
            (out / name).write_bytes(plots[name])
        else:
            (out / name).unlink(missing_ok=True)  # a plot of an earlier report no longer applies
    path = out / REPORT_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(data, plots, price_per_label), encoding="utf-8")
    tmp.replace(path)
    return path


def cmd_report(args: argparse.Namespace) -> int:
    import sys

    if args.price_per_label is not None and (not math.isfinite(args.price_per_label) or args.price_per_label < 0):
        print("error: --price-per-label must be a non-negative number", file=sys.stderr)
        return 2
    try:
        path = write_report(Path(args.output_dir), price_per_label=args.price_per_label, examples=args.examples)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def add_report_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `labelloop report OUTPUT_DIR` to the CLI's subparsers."""
    report = subparsers.add_parser(
        "report",
        help="write an HTML report of a labeling run (finished or still going)",
        description="Write OUTPUT_DIR/report/report.html: a self-contained page with the per-iteration table, "
        "plots of labels, threshold and validation accuracy, the class distribution, the cost so far and "
        "examples of auto-labeled and human-labeled items. Works on a run that is still going.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    report.add_argument("output_dir", metavar="OUTPUT_DIR", help="the run's --output folder")
    report.add_argument("--price-per-label", type=float, default=None,
                        help="dollars per label per worker (default: the run's --price-per-label, else 0.08)")
    report.add_argument("--examples", type=int, default=24, help="examples shown per group")
    report.set_defaults(func=cmd_report)
    return report
