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
from labelloop.report.run import RunData
from labelloop.report.timing import KINDS, duration, time_per_state

ITERATION_PLOTS = (
    ("labels.png", "human labels and auto-labels per iteration"),
    ("calibration.png", "threshold and validation {quality} per iteration"),
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


def quality(data: RunData, value: float | None) -> str:
    """A quality as the run's task type reads it: accuracy as a percentage, a mean IoU as a number."""
    if not metrics_table.bounded_mean(data.settings):
        return pct(value)
    return "–" if value is None else f"{value:.3f}"


def _cost_note(t: Totals) -> str:
    workers = f"{t.workers} worker{'s' if t.workers != 1 else ''}"
    if not t.priced_apart:
        return f"{t.human_by_job:,} labels × {money(t.price)} × {workers}"
    return (f"({t.human_by_job - t.adjusted:,} drawn × {money(t.price)} + {t.adjusted:,} adjusted × "
            f"{money(t.adjusted_price or 0.0)}) × {workers}")


def _cards(data: RunData, t: Totals) -> list[tuple[str, str, str]]:
    share = lambda n: pct(n / t.items) if t.items else "–"  # noqa: E731
    goal, word = accuracy.target(data), metrics_table.quality_word(data.settings)
    target = f"target {word} ≥ {goal:g}" if metrics_table.bounded_mean(data.settings) and goal is not None else f"target {pct(goal)}"
    cards = [
        ("items", f"{t.items:,}", str(data.settings.get("TaskType") or "")),
        ("human labels", f"{t.human:,}", share(t.human)),
        ("auto-labels", f"{t.auto:,}", share(t.auto)),
        ("unlabeled", f"{t.unlabeled:,}", share(t.unlabeled)),
        ("cost so far", f"${t.cost:,.2f}", _cost_note(t)),
        ("iterations", str(len(data.metrics)), target),
    ]
    if accuracy.auto_accuracy(data) is not None:
        below = "BELOW TARGET · " if accuracy.below_target(data) else ""
        cards.append((f"auto-label {word}", quality(data, accuracy.auto_accuracy(data)), f"{below}against the true labels"))
    clicks = _clicks(data)
    if clicks is not None:
        each = f"{clicks / t.human_by_job:.1f} a human label" if t.human_by_job else ""
        cards.insert(5, ("clicks", f"{clicks:,}", each))
    failed = _failed_answers(data)
    if failed:
        cards.append(("failed human answers", f"{failed:,}", "sent to people, came back unlabeled"))
    return cards


def _clicks(data: RunData) -> int | None:
    """The clicks people spent on this job's human labels, where their answers said; else None."""
    if data.summary and isinstance(data.summary.get("HumanClicks"), int):
        return data.summary["HumanClicks"]
    known = [m["HumanClicks"] for m in data.metrics if isinstance(m.get("HumanClicks"), int)]
    return known[-1] if known else None


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


def _context(data: RunData, plots: dict[str, bytes], price_per_label: float | None,
             price_per_adjusted_label: float | None) -> dict[str, Any]:
    counts = class_counts(data)
    t = totals(data, price_per_label, price_per_adjusted_label)
    columns = metrics_table.columns(data.settings)
    return {
        "cards": _cards(data, t),
        "quality": {"word": metrics_table.quality_word(data.settings), "boxes": metrics_table.bounded_mean(data.settings),
                    "show": lambda value: quality(data, value)},
        "below_target": {"accuracy": quality(data, accuracy.auto_accuracy(data)), "target": quality(data, accuracy.target(data))}
        if accuracy.below_target(data) else None,
        "why_nothing": why_nothing_auto_labeled(data.settings, data.metrics, (data.summary or {}).get("Total") or t.items)
        if data.summary and not data.summary.get("AutoLabeled") else [],
        "per_class": accuracy.per_class(data),
        "confusion": accuracy.confusion(data),
        "cost_curve": cost_curve(data, t.price, t.workers),
        "timing": _timing(data),
        "error": _error(data),
        "table": {
            "headers": [c.header for c in columns],
            "rows": [[metrics_table.cell(m, c) for c in columns] for m in data.metrics],
            "final": [bool(m.get("FinalHumanBatch")) for m in data.metrics],
        },
        "iteration_plots": [{"title": title.format(quality=metrics_table.quality_word(data.settings)),
                             "uri": _data_uri(plots[name])} for name, title in ITERATION_PLOTS if name in plots],
        "items_from": str(data.items_from.relative_to(data.root)) if data.items_from else "–",
        "classes": {
            "any": any(h or a for _, h, a in counts),
            "rows": counts,
            "plot": _data_uri(plots["classes.png"]) if "classes.png" in plots else None,
        },
        "colors": {"human": HUMAN_COLOR, "auto": AUTO_COLOR},
        "groups": example_groups(data),
    }


def render_html(data: RunData, plots: dict[str, bytes], price_per_label: float | None = None,
                price_per_adjusted_label: float | None = None) -> str:
    """The whole page, every image embedded: it opens from anywhere, alone."""
    context: dict[str, Any] = {
        "job": str(data.settings.get("JobName") or data.root.name),
        "root": str(data.root),
        "status": status(data),
        "empty": data.empty,
        "made": datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    if not data.empty:
        context.update(_context(data, plots, price_per_label, price_per_adjusted_label))
    return environment().get_template("report.html").render(context)
