"""Reading a run's output folder (see `labelloop.layout`) into what the report shows.

Every file is optional: a run still going has no output yet, one just started has no iteration,
and a line a run is still writing may be torn. What is missing is left empty, never an error.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from labelloop import layout


@dataclass
class Item:
    """One item as the report needs it, whichever file it came from."""

    source: dict[str, Any]
    class_id: int | None = None
    class_name: str | None = None
    confidence: float | None = None
    human: bool = False
    iteration: int | None = None  # 0: labeled in the input manifest; None: not known
    tail: bool = False  # an auto-label of the worst-case tail: below the threshold, paid for by the bound's slack
    value: Any = None  # a label that is not one class (boxes, a mask): the value itself, drawn by the example view

    @property
    def labeled(self) -> bool:
        return self.class_id is not None or self.value is not None


class Labels:
    """Counts of the labels, streamed (a run may have millions of items), and a few examples.

    Keeps the `n` least confident auto-labels above a threshold, the `n` least confident of the
    worst-case tail and the `n` newest human labels (input order within an iteration), as a full
    sort would order them.
    """

    def __init__(self, n: int):
        self.n = max(0, n)
        self.total = self.human = self.auto = self.human_by_job = self.tail = 0
        self.per_class: dict[tuple[int, bool], int] = {}  # (class, human) -> count
        self.names: dict[int, str] = {}
        self._auto: list[tuple[float, int, Item]] = []  # max-heap on (confidence, seq) via negation
        self._human: list[tuple[int, int, Item]] = []  # min-heap on (iteration, -seq): the worst kept on top
        self._tail: list[tuple[float, int, Item]] = []  # as _auto, for the worst-case tail

    def add(self, item: Item) -> None:
        seq = self.total
        self.total += 1
        if not item.labeled:
            return
        if item.class_id is not None:  # one class a label; boxes have no single class to count
            key = (item.class_id, item.human)
            self.per_class[key] = self.per_class.get(key, 0) + 1
        if item.class_name is not None and item.class_id is not None:
            self.names.setdefault(item.class_id, item.class_name)
        if item.human:
            self.human += 1
            self.human_by_job += item.iteration is not None and item.iteration >= 1
            self._keep(self._human, (item.iteration or 0, -seq, item))
        else:
            self.auto += 1
            self.tail += item.tail
            self._keep(self._tail if item.tail else self._auto, (-(item.confidence or 0.0), -seq, item))

    def _keep(self, heap: list, entry: tuple) -> None:
        if len(heap) < self.n:
            heapq.heappush(heap, entry)
        elif self.n and entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)

    def auto_examples(self) -> list[Item]:
        return [e[2] for e in sorted(self._auto, key=lambda e: (-e[0], -e[1]))]

    def tail_examples(self) -> list[Item]:
        return [e[2] for e in sorted(self._tail, key=lambda e: (-e[0], -e[1]))]

    def human_examples(self) -> list[Item]:
        return [e[2] for e in sorted(self._human, key=lambda e: (-e[0], -e[1]))]


@dataclass
class RunData:
    root: Path
    settings: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    labels: Labels = field(default_factory=lambda: Labels(24))
    items_from: Path | None = None
    pending: list[Item] = field(default_factory=list)  # the human batch waiting for people (first examples)
    pending_count: int = 0
    pending_from: Path | None = None
    summary: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None  # the local engine's execution history, when it wrote one

    @property
    def empty(self) -> bool:
        return not (self.settings or self.metrics or self.labels.total)

    @property
    def task_type(self) -> str | None:
        task = self.settings.get("TaskType")
        return task if isinstance(task, str) else None

    def path(self, uri_of, *args) -> Path:
        """A file of this run: `uri_of` is one of `labelloop.layout`'s functions."""
        return Path(uri_of(str(self.root), *args))


def number(value: Any) -> float | None:
    """A finite number as float; None for anything else (missing, text, NaN, a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


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
    for path in Path(layout.iterations_root(str(root))).glob("*"):
        number_ = layout.iteration_of_dir(path.name)
        if number_ is not None and path.is_dir():
            found.append((number_, path))
    return sorted(found)


def newest_ledger(root: Path) -> Path | None:
    """The ledger the loop wrote last: highest iteration, then input < human < auto."""
    folder = Path(layout.iterations_root(str(root)))
    found = layout.ledgers([str(p) for p in folder.glob("*/ledger-*.jsonl") if p.is_file()])
    return Path(found[-1][2]) if found else None


def _label_attribute(settings: dict[str, Any], line: dict[str, Any]) -> str | None:
    if settings.get("LabelAttributeName"):
        return str(settings["LabelAttributeName"])
    for key, value in line.items():
        if key.endswith("-metadata") and isinstance(value, dict) and str(value.get("type", "")).startswith("groundtruth/"):
            return key[: -len("-metadata")]
    return None


def _label_iteration(job_name: Any) -> int | None:
    """The iteration a label's job-name says it came from (a labeling or an auto-labeling job)."""
    parsed = layout.parse_job_name(str(job_name or ""))
    return parsed[0] if parsed and parsed[1] in ("label", "auto") else None


