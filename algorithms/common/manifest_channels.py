"""Reading a training channel: a folder of augmented-manifest JSON Lines files.

SageMaker copies the channel's S3 prefix into `SM_CHANNEL_<NAME>`; each file (any name, in any
sub-folder; `.gz` files are read decompressed) holds one JSON object a line:

    {"labelloop-id": 17, "source-ref": "s3://bucket/x.png", "label": 3, "label-metadata": {...}}

Files are read in sorted path order so a run is reproducible. Every problem is reported as a
`ChannelError` naming the channel, the file and the line number.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from jsonlines_protocol import parse_json_object

ID_KEY = "labelloop-id"


class ChannelError(ValueError):
    """A channel file has a line the algorithm cannot use."""


@dataclass(frozen=True)
class Record:
    channel: str
    path: str
    line: int
    data: dict[str, Any]
    label: Any  # a class index, unless read_channel was given another `parse`; None when unlabeled

    @property
    def where(self) -> str:
        return f"{self.channel} channel file {self.path} line {self.line}"

    def error(self, problem: str) -> ChannelError:
        return ChannelError(f"{self.where}: {problem}")


def channel_dir(name: str) -> Path | None:
    """The folder of channel `name` (`SM_CHANNEL_TRAIN`), or None when the job has no such channel."""
    value = os.environ.get(f"SM_CHANNEL_{name.upper().replace('-', '_')}")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


def channel_files(directory: str | Path) -> list[Path]:
    """The channel's data files, sorted; hidden files (`.keep`, `.DS_Store`) are skipped."""
    root = Path(directory)
    files = []
    for path in root.rglob("*"):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="strict"), start=1):
            yield number, line


def parse_label(value: Any, num_classes: int) -> int:
    """The class index in a line's label attribute; ValueError says what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected an integer class index, got {json.dumps(value)[:80]}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer class index, got {value}")
    label = int(value)
    if not 0 <= label < num_classes:
        raise ValueError(f"class index {label} is out of range for num-classes={num_classes}")
    return label


def read_channel(
    name: str,
    directory: str | Path | None,
    *,
    label_attribute: str,
    num_classes: int,
    require_label: bool = True,
    parse: Callable[[Any, int], Any] | None = None,
) -> list[Record]:
    """Every line of the channel, in order; an absent channel folder gives no records.

    `parse(value, num_classes)` turns the label attribute's value into `Record.label` (default
    `parse_label`: a class index); a ValueError from it is reported with the file and line.
    """
    parse = parse or parse_label
    if directory is None:
        return []
    records: list[Record] = []
    for path in channel_files(directory):
        try:
            for number, text in _lines(path):
                if not text.strip():
                    continue
                where = f"{name} channel file {path} line {number}"
                data = parse_json_object(text, where, ChannelError)
                label = None
                if label_attribute in data:
                    try:
                        label = parse(data[label_attribute], num_classes)
                    except ValueError as exc:
                        raise ChannelError(f"{where}: label attribute {label_attribute!r}: {exc}") from None
                elif require_label:
                    raise ChannelError(f"{where}: missing label attribute {label_attribute!r}")
                records.append(Record(name, str(path), number, data, label))
        except UnicodeDecodeError as exc:
            raise ChannelError(f"{name} channel file {path}: not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError) as exc:
            raise ChannelError(f"{name} channel file {path}: cannot be read ({exc})") from None
    return records


def class_counts(records: list[Record], num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for record in records:
        if record.label is not None:
            counts[record.label] += 1
    return counts
