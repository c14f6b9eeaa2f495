"""Shared pieces of the dataset preparers: the result type, truth and label-config files,
atomic writes, seeded subsets and PNG writing.

Layout of a prepared dataset directory `out`:

    out/manifest.jsonl   Ground Truth input manifest (no labels)
    out/truth.jsonl      hidden true labels: {"key": item_key(line), "label": class name}
    out/labels.json      Ground Truth label category config
    out/images/...       PNGs, for image datasets
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from labelloop.manifest import ManifestError, item_key
from labelloop.storage import JsonLinesError, atomic_file, json_lines

MANIFEST_NAME = "manifest.jsonl"
TRUTH_NAME = "truth.jsonl"
LABELS_NAME = "labels.json"
IMAGES_DIR = "images"
LABEL_CONFIG_VERSION = "2018-11-28"
SHARD_SIZE = 10_000  # at most this many files per folder under images/

# Below this many images a process pool costs more than it saves.
_POOL_THRESHOLD = 4_000
_POOL_CHUNK = 1_000


@dataclass(frozen=True)
class PreparedDataset:
    """What a preparer wrote, and what a caller needs to start a labeling run on it."""

    manifest: Path
    truth: Path
    label_config: Path
    task_type: str
    class_names: list[str]
    count: int
    skipped_duplicates: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Reading truth and label configs


def load_truth(path: Path | str) -> dict[str, str]:
    """Read truth.jsonl into {item key: class name}.

    Raises ManifestError (a ValueError) naming the file and line for a line that is not a JSON
    object with non-empty string "key" and "label", or that repeats a key.
    """
    path = Path(path)
    truth: dict[str, str] = {}
    with path.open("r", encoding="utf-8") as handle:
        try:
            for number, value in json_lines(handle, f"{path}:"):
                where = f"{path}: line {number}"
                _check_truth_line(value, where, truth)
                truth[value["key"]] = value["label"]
        except JsonLinesError as exc:
            raise ManifestError(str(exc)) from None
    return truth


def _check_truth_line(value: Any, where: str, truth: dict[str, str]) -> None:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(value).__name__}")
        key, label = value.get("key"), value.get("label")
        if not isinstance(key, str) or not key:
            raise ManifestError(f"{where}: 'key' must be a non-empty string")
        if not isinstance(label, str) or not label:
            raise ManifestError(f"{where}: 'label' must be a non-empty string")
        if key in truth:
            raise ManifestError(f"{where}: key {key!r} appears more than once")


def read_label_config(path: Path | str) -> list[str]:
    """Class names, in class-index order, from a Ground Truth label category config.

    The format is {"document-version": "2018-11-28", "labels": [{"label": "name"}, ...]}.
    Raises ValueError naming the file and the problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: label category config not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: label category config is a directory, not a file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: label category config is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'labels' list, got {type(data).__name__}")
    version = data.get("document-version")
    if version is not None and not isinstance(version, str):
        raise ValueError(f"{path}: 'document-version' must be a string")
    labels = data.get("labels")
    if labels is None:
        raise ValueError(f"{path}: no 'labels' list")
    if not isinstance(labels, list):
        raise ValueError(f"{path}: 'labels' must be a list, got {type(labels).__name__}")
    if not labels:
        raise ValueError(f"{path}: 'labels' is empty; at least one label is needed")
    names: list[str] = []
    for index, entry in enumerate(labels):
        name = entry.get("label") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"{path}: labels[{index}] must be an object whose 'label' is a non-empty string, got {entry!r}"
            )
        if name in names:
            raise ValueError(f"{path}: duplicate label {name!r} (labels[{names.index(name)}] and labels[{index}])")
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write lines (each without its newline) to `path`, atomically (see `storage.atomic_file`)."""
    with atomic_file(path, "w") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")


def label_config_json(class_names: Sequence[str]) -> dict[str, Any]:
    return {"document-version": LABEL_CONFIG_VERSION, "labels": [{"label": name} for name in class_names]}


def seeded_subset(total: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of the items to keep, in source order: all of them, or `limit` drawn at random."""
    if limit is None:
        return np.arange(total)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if limit >= total:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=int(limit), replace=False))


