"""The report page: what the template `templates/report.html` is given, and the page itself."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from labelloop import metrics_table
from labelloop.promise import why_nothing_auto_labeled
from labelloop.report import accuracy
from labelloop.report.curves import cost_curve
from labelloop.report.examples import example_groups
from labelloop.report.jinja import environment, money, pct
from labelloop.report.numbers import Totals, class_counts, totals
from labelloop.report.plots import AUTO_COLOR, HUMAN_COLOR
from labelloop.report.run import RunData, number
from labelloop.report.timing import KINDS, duration, time_per_state

ITERATION_PLOTS = (
    ("labels.png", "human labels and auto-labels per iteration"),
    ("calibration.png", "threshold and validation accuracy per iteration"),
)
CAUSE_CHARS = 2000


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def status(data: RunData) -> str:
    """Finished, stopped early, or how far a run still going has come."""
    if data.summary:
        reason = data.summary.get("StopReason") or "done"
        if data.summary.get("Error"):
            return f"stopped early ({reason})"
        return f"finished ({reason})"
    if data.pending_count:
        return f"in progress: {data.pending_count:,} items waiting for people"
    if data.metrics:
        return f"in progress (iteration {data.metrics[-1]['Iteration'] + 1})"
    return "just started"


def _cards(data: RunData, t: Totals) -> list[tuple[str, str, str]]:
    share = lambda n: pct(n / t.items) if t.items else "–"  # noqa: E731
    workers = f"{t.workers} worker{'s' if t.workers != 1 else ''}"
    cards = [
        ("items", f"{t.items:,}", str(data.settings.get("TaskType") or "")),
        ("human labels", f"{t.human:,}", share(t.human)),
        ("auto-labels", f"{t.auto:,}", share(t.auto)),
        ("unlabeled", f"{t.unlabeled:,}", share(t.unlabeled)),
        ("cost so far", f"${t.cost:,.2f}", f"{t.human_by_job:,} labels × {money(t.price)} × {workers}"),
        ("iterations", str(len(data.metrics)), f"target {pct(number(data.settings.get('TargetAccuracy')))}"),
    ]
    if accuracy.auto_accuracy(data) is not None:
        below = "BELOW TARGET · " if accuracy.below_target(data) else ""
        cards.append(("auto-label accuracy", pct(accuracy.auto_accuracy(data)), f"{below}against the true labels"))
    failed = _failed_answers(data)
    if failed:
        cards.append(("failed human answers", f"{failed:,}", "sent to people, came back unlabeled"))
    return cards


def _failed_answers(data: RunData) -> int:
    if data.summary and isinstance(data.summary.get("HumanFailed"), int):
        return data.summary["HumanFailed"]
    return max([m.get("HumanFailed") or 0 for m in data.metrics], default=0)


def _timing(data: RunData) -> dict[str, Any] | None:
    timing = time_per_state(data.history)
    if timing is None:
        return None
    share = lambda s: pct(s / timing.seconds) if timing.seconds else "–"  # noqa: E731
    return {
        "kinds": KINDS,
        "total": [(kind, duration(timing.total[kind]), share(timing.total[kind])) for kind in KINDS],
        "iterations": [(it, [duration(s[k]) for k in KINDS], duration(sum(s.values()))) for it, s in timing.per_iteration],
        # The states that took a visible share of the time; choices and passes take none.
        "states": [(name, runs, duration(seconds)) for name, (runs, seconds)
                   in sorted(timing.per_state.items(), key=lambda kv: -kv[1][1]) if seconds >= 0.05],
        "seconds": duration(timing.seconds),
    }


def _error(data: RunData) -> dict[str, str] | None:
    error = (data.summary or {}).get("Error")
    if not error:
        return None
    if isinstance(error, dict):
        return {"name": str(error.get("Error")), "cause": str(error.get("Cause"))[:CAUSE_CHARS]}
    return {"name": str(error), "cause": ""}


def _context(data: RunData, plots: dict[str, bytes], price_per_label: float | None) -> dict[str, Any]:
    counts = class_counts(data)
    t = totals(data, price_per_label)
    return {
        "cards": _cards(data, t),
        "below_target": {"accuracy": pct(accuracy.auto_accuracy(data)), "target": pct(accuracy.target(data))}
        if accuracy.below_target(data) else None,
        "why_nothing": why_nothing_auto_labeled(data.settings, data.metrics, (data.summary or {}).get("Total") or t.items)
        if data.summary and not data.summary.get("AutoLabeled") else [],
        "per_class": accuracy.per_class(data),
        "confusion": accuracy.confusion(data),
        "cost_curve": cost_curve(data, t.price, t.workers),
        "timing": _timing(data),
        "error": _error(data),
        "table": {
            "headers": [c.header for c in metrics_table.COLUMNS],
            "rows": [[metrics_table.cell(m, c) for c in metrics_table.COLUMNS] for m in data.metrics],
            "final": [bool(m.get("FinalHumanBatch")) for m in data.metrics],
        },
        "iteration_plots": [{"title": title, "uri": _data_uri(plots[name])} for name, title in ITERATION_PLOTS if name in plots],
        "items_from": str(data.items_from.relative_to(data.root)) if data.items_from else "–",
        "classes": {
            "any": any(h or a for _, h, a in counts),
            "rows": counts,
            "plot": _data_uri(plots["classes.png"]) if "classes.png" in plots else None,
        },
        "colors": {"human": HUMAN_COLOR, "auto": AUTO_COLOR},
        "groups": example_groups(data),
    }


def render_html(data: RunData, plots: dict[str, bytes], price_per_label: float | None = None) -> str:
    """The whole page, every image embedded: it opens from anywhere, alone."""
    context: dict[str, Any] = {
        "job": str(data.settings.get("JobName") or data.root.name),
        "root": str(data.root),
        "status": status(data),
        "empty": data.empty,
        "made": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    if not data.empty:
        context.update(_context(data, plots, price_per_label))
    return environment().get_template("report.html").render(context)
