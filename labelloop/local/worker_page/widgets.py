"""Which page widget shows an item of a task type.

A widget is a static script, `static/widgets/<name>.js` (with its `<name>.css`), that draws one
item and collects its answer; the page loads the one the item view names. This is the single
place that maps a task type to its widget.
"""

from __future__ import annotations

from labelloop.local.workforce import WorkforceError

_WIDGETS = {
    "image-classification": "classification",  # the classification widget shows an image or a text
    "text-classification": "classification",
}


def widget_for(task_type: str) -> str:
    """The widget name for `task_type` (e.g. "classification"); WorkforceError if there is none."""
    try:
        return _WIDGETS[task_type]
    except KeyError:
        raise WorkforceError(
            f"the worker page has no widget for task type {task_type!r} (it has: {', '.join(sorted(_WIDGETS))})"
        ) from None
