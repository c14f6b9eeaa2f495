"""Input checks Bootstrap runs on every manifest line and on the job as a whole.

`labelloop.manifest.parse_line` checks a line's shape (JSON object, one of `source` /
`source-ref`); this module checks what a line points at, before any human is paid:

- `source-ref` must be an `s3://bucket/key` URI or an absolute local path. A relative path is
  an error naming the line (it would resolve differently in every process that reads it). On
  AWS (the stack's `DataBucket` is set) it must be `s3://<that bucket>/...`: the labeling and
  SageMaker roles can read nothing else.
- A local `source-ref` must be a regular file (a device such as /dev/zero, a FIFO or a socket is
  rejected; it is opened non-blocking, so a FIFO cannot hang Bootstrap), and no item may be over
  `MAX_IMAGE_BYTES` / `MAX_TEXT_BYTES` (a local file's size, an s3:// object's HEAD, an inline
  `source`'s length).
- The referenced object must exist and be readable; for image tasks a local file must also be
  an image Pillow can read (`Image.open(...).verify()`: a header and chunk check that decodes no
  pixels, so it stays cheap).

A line that fails is a rejected line (it goes to `input/rejected.manifest` with its line number
and reason, and counts toward the 10 % rule). Job-level problems fail the job before it starts:
fewer valid items than `MinimumItems` (InputManifestError), a bad `MinimumItems` value
(ConfigurationError).

Cost, so a 1,000,000-line manifest still bootstraps in well under 60 s:

- Local files are always checked (a stat, an open and a header read each).
- s3:// objects are checked only when the manifest has at most `S3_CHECK_MAX_LINES` (10,000)
  lines: one HEAD request per object, issued concurrently before the first s3:// line is judged.
  A HEAD is a network round trip (~10-30 ms from Lambda); a million of them would take hours, so
  a larger manifest's s3:// objects are not opened here and a missing one surfaces as the
  labeling or training job's own per-object failure. HEAD proves the object exists and is
  readable by this role; it does not decode the image.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from labelloop import storage, tasks
from labelloop.config import ConfigurationError, JobSettings
from labelloop.errors import InputManifestError
from labelloop.manifest import ManifestError

# Ground Truth asks for at least 1,250 objects for automated labeling. The loop works (and is
# tested and demonstrated) on far smaller sets, so the default floor only catches manifests
# that are obviously wrong (a header line, a truncated upload); raise it with `MinimumItems`.
DEFAULT_MINIMUM_ITEMS = 10
MINIMUM_ITEMS_SETTING = "MinimumItems"
S3_CHECK_MAX_LINES = 10_000
S3_CHECK_THREADS = 16
# Most bytes one item may hold. Ground Truth's own limits are of this order (images of tens of
# MB); above them an item is a mistake (a log, a disk image, /dev/zero) that would be paid for
# and then exhaust the transform's memory.
MAX_IMAGE_BYTES = 40 * 1024 * 1024
MAX_TEXT_BYTES = 1024 * 1024


def split_settings(raw: Any) -> tuple[Any, int]:
    """(the settings JobSettings parses, MinimumItems) from the execution input.

    `MinimumItems` is read here; if `JobSettings` does not know the field it is taken out of
    the input before `JobSettings.parse` (which refuses unknown settings).
    """
    if not isinstance(raw, dict) or MINIMUM_ITEMS_SETTING not in raw:
        return raw, DEFAULT_MINIMUM_ITEMS
    value = raw[MINIMUM_ITEMS_SETTING]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{MINIMUM_ITEMS_SETTING} must be a positive integer, got {value!r}")
    if MINIMUM_ITEMS_SETTING in JobSettings.FIELDS:
        return raw, value
    return {k: v for k, v in raw.items() if k != MINIMUM_ITEMS_SETTING}, value


class InputChecks:
    """Per-line (`check_line`) and per-job (`check_job`) checks for one Bootstrap."""

    def __init__(self, settings: JobSettings, deployment: dict[str, Any] | None = None,
                 minimum_items: int = DEFAULT_MINIMUM_ITEMS):
        self.manifest_uri = settings.manifest_uri
        self.image_task = tasks.get(settings.task_type).items_are_images
        self.max_bytes = MAX_IMAGE_BYTES if self.image_task else MAX_TEXT_BYTES
        self.bucket = (deployment or {}).get("DataBucket") or None
        self.minimum_items = minimum_items
        self._s3_problems: dict[str, str | None] | None = None  # None: not decided yet
        self.s3_checked = False  # whether s3:// objects were checked (manifest small enough)

    # ------------------------------------------------------------ per line

    def check_line(self, line: dict[str, Any], number: int) -> None:
        """Raise ManifestError naming the line if what it references cannot be used."""
        ref = line.get("source-ref")
        if not isinstance(ref, str):
            text = line.get("source")
            if isinstance(text, str) and len(text) > self.max_bytes:
                raise ManifestError(f"line {number}: source is {len(text):,} characters, over the "
                                    f"{self.max_bytes:,} limit per item")
            return  # inline text (`source`): nothing to reach
        shown = ref if len(ref) <= 200 else ref[:200] + "..."
        if "\x00" in ref:
            raise ManifestError(f"line {number}: source-ref {shown!r} contains a NUL character")
        if ref.startswith("s3://"):
            bucket, _, key = ref[len("s3://"):].partition("/")
            if not bucket or not key:
                raise ManifestError(f"line {number}: source-ref {shown!r} is not an s3://bucket/key URI")
            if self.bucket and bucket != self.bucket:
                raise ManifestError(
                    f"line {number}: source-ref {shown!r} is outside this stack's data bucket s3://{self.bucket}/ "
                    "(the labeling and training roles cannot read it)"
                )
            problem = self._s3_problem(ref)
            if problem:
                raise ManifestError(f"line {number}: source-ref {shown!r} {problem}")
            return
        if self.bucket:
            raise ManifestError(
                f"line {number}: source-ref {shown!r} is not an s3:// URI in this stack's data bucket s3://{self.bucket}/"
            )
        if not os.path.isabs(ref):
            raise ManifestError(
                f"line {number}: source-ref {shown!r} is neither an s3:// URI nor an absolute local path"
            )
        problem = self._local_problem(ref)
        if problem:
            raise ManifestError(f"line {number}: source-ref {shown!r} {problem}")

    def _local_problem(self, path: str) -> str | None:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; only a regular file is an item
        # (a device such as /dev/zero would be read without end by the transform).
        try:
            handle = open(path, "rb", opener=lambda p, flags: os.open(p, flags | os.O_NONBLOCK))
        except FileNotFoundError:
            return "does not exist"
        except IsADirectoryError:
            return "is a folder, not a file"
        except PermissionError:
            return "cannot be read (permission denied)"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        with handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                return "is a folder, not a file"
            if not stat.S_ISREG(info.st_mode):
                return "is not a regular file (a device, FIFO or socket)"
            if info.st_size > self.max_bytes:
                return f"is {info.st_size:,} bytes, over the {self.max_bytes:,}-byte limit per item"
            if not self.image_task:
                return None
            from PIL import Image

            try:
                with Image.open(handle) as image:
                    image.verify()
            except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for bad files
                return f"is not an image or cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})"
        return None

    def _s3_problem(self, uri: str) -> str | None:
        if self._s3_problems is None:
            self._s3_problems = self._head_all() if self._small_manifest() else {}
            self.s3_checked = bool(self._s3_problems)
        return self._s3_problems.get(uri)

    def _small_manifest(self) -> bool:
        """At most S3_CHECK_MAX_LINES non-blank lines? Reads no more than that many lines."""
        count = 0
        for text in storage.iter_lines(self.manifest_uri):
            count += bool(text.strip())
            if count > S3_CHECK_MAX_LINES:
                return False
        return True

    def _head_all(self) -> dict[str, str | None]:
        """HEAD every s3:// object the (small) manifest references, concurrently: {uri: problem}."""
        import json

        refs: list[str] = []
        for text in storage.iter_lines(self.manifest_uri):
            try:
                ref = json.loads(text).get("source-ref") if text.strip() else None
            except (ValueError, AttributeError):
                continue
            if isinstance(ref, str) and ref.startswith("s3://") and "/" in ref[len("s3://"):]:
                refs.append(ref)
        if not refs:
            return {}
        client = storage._s3()
        with ThreadPoolExecutor(S3_CHECK_THREADS) as pool:
            problems = list(pool.map(lambda uri: _head_problem(client, uri, self.max_bytes), refs))
        return dict(zip(refs, problems))

    # ------------------------------------------------------------ per job

    def check_job(self, total: int, rejected_uri: str) -> None:
        """Fail the job (InputManifestError) when too few valid items are left to label."""
        if total < self.minimum_items:
            raise InputManifestError(
                f"input manifest {self.manifest_uri} has {total} valid item(s), fewer than the minimum of "
                f"{self.minimum_items} ({MINIMUM_ITEMS_SETTING}); see {rejected_uri} for the rejected lines"
            )