def write_dataset(
    out: Path,
    lines: Sequence[dict[str, Any]],
    labels: Sequence[str],
    *,
    class_names: Sequence[str],
    task_type: str,
    skipped_duplicates: int = 0,
) -> PreparedDataset:
    """Write truth.jsonl, labels.json and manifest.jsonl (in that order, each atomically).

    The manifest goes last: it is what a run reads, and it only appears once its truth does.
    """
    if len(lines) != len(labels):
        raise ValueError(f"{len(lines)} manifest lines but {len(labels)} labels")
    known = set(class_names)
    keys: set[str] = set()
    truth_lines = []
    for line, label in zip(lines, labels):
        if label not in known:
            raise ValueError(f"label {label!r} is not one of the classes {list(class_names)}")
        key = item_key(line)
        if key in keys:
            raise ValueError(f"two items have the same key {key!r}")
        keys.add(key)
        truth_lines.append(json.dumps({"key": key, "label": label}, ensure_ascii=False))

    out.mkdir(parents=True, exist_ok=True)
    manifest, truth, label_config = out / MANIFEST_NAME, out / TRUTH_NAME, out / LABELS_NAME
    atomic_write_lines(truth, truth_lines)
    atomic_write_lines(label_config, [json.dumps(label_config_json(class_names), indent=2)])
    atomic_write_lines(manifest, (json.dumps(line, ensure_ascii=False) for line in lines))
    counts = Counter(labels)
    return PreparedDataset(
        manifest=manifest,
        truth=truth,
        label_config=label_config,
        task_type=task_type,
        class_names=list(class_names),
        count=len(lines),
        skipped_duplicates=skipped_duplicates,
        class_counts={name: counts.get(name, 0) for name in class_names},
    )


# ---------------------------------------------------------------------------------------------
# Images


def image_relpaths(count: int) -> list[str]:
    """Relative paths under images/ for `count` images: zero-padded by index, and sharded into
    folders of at most SHARD_SIZE files when there are more than SHARD_SIZE."""
    width = max(5, len(str(max(count - 1, 0))))
    if count <= SHARD_SIZE:
        return [f"{i:0{width}d}.png" for i in range(count)]
    shard_width = max(3, len(str((count - 1) // SHARD_SIZE)))
    return [f"{i // SHARD_SIZE:0{shard_width}d}/{i:0{width}d}.png" for i in range(count)]


def _write_pngs(root: str, relpaths: Sequence[str], images: np.ndarray) -> None:
    from PIL import Image

    for rel, pixels in zip(relpaths, images):
        Image.fromarray(pixels).save(os.path.join(root, rel), format="PNG")


def write_images(out: Path, images: np.ndarray, workers: int | None = None, folder: str = IMAGES_DIR) -> list[Path]:
    """Write uint8 images, grayscale (n, height, width) or RGB (n, height, width, 3), as PNGs under
    out/<folder>/ (images/; masks are images too).

    The PNGs are written into a temp folder that then replaces out/<folder>, so a re-run never
    leaves images of an earlier run behind. Returns the absolute paths, in order.
    """
    if images.dtype != np.uint8 or not (images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)):
        raise ValueError(f"expected uint8 images of shape (n, height, width[, 3]), got {images.dtype} {images.shape}")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    final = out / folder
    tmp = out / f".{folder}.tmp-{os.getpid()}"
    old = out / f".{folder}.old-{os.getpid()}"
    relpaths = image_relpaths(len(images))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for shard in sorted({os.path.dirname(rel) for rel in relpaths} - {""}):
            (tmp / shard).mkdir()
        if workers is None:
            workers = min(os.cpu_count() or 1, 8)
        if workers > 1 and len(images) >= _POOL_THRESHOLD:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [
                    pool.submit(_write_pngs, str(tmp), relpaths[start : start + _POOL_CHUNK], images[start : start + _POOL_CHUNK])
                    for start in range(0, len(images), _POOL_CHUNK)
                ]
                for future in futures:
                    future.result()
        else:
            _write_pngs(str(tmp), relpaths, images)
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return [final / rel for rel in relpaths]
