"""Where a run's time went: each state's time from the execution history, by kind and iteration.

The local engine's history (`work/execution-history.json`, written when `labelloop run` ends)
has a timestamped event for every state entered and exited. A state's time is from its entry to
its exit; an iteration ends when its gate (GateAndRoute) exits, so the human batch a gate
routes counts in the next iteration, as the iteration table has it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("training", "inference", "humans", "waiting", "steps")
KIND_OF = {
    "TrainModel": "training", "DescribeTrainingJob": "training",
    "SaveModel": "inference", "InferValidation": "inference", "InferUnlabeled": "inference",
    "DescribeTransformJob": "inference",
    "LabelWithHumans": "humans", "DescribeLabelingJob": "humans",
    "WaitAfterThrottling": "waiting", "WaitForExistingJob": "waiting",
}
GATE = "GateAndRoute"


@dataclass
class Timing:
    total: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    per_iteration: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    per_state: dict[str, tuple[int, float]] = field(default_factory=dict)  # state -> (times run, seconds)

    @property
    def seconds(self) -> float:
        return sum(self.total.values())


def _when(event: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(event.get("timestamp")))
    except ValueError:
        return None


def _name(event: dict[str, Any], details: str) -> str | None:
    value = event.get(details)
    return value.get("name") if isinstance(value, dict) else None


def time_per_state(history: list[dict[str, Any]] | None) -> Timing | None:
    """Seconds per kind of state, per iteration and per state; None without a usable history."""
    if not history:
        return None
    timing = Timing()
    iteration, current = 1, dict.fromkeys(KINDS, 0.0)
    entered: dict[str, datetime] = {}
    for event in history:
        if not isinstance(event, dict):
            continue
        kind_of_event, when = str(event.get("type", "")), _when(event)
        if when is None:
            continue
        if kind_of_event.endswith("StateEntered"):
            name = _name(event, "stateEnteredEventDetails")
            if name:
                entered[name] = when
        elif kind_of_event.endswith("StateExited"):
            name = _name(event, "stateExitedEventDetails")
            start = entered.pop(name, None) if name else None
            if start is None:
                continue
            seconds = max(0.0, (when - start).total_seconds())
            kind = KIND_OF.get(name, "steps")
            current[kind] += seconds
            timing.total[kind] += seconds
            runs, total = timing.per_state.get(name, (0, 0.0))
            timing.per_state[name] = (runs + 1, total + seconds)
            if name == GATE:
                timing.per_iteration.append((iteration, current))
                iteration, current = iteration + 1, dict.fromkeys(KINDS, 0.0)
    if timing.per_iteration and not any(current[k] for k in KINDS if k != "steps"):
        timing.per_iteration[-1][1]["steps"] += current["steps"]  # the export after the last gate
    elif any(current.values()):
        timing.per_iteration.append((iteration, current))  # the loop ended on a human batch
    return timing if timing.per_state else None


def duration(seconds: float) -> str:
    """1.2s, 3m 04s, 2h 05m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