def _class_name(classes: list[str], cls: int) -> str:
    return classes[cls] if 0 <= cls < len(classes) else str(cls)


def _items_from_manifest(path: Path, settings: dict[str, Any], classes: list[str]) -> Iterator[Item]:
    attribute = None
    for line in _iter_jsonl(path):
        attribute = attribute or _label_attribute(settings, line)
        meta = line.get(f"{attribute}-metadata") if attribute else None
        source = {k: v for k, v in line.items() if not attribute or k not in (attribute, f"{attribute}-metadata")}
        value = line.get(attribute) if attribute else None
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(meta, dict):
            name = meta.get("class-name")
            yield Item(
                source=source,
                class_id=value,
                class_name=str(name) if name is not None else _class_name(classes, value),
                confidence=number(meta.get("confidence")),
                human=meta.get("human-annotated") == "yes",
                iteration=_label_iteration(meta.get("job-name")),
                tail=(meta.get("labelloop-calibration") or {}).get("basis") == "worst-case tail",
            )
        elif isinstance(value, (dict, str)) and isinstance(meta, dict):  # boxes; a mask file's URI
            yield Item(source=source, value=value, confidence=number(meta.get("confidence")),
                       human=meta.get("human-annotated") == "yes", iteration=_label_iteration(meta.get("job-name")),
                       tail=(meta.get("labelloop-calibration") or {}).get("basis") == "worst-case tail")
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
                class_name=_class_name(classes, cls),
                confidence=number(label.get("confidence")),
                human=bool(label.get("human")),
                iteration=label.get("iteration") if isinstance(label.get("iteration"), int) else None,
                tail=not label.get("human") and label.get("threshold") is None and label.get("lower-bound") is not None,
            )
        elif isinstance(label, dict) and isinstance(label.get("class"), (dict, str)):  # boxes; a mask
            yield Item(source=source, value=label["class"], confidence=number(label.get("confidence")),
                       human=bool(label.get("human")),
                       iteration=label.get("iteration") if isinstance(label.get("iteration"), int) else None,
                       tail=not label.get("human") and label.get("threshold") is None and label.get("lower-bound") is not None)
        else:
            yield Item(source=source)


def _pending_batch(root: Path) -> Path | None:
    """The newest human batch whose answers are not merged yet (a run waiting for people)."""
    dirs = _iteration_dirs(root)
    if not dirs:
        return None
    iteration = dirs[-1][0]
    batch = Path(layout.human_batch_uri(str(root), iteration))
    if batch.is_file() and not Path(layout.ledger_uri(str(root), iteration, "human")).exists():
        return batch
    return None


def _class_names(data: RunData) -> list[str]:
    config = _read_json(data.path(layout.label_config_uri))
    if isinstance(config, dict) and isinstance(config.get("labels"), list):
        return [str(entry.get("label")) for entry in config["labels"] if isinstance(entry, dict)]
    if data.settings.get("LabelCategories"):
        return [str(c) for c in data.settings["LabelCategories"]]
    return []


def _json_object(path: Path) -> dict[str, Any] | None:
    value = _read_json(path)
    return value if isinstance(value, dict) else None


def load_run(root: Path, examples: int = 24) -> RunData:
    root = Path(root)
    data = RunData(root=root, labels=Labels(examples))
    data.settings = _json_object(data.path(layout.settings_uri)) or {}
    data.classes = _class_names(data)
    for iteration, _ in _iteration_dirs(root):
        metrics = _json_object(data.path(layout.metrics_uri, iteration))
        if metrics is not None:
            metrics.setdefault("Iteration", iteration)
            data.metrics.append(metrics)
    data.summary = _json_object(data.path(layout.summary_uri))
    data.evaluation = _json_object(data.path(layout.evaluation_uri))
    history = _read_json(Path(layout.local_work_dir(str(root))) / "execution-history.json")
    data.history = history if isinstance(history, list) else None
    output = data.path(layout.output_manifest_uri)
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
