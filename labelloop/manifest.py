"""Ground Truth manifests: parsing input lines and writing augmented output lines.

Pure logic: no I/O here. Callers stream lines in and out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

# Key the local engine adds to the lines it hands to labeling and transform jobs, so results
# can be joined back to items without trusting line order. Stripped from the final output.
ID_KEY = "labelloop-id"
# In a labeled line's <attribute>-metadata (local workforces only): the clicks people spent on the
# item, all its workers together, where their tool counted them.
CLICKS_KEY = "labelloop-clicks"
# Keys that start so are the engine's own (ID_KEY, the human batch's role and guess): an input line
# carrying one would override the item's id or show people a "model guess" nobody made.
RESERVED_PREFIX = "labelloop-"
UTF8_BOM = b"\xef\xbb\xbf"


class ManifestError(ValueError):
    """A manifest line is unusable; the message names the line and the problem."""


def item_key(line: dict[str, Any]) -> str:
    """Identity of an item, independent of its position in the manifest.

    Image items are identified by their `source-ref`; text items by a digest of `source`
    (texts can be long, and the key is stored beside every label).
    """
    if "source-ref" in line:
        return str(line["source-ref"])
    if "source" in line:
        digest = hashlib.sha256(str(line["source"]).encode("utf-8")).hexdigest()
        return f"sha256:{digest}"
    raise ManifestError("line has neither 'source' nor 'source-ref'")


def parse_line(text: str, line_number: int) -> dict[str, Any]:
    """Parse one JSON Lines record of an input manifest, naming the line on error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"line {line_number}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ManifestError(f"line {line_number}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ManifestError(f"line {line_number}: expected a JSON object, got {type(value).__name__}")
    reserved = sorted(k for k in value if k.startswith(RESERVED_PREFIX))
    if reserved:
        raise ManifestError(
            f"line {line_number}: key {reserved[0]!r} is reserved (keys starting {RESERVED_PREFIX!r} are labelloop's "
            "own: the item id, and what people are shown); rename or remove it"
        )
    has_ref, has_source = "source-ref" in value, "source" in value
    if not has_ref and not has_source:
        raise ManifestError(f"line {line_number}: missing 'source' or 'source-ref'")
    if has_ref and has_source:
        raise ManifestError(f"line {line_number}: has both 'source' and 'source-ref'; keep one")
    if has_ref and not (isinstance(value["source-ref"], str) and value["source-ref"]):
        raise ManifestError(f"line {line_number}: 'source-ref' must be a non-empty string")
    if has_source and not (isinstance(value["source"], str) and value["source"]):
        raise ManifestError(f"line {line_number}: 'source' must be a non-empty string")
    field = "source-ref" if has_ref else "source"
    try:
        value[field].encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"line {line_number}: '{field}' holds an escaped lone surrogate, not valid Unicode") from None
    return value


def decode_line(raw: bytes, line_number: int) -> str:
    """One manifest line's text; a line that is not UTF-8 is that line's problem, not the file's."""
    if line_number == 1 and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]  # editors on Windows start files so
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"line {line_number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None


class ManifestBytes:
    """Splits a manifest's bytes into lines, counting and digesting every byte on the way.

    The size, line count and SHA-256 identify the manifest a run labeled; `prefix_sha256` is the
    digest of its first `prefix_bytes` bytes, which tells an appended manifest from an edited one.
    """

    def __init__(self, prefix_bytes: int | None = None):
        self.size = self.lines = 0
        self._sha = hashlib.sha256()
        self._prefix = hashlib.sha256() if prefix_bytes is not None else None
        self._prefix_left = prefix_bytes or 0

    def split(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
        """(1-based line number, raw bytes without the newline) for each line."""
        rest = b""
        for chunk in chunks:
            self._count(chunk)
            rest += chunk
            *whole, rest = rest.split(b"\n")
            for raw in whole:
                self.lines += 1
                yield self.lines, raw
        if rest:
            self.lines += 1
            yield self.lines, rest

    def _count(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha.update(chunk)
        if self._prefix is not None and self._prefix_left > 0:
            self._prefix.update(chunk[: self._prefix_left])
            self._prefix_left -= min(len(chunk), self._prefix_left)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def prefix_sha256(self) -> str | None:
        return self._prefix.hexdigest() if self._prefix is not None else None

    def fingerprint(self) -> dict[str, Any]:
        return {"Bytes": self.size, "Lines": self.lines, "Sha256": self.sha256}


def iter_json_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for each non-blank line."""
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if text:
            yield number, text


def creation_date(now: datetime | None = None) -> str:
    """ISO 8601 with microseconds, as Ground Truth writes it (minutes where minutes belong)."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f")


@dataclass(frozen=True)
class Label:
    """One item's label, as the ledger keeps it."""

    class_id: Any  # the label value: a class index, or the task type's richer value (boxes)
    confidence: float
    human: bool
    job_name: str
    created: str
    iteration: int
    threshold: float | None = None  # the calibrated threshold an auto-label passed
    lower_bound: float | None = None  # its accuracy lower bound on validation
    support: int | None = None  # validation items behind that bound
    clicks: int | None = None  # a human label: the clicks people spent on it, when their tool counted them
    class_bound: bool = False  # the per-class promise: threshold, bound and support are the label's class's

    def to_json(self) -> dict[str, Any]:
        data = {
            "class": self.class_id,
            "confidence": self.confidence,
            "human": self.human,
            "job-name": self.job_name,
            "creation-date": self.created,
            "iteration": self.iteration,
        }
        if not self.human:
            data.update(threshold=self.threshold, **{"lower-bound": self.lower_bound, "support": self.support})
            if self.class_bound:
                data["class-bound"] = True
        elif self.clicks is not None:
            data["clicks"] = self.clicks
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Label":
        return cls(
            class_id=data["class"],
            confidence=float(data["confidence"]),
            human=bool(data["human"]),
            job_name=str(data["job-name"]),
            created=str(data["creation-date"]),
            iteration=int(data["iteration"]),
            threshold=data.get("threshold"),
            lower_bound=data.get("lower-bound"),
            support=data.get("support"),
            clicks=data.get("clicks"),
            class_bound=bool(data.get("class-bound", False)),
        )
