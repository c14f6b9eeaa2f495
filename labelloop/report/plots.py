"""The report's plots (matplotlib, drawn off-screen to PNG bytes): labels per iteration, the
threshold against validation accuracy (or mean IoU), labels per class."""

from __future__ import annotations

import io
from typing import Any

from labelloop.metrics_table import quality_word
from labelloop.report.numbers import class_counts
from labelloop.report.run import RunData
from labelloop.report.run import number as _number

HUMAN_COLOR, AUTO_COLOR, REST_COLOR = "#e07b39", "#2f6fde", "#9aa1ad"


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


def plot_calibration(metrics: list[dict[str, Any]], target: float | None, quality: str = "accuracy") -> bytes | None:
    """The threshold, the validation quality and its lower bound per iteration; `quality` names
    it ("accuracy", or "mean IoU" for boxes)."""
    if not metrics:
        return None
    its = [m["Iteration"] for m in metrics]
    nan = float("nan")
    series = {
        "threshold": [_number(m.get("Threshold")) for m in metrics],
        f"validation {quality}": [_number(m.get("ValidationAccuracy")) for m in metrics],
        f"{quality} lower bound": [_number(m.get("LowerBound")) for m in metrics],
    }
    fig = _figure(9.0, 3.3)
    ax = fig.subplots()
    styles = {"threshold": ("s-", "#7b4fd6"), f"validation {quality}": ("o-", "#1f8a4c"),
              f"{quality} lower bound": ("^:", "#1f8a4c")}
    values = []
    for name, ys in series.items():
        if any(y is not None for y in ys):
            marker, color = styles[name]
            ax.plot(its, [nan if y is None else y for y in ys], marker, color=color, label=name)
            values += [y for y in ys if y is not None]
    if target is not None:
        ax.axhline(target, color="#c23b3b", linestyle="--", linewidth=1, label=f"target {quality} {target:g}")
        values.append(target)
    low = min(values, default=0.0)
    ax.set_ylim(max(0.0, min(0.5, low - 0.05)), 1.01)
    ax.set_xticks(its)
    ax.set_xlabel("iteration")
    ax.set_title(f"auto-label threshold and validation {quality}")
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


PLOTS = ("labels.png", "calibration.png", "classes.png")


def run_plots(data: RunData) -> dict[str, bytes]:
    """The plots that apply to the run, by file name; none for an empty folder."""
    if data.empty:
        return {}
    made = {
        "labels.png": plot_labels(data.metrics),
        "calibration.png": plot_calibration(data.metrics, _number(data.settings.get("TargetAccuracy")),
                                            quality_word(data.settings)),
        "classes.png": plot_classes(class_counts(data)),
    }
    return {name: png for name, png in made.items() if png}
