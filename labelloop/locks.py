"""One execution at a time per output location.

The lock is a small JSON object beside the run's settings, naming the execution that holds it.
A second execution refuses to start while the holder is alive; a holder that died (a killed
local process, an aborted or timed-out execution on AWS) leaves a stale lock that the next
execution takes over, so "run the same command again" resumes.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from labelloop import storage


class RunInProgressError(RuntimeError):
    """Another execution is using the same output location."""


def acquire(uri: str, execution: str, execution_arn: str | None = None) -> None:
    me = {
        "Execution": execution,
        "ExecutionArn": execution_arn,
        "Host": socket.gethostname(),
        "Pid": os.getpid(),
        "Since": datetime.now(timezone.utc).isoformat(),
    }
    if storage.exists(uri):
        held = storage.read_json(uri)
        if held.get("Execution") != execution and _alive(held):
            raise RunInProgressError(
                f"execution {held.get('Execution')!r} (since {held.get('Since')}) is using this output location; "
                f"wait for it to end or stop it, or choose another output location (lock: {uri})"
            )
    storage.write_json(uri, me)


def release(uri: str, execution: str | None) -> None:
    if storage.exists(uri) and storage.read_json(uri).get("Execution") == execution:
        storage.delete(uri)


def _alive(held: dict) -> bool:
    if held.get("Host") == socket.gethostname() and held.get("Pid"):
        # The same machine (the local engine): the holder lives as long as its process does.
        pid = int(held["Pid"])
        if pid == os.getpid():
            return False  # this very process: an earlier execution of ours that died mid-run
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    arn = held.get("ExecutionArn")
    if not arn:
        return True  # cannot tell: refuse rather than risk two loops writing one ledger
    import boto3

    try:
        status = boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"]
    except Exception:  # noqa: BLE001 - no permission or no such execution: cannot tell
        return True
    return status == "RUNNING"
