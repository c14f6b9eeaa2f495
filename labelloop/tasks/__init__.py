"""Task types: the one place that knows what a kind of label is.

Each task type is one module here, or one package when it outgrows a file (plus its folder under
`algorithms/`). A `TaskType` says what Ground Truth calls it, which built-in worker UI and
Lambdas serve it, how its label is read from
and written to a manifest line, how several workers' answers become one, how a label's quality
is scored against a reference, how the model's output is read, the target its auto-labels are
certified at, where its algorithm lives, how a simulated annotator answers, which widget the
local worker page shows and how the report draws an example. Nothing else names a task type:
the steps, the engine, the workforces and the CLI ask this registry.
"""

from __future__ import annotations

from labelloop.tasks.base import Framework, TaskType

_REGISTRY: dict[str, TaskType] = {}


def register(task: TaskType) -> TaskType:
    """Make `task` known by its name (a test may register a task type of its own)."""
    if task.name in _REGISTRY and _REGISTRY[task.name] is not task:
        raise ValueError(f"task type {task.name!r} is registered already")
    _REGISTRY[task.name] = task
    return task


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> TaskType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task type {name!r}; expected one of {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def all_types() -> list[TaskType]:
    return [_REGISTRY[n] for n in names()]


def by_pre_lambda(arn: str) -> TaskType:
    """The task type whose built-in pre-annotation Lambda `arn` is (what a labeling job request names)."""
    for task in _REGISTRY.values():
        if arn.rsplit(":", 1)[-1] == f"PRE-{task.lambda_suffix}":
            return task
    raise ValueError(f"no task type has the pre-annotation Lambda {arn!r}")


# The product's task types register themselves on import.
from labelloop.tasks import image_classification as _image  # noqa: E402,F401
from labelloop.tasks import object_detection as _boxes  # noqa: E402,F401
from labelloop.tasks import semantic_segmentation as _masks  # noqa: E402,F401
from labelloop.tasks import text_classification as _text  # noqa: E402,F401

__all__ = ["Framework", "TaskType", "register", "unregister", "get", "names", "all_types", "by_pre_lambda"]
