"""The per-iteration metrics as a table: one list of columns for every place that shows them.

An iteration's metrics are the dict GateAndRoute writes to `metrics.json` (and leaves in the
state as `LastMetrics`). `labelloop report` shows every column as HTML; the lines `labelloop run`
prints as it goes and `labelloop status` prints from an execution's history show the columns
marked `terminal`. Each value is formatted here, once, so all three read the same.

The quality columns speak the task type's measure: accuracy as a percentage, a mean IoU (boxes)
as a number, under its own headers (`columns`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from labelloop import tasks

MISSING = "–"
RETRAIN_FIRST = "none: retrain first"  # the gate held the batch back for a model trained on retired items


@dataclass(frozen=True)
class Column:
    key: str  # the metrics field
    header: str
    kind: str = "count"  # count | threshold | pct | iou | money | text
    terminal: bool = False  # also on the terminal lines of `labelloop run` and `labelloop status`
    width: int = 0  # least width on a terminal line (at least the header's)

    @property
    def text_width(self) -> int:
        return max(self.width, len(self.header))


COLUMNS: tuple[Column, ...] = (
    Column("Iteration", "it.", terminal=True, width=3),
    Column("HumanLabeled", "human", terminal=True, width=7),
    Column("HumanLabeledThisIteration", "+human"),
    Column("HumanFailedThisIteration", "failed"),  # sent to people, came back unlabeled
    Column("AutoLabeled", "auto", terminal=True, width=7),
    Column("AutoLabeledThisIteration", "+auto"),
    Column("Remaining", "unlabeled", terminal=True),
    Column("Threshold", "threshold", "threshold", terminal=True),
    Column("ValidationAccuracy", "val. acc.", "pct", terminal=True),
    Column("LowerBound", "acc. bound", "pct"),
    Column("Support", "support"),
    Column("ValidationCount", "val. n", terminal=True),
    Column("TrainCount", "train n"),
    Column("HumanCost", "cost", "money", terminal=True, width=9),
    Column("NextHumanBatch", "next", terminal=True, width=5),
    Column("StopReason", "stop", "text"),
)
TERMINAL_COLUMNS: tuple[Column, ...] = tuple(c for c in COLUMNS if c.terminal)
# A mean IoU's columns, in the accuracy columns' places.
_MEAN_IOU = {"ValidationAccuracy": Column("ValidationAccuracy", "val. IoU", "iou", terminal=True),
             "LowerBound": Column("LowerBound", "IoU bound", "iou")}
_ADJUSTED = Column("HumanAdjusted", "adjusted")  # of the human labels, those shown the model's guess
# What the human labels cost in clicks, where the answers say (simulated click annotators, the page's click tool).
_CLICKS = (Column("HumanClicks", "clicks", terminal=True, width=7), Column("HumanClicksThisIteration", "+clicks"))


def bounded_mean(settings: dict[str, Any] | None) -> bool:
    """Whether a run's auto-labels are certified on a mean quality (an IoU) rather than an accuracy."""
    task_type = (settings or {}).get("TaskType")
    return task_type in tasks.names() and tasks.get(task_type).bounded_mean


def quality_word(settings: dict[str, Any] | None) -> str:
    """What a run's quality is called: 'accuracy', or 'mean IoU' for boxes."""
    return "mean IoU" if bounded_mean(settings) else "accuracy"


def columns(settings: dict[str, Any] | None = None, terminal: bool = False) -> tuple[Column, ...]:
    """The columns for a run of these settings (its execution input): a box run's bound, threshold
    and validation columns read as mean IoUs, and it counts its adjusted labels, as does any run
    that prices them apart; a run whose people click objects (masks) counts their clicks."""
    boxes = bounded_mean(settings)
    chosen = [_MEAN_IOU.get(c.key, c) if boxes else c for c in COLUMNS]
    if boxes or (settings or {}).get("PricePerAdjustedLabel") is not None:
        chosen.insert(3, _ADJUSTED)
    task_type = (settings or {}).get("TaskType")
    if task_type in tasks.names() and tasks.get(task_type).proposes_objects:
        chosen[3:3] = _CLICKS
    return tuple(c for c in chosen if c.terminal or not terminal)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def cell(metrics: dict[str, Any], column: Column) -> str:
    """The column's value for one iteration, as plain text (escaping is the page's business)."""
    if column.key == "NextHumanBatch" and metrics.get("RetrainFirst"):
        return RETRAIN_FIRST
    value = metrics.get(column.key)
    if value is None:
        return MISSING
    number = _number(value)
    if column.kind == "pct":
        return MISSING if number is None else f"{100 * number:.1f} %"
    if column.kind == "iou":
        return MISSING if number is None else f"{number:.3f}"
    if column.kind == "threshold" and number is not None:
        return f"{number:.4f}"
    if column.kind == "money" and number is not None:
        return f"${number:,.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def text_header(columns: Iterable[Column] = TERMINAL_COLUMNS) -> str:
    return " ".join(f"{c.header:>{c.text_width}}" for c in columns)


def text_row(metrics: dict[str, Any], columns: Iterable[Column] = TERMINAL_COLUMNS) -> str:
    """One terminal line, right-aligned under `text_header`."""
    return " ".join(f"{cell(metrics, c):>{c.text_width}}" for c in columns)
