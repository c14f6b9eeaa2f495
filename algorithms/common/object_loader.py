"""Reading an object named by an augmented-manifest reference: `s3://bucket/key` or a local path.

S3 objects are read with boto3 `get_object` (boto3 is imported only when an S3 reference is
met, and one client is shared by all threads). A `data:<type>;base64,<data>` URL (RFC 2397)
holds the object itself: labelloop's training channels carry small label files (masks) that way.
Anything else is a local file path; a `file://` prefix is accepted. `map_ordered` fetches in a thread pool (`workers_for`): S3 reads are latency-bound.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence, TypeVar
from urllib.parse import unquote

T = TypeVar("T")
R = TypeVar("R")

_client = None
_client_lock = threading.Lock()


def _s3():
    global _client
    with _client_lock:
        if _client is None:
            import boto3  # noqa: PLC0415  (only when an s3:// reference is met)
            from botocore.config import Config  # noqa: PLC0415

            _client = boto3.client("s3", config=Config(max_pool_connections=64, retries={"max_attempts": 8, "mode": "adaptive"}))
        return _client


def split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise ValueError(f"malformed S3 reference {uri!r} (expected s3://bucket/key)")
    return bucket, key


def short(ref: str) -> str:
    """`ref` for a message: a data: URL (or any long reference) cut to its start and its length."""
    return ref if len(ref) <= 200 else f"{ref[:60]}... ({len(ref)} characters)"


def read_bytes(ref: str) -> bytes:
    """The content of the object `ref` names. Raises OSError/ValueError with the reference in it."""
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"expected an object reference (s3://bucket/key or a file path), got {ref!r}")
    if ref.startswith("data:"):
        header, comma, payload = ref.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ValueError(f"{short(ref)} is not a base64 data URL (data:<type>;base64,<data>)")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{short(ref)} is not valid base64 ({exc})") from None
    if ref.startswith("s3://"):
        bucket, key = split_s3(ref)
        try:
            return _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore errors carry the code; keep the reference next to it
            raise OSError(f"cannot read {ref}: {exc}") from exc
    path = unquote(ref[len("file://") :]) if ref.startswith("file://") else ref
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise OSError(f"cannot read {ref}: {exc.strerror or exc}") from exc


def default_workers() -> int:
    cpus = int(os.environ.get("SM_NUM_CPUS") or os.cpu_count() or 1)
    return max(4, min(64, 8 * cpus))


def workers_for(refs: Iterable[object]) -> int:
    """Threads for fetching `refs`: a pool for S3 (latency-bound), 1 for local files (the pool's
    overhead and the GIL make local reads slower in threads than in a loop)."""
    return default_workers() if any(isinstance(r, str) and r.startswith("s3://") for r in refs) else 1


def map_ordered(function: Callable[[T], R], items: Sequence[T] | Iterable[T], workers: int | None = None) -> list[R]:
    """`[function(x) for x in items]`, run in a thread pool, in order; the first error is raised."""
    items = list(items)
    workers = workers or default_workers()
    if len(items) <= 1 or workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))
