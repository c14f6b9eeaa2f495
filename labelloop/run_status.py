"""`labelloop status`: where a labeling job stands, one line per iteration.

Given an execution ARN it asks Step Functions (`labelloop.aws_cli.cmd_status`). Given the output
folder of a local run (`labelloop run --output`, finished or still going) it reads what the run
wrote there: each iteration's metrics.json, the lock a running execution holds
(config/lock.json: alive while its process is), the summary an ended loop writes, and how
`labelloop run` last ended (work/outcome.json).

The state is one of:
- running:  the lock's holder is alive;
- finished: the loop ended and wrote its summary (stop reason: all labeled, a budget, ...);
- failed:   the last run ended with an error (its one-line cause is shown);
- stopped:  the last run ended without either (Ctrl-C, a kill, a crash); the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from labelloop import layout, locks, metrics_table
from labelloop.local import outcome


def _json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def iteration_metrics(output: Path) -> list[dict[str, Any]]:
    rows = []
    for folder in sorted(Path(layout.iterations_root(str(output))).glob("*")):
        number = layout.iteration_of_dir(folder.name)
        metrics = _json(Path(layout.metrics_uri(str(output), number))) if number is not None else None
        if metrics:
            rows.append(metrics)
    return rows


def local_state(output: Path) -> tuple[str, dict[str, Any]]:
    """(running | finished | failed | stopped, what says so)."""
    out = str(output)
    holder = locks.live_holder(layout.lock_uri(out))
    if holder is not None:
        return "running", holder
    lock = _json(Path(layout.lock_uri(out)))  # left by an execution that did not reach the end
    ended = outcome.read(output)
    if ended and (lock is None or ended.get("Execution") == lock.get("Execution")):
        return {"succeeded": "finished"}.get(ended.get("Status"), ended.get("Status", "stopped")), ended
    summary = _json(Path(layout.summary_uri(out)))
    if lock is None and summary:
        return ("failed" if str(summary.get("StopReason", "")).startswith("failed") else "finished"), summary
    return "stopped", lock or {}


def render_local(output: Path) -> str:
    out = str(output)
    settings = _json(Path(layout.settings_uri(out))) or {}
    state, why = local_state(output)
    summary = _json(Path(layout.summary_uri(out)))
    head = f"run in {output} (job {settings.get('JobName', '?')}): {state}"
    if state == "running":
        head += f" since {why.get('Since', '?')} (execution {why.get('Execution')}, process {why.get('Pid')})"
    elif state == "finished" and summary:
        head += (f" ({summary.get('StopReason')}): {summary.get('HumanLabeled')} human, {summary.get('AutoLabeled')} auto, "
                 f"{summary.get('Unlabeled')} unlabeled of {summary.get('Total')}")
    elif state == "stopped":
        head += " before the end; the same `labelloop run` command resumes it, every label kept"
    lines = [head]
    rows = iteration_metrics(output)
    if rows:
        columns = metrics_table.columns(settings, terminal=True)
        lines.append(metrics_table.text_header(columns))
        lines.extend(metrics_table.text_row(m, columns) for m in rows)
    if state == "running":
        lines.append(f"now in iteration {len(rows) + 1}")
    if state == "failed":
        lines.append(why.get("Line") or f"labelloop: failed: {why.get('StopReason')}")
    if summary and state in ("finished", "failed"):
        lines.append(f"{'output' if state == 'finished' else 'labels so far'}: {summary.get('OutputManifestUri')}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    target = args.target
    if target.startswith("arn:"):
        from labelloop.aws_cli import cmd_status as aws_status

        return aws_status(argparse.Namespace(execution_arn=target, region=args.region), out)
    output = Path(target).resolve()
    if not Path(layout.settings_uri(str(output))).is_file() and not Path(layout.lock_uri(str(output))).is_file():
        print(f"labelloop: {target} is neither a Step Functions execution ARN nor the --output folder of a "
              "labelloop run (no config/settings.json there)", file=sys.stderr)
        return 2
    print(render_local(output), file=out or sys.stdout)
    return 0


def add_status_command(subparsers: Any) -> argparse.ArgumentParser:
    status = subparsers.add_parser(
        "status",
        help="where a job stands, one line per iteration: a local run's output folder or an AWS execution",
        description="Show where a labeling job stands and one line per finished iteration: for a local run "
        "(give its --output folder: running, finished, failed or stopped), or for an execution on AWS (give "
        "its ARN: from the execution's history).",
    )
    status.add_argument("target", metavar="OUTPUT_OR_EXECUTION_ARN",
                        help="a local run's --output folder, or a Step Functions execution ARN")
    status.add_argument("--region", help="AWS: the region (default: the ARN's)")
    status.set_defaults(func=cmd_status)
    return status
