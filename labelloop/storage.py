"""Reading and writing artifacts by URI: `s3://bucket/key` on AWS, plain paths locally.

Handlers only ever see URIs, so the same handler runs in Lambda against S3 and in the local
engine against the output directory. Line-oriented helpers stream: nothing here holds a whole
manifest in memory.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', whatever the scheme."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def _s3():
    import boto3  # only handlers and the engine reach this; pure logic never imports boto3

    return boto3.client("s3")


def exists(uri: str) -> bool:
    if is_s3(uri):
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            _s3().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return Path(uri).exists()


def _get_object(uri: str):
    """The S3 object's streaming body; a missing object raises FileNotFoundError, as a path would."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        return _s3().get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            raise FileNotFoundError(f"{uri} does not exist") from None
        raise


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        return _get_object(uri).read()
    return Path(uri).read_bytes()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def read_json(uri: str) -> Any:
    return json.loads(read_text(uri))


def iter_lines(uri: str) -> Iterator[str]:
    """Stream the lines of a text object, without trailing newlines."""
    if is_s3(uri):
        for raw in _get_object(uri).iter_lines(chunk_size=1 << 20):
            yield raw.decode("utf-8")
        return
    with open(uri, encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n")


def iter_json_lines(uri: str) -> Iterator[dict[str, Any]]:
    for line in iter_lines(uri):
        if line.strip():
            yield json.loads(line)


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write-then-rename: a crash never leaves a half-written artifact under the real name.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str, value: Any) -> None:
    write_text(uri, json.dumps(value, indent=2, sort_keys=True) + "\n")


class LineWriter:
    """Write JSON Lines to a URI as a stream; the object appears only on `close()`.

    Locally it writes a temp file and renames it; on S3 it spools to a temp file and uploads
    once (a multipart upload for large files), so memory stays flat for a million lines.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.count = 0
        if is_s3(uri):
            self._spool = tempfile.NamedTemporaryFile("w+b", suffix=".jsonl", delete=False)
            self._path = self._spool.name
            self._handle = io.TextIOWrapper(self._spool, encoding="utf-8")
        else:
            path = Path(uri)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._path = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            self._handle = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        self._handle.close()
        if is_s3(self.uri):
            bucket, key = split_s3(self.uri)
            try:
                _s3().upload_file(self._path, bucket, key)
            finally:
                os.unlink(self._path)
        else:
            os.replace(self._path, self.uri)

    def abort(self) -> None:
        self._handle.close()
        if os.path.exists(self._path):
            os.unlink(self._path)

    def __enter__(self) -> "LineWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def delete(uri: str) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3().delete_object(Bucket=bucket, Key=key)
    else:
        Path(uri).unlink(missing_ok=True)


def list_objects(prefix: str) -> list[str]:
    """URIs of the objects under a prefix (a folder locally), sorted."""
    if is_s3(prefix):
        bucket, key = split_s3(prefix)
        key = key.rstrip("/") + "/"
        out: list[str] = []
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            out += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
        return sorted(out)
    root = Path(prefix)
    if root.is_file():
        return [str(root)]
    if not root.exists():
        return []
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