def _head_problem(client: Any, uri: str, max_bytes: int) -> str | None:
    from botocore.exceptions import ClientError

    bucket, key = storage.split_s3(uri)
    try:
        size = client.head_object(Bucket=bucket, Key=key).get("ContentLength", 0)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return "does not exist"
        if code in ("403", "AccessDenied", "Forbidden"):
            return "cannot be read (access denied)"
        if code in ("NoSuchBucket",):
            return f"does not exist (no bucket {bucket})"
        raise
    if size > max_bytes:
        return f"is {size:,} bytes, over the {max_bytes:,}-byte limit per item"
    return None


def check_initial_model(uri: str) -> None:
    """Open InitialModelArtifacts before anyone is paid: it must be a model.tar.gz (ConfigurationError)."""
    where = f"InitialModelArtifacts {uri}"
    if storage.is_s3(uri):
        from botocore.exceptions import ClientError

        bucket, key = storage.split_s3(uri)
        try:  # the gzip magic number; the whole model is only fetched by the transform job
            head = storage._s3().get_object(Bucket=bucket, Key=key, Range="bytes=0-1")["Body"].read()
        except ClientError as exc:
            raise ConfigurationError(f"{where} cannot be read ({exc.response.get('Error', {}).get('Code')})") from None
        if head != b"\x1f\x8b":
            raise ConfigurationError(f"{where} is not a model.tar.gz (not gzip-compressed)")
        return
    import tarfile

    try:
        info = os.stat(uri)
    except OSError as exc:
        raise ConfigurationError(f"{where} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{where} is not a regular file")
    try:
        with tarfile.open(uri, "r:gz") as tar:
            if not any(member.isfile() for member in tar):
                raise ConfigurationError(f"{where} is an empty tarball: it holds no model files")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigurationError(f"{where} is not a model.tar.gz ({type(exc).__name__}: {str(exc)[:120]})") from None
