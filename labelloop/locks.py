"""One execution at a time per output location.

The lock is a small JSON object beside the run's settings, naming the execution that holds it.
A second execution refuses to start while the holder is alive; a holder that died (a killed
local process, an aborted or timed-out execution on AWS) leaves a stale lock that the next
execution takes over, so "run the same command again" resumes.

Taking the lock is atomic, so two executions started in the same instant cannot both win:
on S3 the lock is created with a conditional write (`IfNoneMatch="*"`) and a stale one is
replaced only if it is still the object that was judged stale (`IfMatch=<its ETag>`); locally
the check and the write happen under an exclusive `flock` on a guard file beside the lock.

Whether a holder is alive is asked of whoever can know: Step Functions for an execution that
ran on Lambda (a second Bootstrap in the same warm sandbox has the same host and PID as the
first, so those prove nothing there); for a local process, the process table, and, when the
holder is this very process, the local engine's record of the executions it is running now.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from labelloop import storage


class RunInProgressError(RuntimeError):
    """Another execution is using the same output location."""


# Executions the local engine is running in this process now (engine.run adds and removes them).
_running_here: set[str] = set()
_running_guard = threading.Lock()


@contextlib.contextmanager
def running_here(execution: str) -> Iterator[None]:
    """Mark an execution as alive in this process while the local engine runs it."""
    with _running_guard:
        _running_here.add(execution)
    try:
        yield
    finally:
        with _running_guard:
            _running_here.discard(execution)


def acquire(uri: str, execution: str, execution_arn: str | None = None) -> dict[str, Any]:
    """Take the lock for this execution, or raise RunInProgressError naming the live holder."""
    me = {
        "Execution": execution,
        "ExecutionArn": execution_arn,
        "Token": secrets.token_hex(16),  # unique per acquisition, whatever the names say
        "OnLambda": bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")),
        "Host": socket.gethostname(),
        "Pid": os.getpid(),
        "Since": datetime.now(timezone.utc).isoformat(),
    }
    body = (json.dumps(me, indent=2, sort_keys=True) + "\n").encode()
    if storage.is_s3(uri):
        _acquire_s3(uri, me, body)
    else:
        _acquire_local(uri, me, body)
    return me


def _acquire_local(uri: str, me: dict, body: bytes) -> None:
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    import fcntl

    guard = os.open(path.parent / f".{path.name}.guard", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # held for the check and the write: nobody slips between
        if path.exists():
            _refuse_if_held(uri, _read(path.read_bytes()), me)
        storage.write_bytes(uri, body)
    finally:
        os.close(guard)  # closing releases the flock


def _acquire_s3(uri: str, me: dict, body: bytes) -> None:
    from botocore.exceptions import ClientError

    bucket, key = storage.split_s3(uri)
    client = storage._s3()
    for _ in range(5):
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            return
        except ClientError as exc:
            if not _precondition_failed(exc):
                raise
        try:
            held = client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                continue  # released between our write and our read: try again
            raise
        _refuse_if_held(uri, _read(held["Body"].read()), me)
        try:  # stale: replace it only if nobody else replaced it since we read it
            client.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=held["ETag"])
            return
        except ClientError as exc:
            if not _precondition_failed(exc) and exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
    raise RunInProgressError(f"another execution keeps taking the lock {uri}; try again when it ends")


def _precondition_failed(exc: Any) -> bool:
    error = exc.response.get("Error", {})
    return error.get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict") or \
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)


def _read(raw: bytes) -> dict:
    try:
        held = json.loads(raw)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _refuse_if_held(uri: str, held: dict, me: dict) -> None:
    if _same_execution(held, me) or not _alive(held):
        return
    raise RunInProgressError(
        f"execution {held.get('Execution')!r} (since {held.get('Since')}) is using this output location; "
        f"wait for it to end or stop it, or choose another output location (lock: {uri})"
    )


def _same_execution(held: dict, me: dict) -> bool:
    """A retried Bootstrap of the very execution that holds the lock takes it again.

    On AWS an execution ARN names one execution; locally (moto) it is derived from the name, so
    there the holder must also be this process.
    """
    if held.get("Execution") != me["Execution"] or held.get("ExecutionArn") != me["ExecutionArn"]:
        return False
    if me["OnLambda"] and held.get("OnLambda"):
        return bool(me["ExecutionArn"])
    return held.get("Host") == me["Host"] and held.get("Pid") == me["Pid"]


def release(uri: str, execution: str | None) -> None:
    if not storage.exists(uri):
        return
    if storage.is_s3(uri):
        from botocore.exceptions import ClientError

        bucket, key = storage.split_s3(uri)
        client = storage._s3()
        held = client.get_object(Bucket=bucket, Key=key)
        if _read(held["Body"].read()).get("Execution") == execution:
            with contextlib.suppress(ClientError):  # changed since: someone else's lock now, keep it
                client.delete_object(Bucket=bucket, Key=key, IfMatch=held["ETag"])
        return
    if _read(Path(uri).read_bytes()).get("Execution") == execution:
        storage.delete(uri)


def live_holder(uri: str) -> dict | None:
    """The lock's holder if the lock is held by a live execution (or by one nobody can tell about);
    None when there is no lock or its holder has ended (a stale lock)."""
    if not storage.exists(uri):
        return None
    held = _read(storage.read_bytes(uri))
    return held if _alive(held) else None


def _alive(held: dict) -> bool:
    if not held:
        return True  # unreadable: cannot tell, refuse rather than risk two loops writing one ledger
    arn = held.get("ExecutionArn")
    if held.get("OnLambda") or (arn and held.get("Host") != socket.gethostname()):
        return _execution_running(arn)
    if held.get("Host") == socket.gethostname() and held.get("Pid"):
        pid = int(held["Pid"])
        if pid == os.getpid():
            # This very process: alive only if the local engine is running that execution now
            # (otherwise it is an earlier execution of ours that ended without releasing it).
            with _running_guard:
                return held.get("Execution") in _running_here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return _execution_running(arn)


def _execution_running(arn: str | None) -> bool:
    if not arn:
        return True  # cannot tell: refuse rather than risk two loops writing one ledger
    import boto3

    try:
        status = boto3.client("stepfunctions").describe_execution(executionArn=arn)["status"]
    except Exception:  # noqa: BLE001 - no permission or no such execution: cannot tell
        return True
    return status == "RUNNING"
