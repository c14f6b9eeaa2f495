"""Which page widget shows an item of a task type.

A widget is a static script, `static/widgets/<name>.js` (with its `<name>.css`), that draws one
item and collects its answer; the page loads the one the item view names. The task type names
its widget (`labelloop.tasks`); this module checks the page has it.
"""

from __future__ import annotations

from pathlib import Path

from labelloop import tasks
from labelloop.local.workforce import WorkforceError

WIDGETS_DIR = Path(__file__).resolve().parent / "static" / "widgets"


def widget_for(task_type: str) -> str:
    """The widget name for `task_type` (e.g. "classification"); WorkforceError if the page has none."""
    try:
        name = tasks.get(task_type).widget
    except ValueError as exc:
        raise WorkforceError(f"the worker page has no widget for task type {task_type!r} ({exc})") from None
    if not (WIDGETS_DIR / f"{name}.js").is_file():
        raise WorkforceError(f"the worker page has no widget {name!r} for task type {task_type!r}")
    return name
