"""How a local run ended: one line a person can act on, its exit code, and the record
`labelloop status` reads.

A failed execution's own error and cause are the Fail state's (`LabelingLoopFailed`, and a
cause that nests the failed step's Lambda error JSON with its stack trace, or a SageMaker
Describe* document). The line names the state that failed and the sentence our step raised
(`errorMessage`) or the job's `FailureReason`, found in the execution history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from labelloop import layout, storage

EXIT_FAILED = 3
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
EXIT_CODES_HELP = """exit status:
  0    the job finished
  2    bad input (settings, manifest, label config, truth file): fix it and run again
  3    the job failed; the labels so far are kept: fix the cause, run the same command to resume
  130  stopped (Ctrl-C); the same command resumes, every label kept"""
# What a step raises for input a person has to fix (the class names the Lambda error carries).
INPUT_ERRORS = frozenset({"InputManifestError", "ConfigurationError", "ManifestError", "JsonLinesError"})
# The failure path's own states: they report the failure, they are not where it happened.
_FAILURE_PATH = frozenset({"SavePartialOutput", "LoopFailed"})
STOPPED_LINE = "labelloop: stopped; run the same command again to resume (every label so far is kept)"


@dataclass(frozen=True)
class Failure:
    state: str  # the state that failed ("execution" when the history names none)
    error: str  # the error name (an exception class, States.TaskFailed, ...)
    cause: str  # one line: the sentence the step raised or the job's failure reason
    detail: str  # everything the engine reported, stack trace included (--debug)

    @property
    def exit_code(self) -> int:
        return EXIT_BAD_INPUT if self.error in INPUT_ERRORS else EXIT_FAILED

    def line(self, rejected: str | None = None) -> str:
        text = f"labelloop: {self.state} failed: {self.cause}"
        if rejected and rejected not in text:
            text += f" (rejected input lines: {rejected})"
        return text


def failure_of(history: Iterable[dict[str, Any]], error: str | None, cause: str | None) -> Failure:
    """The failure an execution ended with, from its history (or its own error and cause)."""
    entered: list[str] = []  # the states entered, in order
    found: list[tuple[str, str, str]] = []  # (state, error, cause), in order
    for event in history:
        if event.get("stateEnteredEventDetails"):
            entered.append(str(event["stateEnteredEventDetails"].get("name")))
        current = entered[-1] if entered else "execution"
        exited = event.get("stateExitedEventDetails") or {}
        if exited.get("name") == "ExistingJobFailed":  # a job found Failed on resume: a Pass state says so
            caught = _json(exited.get("output"))
            caught = caught.get("error") if isinstance(caught, dict) else None
            if isinstance(caught, dict):
                state = entered[-2] if len(entered) > 1 else current
                found.append((state, str(caught.get("Error")), str(caught.get("Cause"))))
        kind = str(event.get("type", ""))
        if kind.startswith("Execution") or not ("Failed" in kind or "TimedOut" in kind):
            continue
        details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
        if "error" in details or "cause" in details:
            found.append((current, str(details.get("error") or kind), str(details.get("cause") or "")))
    steps = [f for f in found if f[0] not in _FAILURE_PATH] or found
    state, name, raw = steps[-1] if steps else ("execution", error or "failed", cause or "")
    name, sentence, detail = _explain(name, raw)
    return Failure(state=state, error=name, cause=sentence or name, detail=detail)


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _explain(error: str, cause: str) -> tuple[str, str, str]:
    """(error name, one-line cause, full detail) from a state's error and cause."""
    doc = _json(cause)
    if isinstance(doc, dict) and "errorMessage" in doc:  # a Lambda error: our step raised this
        error = str(doc.get("errorType") or error)
        sentence = str(doc["errorMessage"])
        trace = doc.get("stackTrace") or []
        detail = "\n".join([f"{error}: {sentence}", *(str(t) for t in trace)])
    elif isinstance(doc, dict) and doc.get("FailureReason"):  # a SageMaker job's Describe*
        sentence = str(doc["FailureReason"])
        detail = f"{error}\n{json.dumps(doc, indent=2, default=str)}"
    else:
        sentence = cause
        detail = f"{error}: {cause}"
    return error, " ".join(sentence.split()), detail


def rejected_lines_file(output: Path) -> str | None:
    """The input checks' rejected-lines file, if they wrote any line to it."""
    path = Path(layout.rejected_uri(str(output)))
    return str(path) if path.is_file() and path.stat().st_size > 0 else None


# ---------------------------------------------------------------------------------------------
# The record of how the last `labelloop run` on an output folder ended


def record(output: Path, execution: str, status: str, line: str | None, exit_code: int) -> None:
    """status: succeeded, failed or stopped; line: what was printed about it."""
    storage.write_json(layout.local_outcome_uri(str(output)), {
        "Execution": execution, "Status": status, "Line": line, "ExitCode": exit_code,
        "Ended": datetime.now(timezone.utc).isoformat(),
    })


def read(output: Path) -> dict[str, Any] | None:
    path = Path(layout.local_outcome_uri(str(output)))
    doc = _json(path.read_text(encoding="utf-8")) if path.is_file() else None
    return doc if isinstance(doc, dict) else None
