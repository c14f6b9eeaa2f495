"""Reading and writing artifacts by URI: `s3://bucket/key` on AWS, plain paths locally.

Handlers only ever see URIs, so the same handler runs in Lambda against S3 and in the local
engine against the output directory. Line-oriented helpers stream: nothing here holds a whole
manifest in memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlparse


class JsonLinesError(ValueError):
    """A JSON Lines file has a line that is not JSON; the message names the file and line."""


def json_lines(lines: Iterable[str], where: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line; a bad line names itself."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise JsonLinesError(f"{where} line {number}: not valid JSON ({exc.msg})") from None


TEMP_MARK = ".tmp-"  # atomic_file's temp names: .<name>.tmp-<random>


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temp file beside `path`; on a clean exit it is flushed to disk and renamed to `path`.

    The one way this project writes a local file: after a crash the name holds the old bytes
    or the new ones, whole, never a torn mix (fsync before the rename, and of the folder after,
    so the rename itself survives a power cut). On an error the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}")
    handle = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}))
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def remove_temp_files(folder: str) -> int:
    """Remove atomic_file temp files a killed process left under a local folder; how many there were.

    Only for a folder no other process writes to now (Bootstrap calls it holding the run lock).
    """
    if is_s3(folder) or not Path(folder).is_dir():
        return 0
    removed = 0
    for path in Path(folder).rglob(f".*{TEMP_MARK}*"):
        name = path.name
        if name.startswith(".") and TEMP_MARK in name and path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def iter_chunks(uri: str, size: int = 1 << 20) -> Iterator[bytes]:
    """Stream the bytes of an object in chunks of at most `size` bytes."""
    if is_s3(uri):
        yield from _get_object(uri).iter_chunks(chunk_size=size)
        return
    with open(uri, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def iter_json_lines(uri: str) -> Iterator[dict[str, Any]]:
    for _, value in json_lines(iter_lines(uri), uri):
        yield value


def write_bytes(uri: str, data: bytes) -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data)
        return
    with atomic_file(uri) as handle:
        handle.write(data)


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str, value: Any) -> None:
    write_text(uri, json.dumps(value, indent=2, sort_keys=True) + "\n")


class LineWriter:
    """Write JSON Lines to a URI as a stream; the object appears only on `close()`.

    Locally it writes through `atomic_file`; on S3 it spools to a temp file and uploads once (a
    multipart upload for large files), so memory stays flat for a million lines.
    """

    def __init__(self, uri: str):
        self.uri = uri
        self.count = 0
        if is_s3(uri):
            self._spool = tempfile.NamedTemporaryFile("w+b", suffix=".jsonl", delete=False)
            self._path = self._spool.name
            self._handle = io.TextIOWrapper(self._spool, encoding="utf-8")
        else:
            self._local = atomic_file(uri, "w")
            self._handle = self._local.__enter__()

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        if not is_s3(self.uri):
            self._local.__exit__(None, None, None)
            return
        self._handle.close()
        bucket, key = split_s3(self.uri)
        try:
            _s3().upload_file(self._path, bucket, key)
        finally:
            os.unlink(self._path)

    def abort(self) -> None:
        if not is_s3(self.uri):
            with contextlib.suppress(RuntimeError):
                self._local.__exit__(RuntimeError, RuntimeError("aborted"), None)
            return
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
