"""A person's own data as a prepared dataset: a folder of images, or a CSV file of texts.

- A folder with one sub-folder per class (`pets/cat/*.jpg`, `pets/dog/*.jpg`): the sub-folders
  name the classes, and the labels they imply go to the hidden truth file.
- A folder of images without sub-folders: unlabeled; the classes come from `classes`.
- A CSV file with a header row: a text column and, optionally, a label column whose labels go
  to the truth file; without one, the classes come from `classes`.

The layout is the public datasets' (see `labelloop.datasets`): manifest.jsonl lists every item
unlabeled, labels.json names the classes, truth.jsonl ({"key", "label"} a line) is written only
when the labels are known and is read only by simulated annotators and the evaluation, never by
the run. Images stay where they are; the manifest names them by absolute path.

Bad input is an error naming the file (and the CSV line) before anything is written.
"""

from __future__ import annotations

import contextlib
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from labelloop.datasets.common import (
    LABELS_NAME,
    MANIFEST_NAME,
    TRUTH_NAME,
    atomic_write_lines,
    label_config_json,
    seeded_subset,
    write_dataset,
)
from labelloop.input_checks import MAX_TEXT_BYTES

IMAGE_TASK = "image-classification"
TEXT_TASK = "text-classification"


class PrepareError(ValueError):
    """The folder or file cannot be prepared as it is; the message names where and why."""


@dataclass(frozen=True)
class OwnDataset:
    manifest: Path
    label_config: Path
    truth: Path | None  # None: the labels are not known (people will give them)
    task_type: str
    class_names: list[str]
    count: int
    class_counts: dict[str, int] = field(default_factory=dict)  # empty when the labels are not known
    notes: list[str] = field(default_factory=list)  # what was left out, and why


# ---------------------------------------------------------------------------------------------
# A folder of images


def image_extensions() -> set[str]:
    """File endings of the image formats Pillow can read (what the image algorithm decodes with)."""
    from PIL import Image

    Image.init()
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and _visible(path, folder):
            yield path


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()  # headers and chunks, no pixels decoded: cheap
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad file
        raise PrepareError(f"{path}: not a readable image ({type(exc).__name__}: {str(exc)[:160]})") from None


def prepare_from_folder(folder: Path | str, out: Path | str, classes: Sequence[str] | None = None,
                        limit: int | None = None, seed: int = 0) -> OwnDataset:
    """Prepare a folder of images: one sub-folder per class (labels known), or images only."""
    folder, out = Path(folder).resolve(), Path(out)
    if not folder.is_dir():
        raise PrepareError(f"{folder}: no such folder")
    extensions = image_extensions()
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
    is_image = lambda p: p.suffix.lower() in extensions  # noqa: E731
    skipped: list[Path] = []
    items: list[tuple[Path, str | None]] = []
    if subfolders:
        if any(is_image(p) for p in loose):
            shown = ", ".join(p.name for p in loose if is_image(p))[:200]
            raise PrepareError(
                f"{folder} holds class sub-folders ({', '.join(p.name for p in subfolders)}) and also images "
                f"beside them ({shown}): move each image into its class's sub-folder"
            )
        skipped += loose
        for sub in subfolders:
            files = list(_files(sub))
            images = [p for p in files if is_image(p)]
            skipped += [p for p in files if not is_image(p)]
            if not images:
                raise PrepareError(f"{sub}: no images in this class sub-folder (looked for {_shown(extensions)})")
            items += [(p, sub.name) for p in images]
        found = [p.name for p in subfolders]
        if len(found) < 2:
            raise PrepareError(f"{folder}: one class sub-folder ({found[0]}); a classification needs at least two classes")
        names = _class_order(found, classes, f"{folder}: the sub-folders")
    else:
        images = [p for p in loose if is_image(p)]
        skipped += [p for p in loose if not is_image(p)]
        if not images:
            raise PrepareError(f"{folder}: no images found (looked for {_shown(extensions)})")
        if not classes:
            raise PrepareError(
                f"{folder} has no class sub-folders, so the images are unlabeled: name the classes with "
                "--classes (e.g. --classes cat,dog), or put each image in a sub-folder named after its class"
            )
        names = _check_classes(classes)
        items = [(p, None) for p in images]
    items = [items[i] for i in seeded_subset(len(items), limit, seed)]
    for path, _ in items:
        _check_image(path)
    notes = [f"left out {len(skipped)} file(s) that are not images: {_listed(skipped)}"] if skipped else []
    lines = [{"source-ref": str(path)} for path, _ in items]
    labels = [label for _, label in items]
    return _write(out, lines, labels, names, IMAGE_TASK, notes)


def _shown(extensions: set[str]) -> str:
    common = [e for e in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp") if e in extensions]
    return ", ".join(common) + ", ..."


def _listed(paths: Sequence[Path], most: int = 5) -> str:
    shown = ", ".join(str(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


# ---------------------------------------------------------------------------------------------
# A CSV file of texts


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def prepare_from_csv(path: Path | str, out: Path | str, text_column: str = "text", label_column: str | None = None,
                     classes: Sequence[str] | None = None, limit: int | None = None, seed: int = 0) -> OwnDataset:
    """Prepare a CSV file (header row first): a text column and, optionally, a label column.

    Without `label_column`, a column named "label" is the label column if there is one.
    """
    path, out = Path(path).resolve(), Path(out)
    rows: list[tuple[int, str, str | None]] = []  # (line, text, label)
    start = 1  # the line the row being read starts on
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle, _field_limit(MAX_TEXT_BYTES):
            reader = csv.DictReader(handle)
            header = reader.fieldnames
            if not header:
                raise PrepareError(f"{path}: empty file (expected a header row naming a {text_column!r} column)")
            if text_column not in header:
                raise PrepareError(
                    f"{path}: no column {text_column!r} in the header row (columns: {', '.join(header)}); "
                    "name the text column with --text-column"
                )
            if label_column is not None and label_column not in header:
                raise PrepareError(f"{path}: no column {label_column!r} (--label-column) in the header row "
                                   f"(columns: {', '.join(header)})")
            if label_column is None and "label" in header and text_column != "label":
                label_column = "label"
            start = reader.line_num + 1
            for row in reader:
                text, label = row.get(text_column), row.get(label_column) if label_column else None
                if text is None or not text.strip():
                    raise PrepareError(f"{path}: line {start}: empty text in column {text_column!r}")
                if label_column:
                    label = (label or "").strip()
                    if not label:
                        raise PrepareError(
                            f"{path}: line {start}: empty label in column {label_column!r} (every row needs one; "
                            "to prepare unlabeled texts, remove the column)"
                        )
                rows.append((start, text, label))
                start = reader.line_num + 1
    except FileNotFoundError:
        raise PrepareError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PrepareError(f"{path}: a folder, not a CSV file (for a folder of images use --from-folder)") from None
    except UnicodeDecodeError:
        raise PrepareError(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from None
    except csv.Error as exc:
        raise PrepareError(f"{path}: line {start}: not valid CSV ({exc})") from None
    if not rows:
        raise PrepareError(f"{path}: no rows under the header row")
    rows, notes = _without_repeats(path, rows)
    if label_column:
        found = sorted({label for _, _, label in rows})
        names = _class_order(found, classes, f"{path}: the labels in column {label_column!r}", rows=rows, where=path)
    elif classes:
        names = _check_classes(classes)
    else:
        raise PrepareError(
            f"{path} has no label column, so the texts are unlabeled: name the classes with --classes "
            "(e.g. --classes billing,bug,other), or add a 'label' column"
        )
    rows = [rows[i] for i in seeded_subset(len(rows), limit, seed)]
    return _write(out, [{"source": text} for _, text, _ in rows], [label for _, _, label in rows], names, TEXT_TASK, notes)


def _without_repeats(path: Path, rows: list[tuple[int, str, str | None]]) -> tuple[list, list[str]]:
    """One item per text (a text is its own key): a repeat with the same label is left out, one
    with another label is an error."""
    first: dict[str, tuple[int, str | None]] = {}
    kept, repeats = [], 0
    for line, text, label in rows:
        if text in first:
            if first[text][1] != label:
                raise PrepareError(
                    f"{path}: line {line} repeats the text of line {first[text][0]} with another label "
                    f"({label!r}, there {first[text][1]!r}); keep one of them"
                )
            repeats += 1
            continue
        first[text] = (line, label)
        kept.append((line, text, label))
    return kept, ([f"left out {repeats} row(s) repeating an earlier row's text"] if repeats else [])


# ---------------------------------------------------------------------------------------------
# Classes and writing


def _check_classes(classes: Sequence[str]) -> list[str]:
    names = [c.strip() for c in classes]
    if any(not c for c in names):
        raise PrepareError(f"--classes {','.join(classes)!r}: a class name is empty")
    if len(set(names)) != len(names):
        raise PrepareError(f"--classes {','.join(classes)!r}: a class is named twice")
    if len(names) < 2:
        raise PrepareError(f"--classes {','.join(classes)!r}: a classification needs at least two classes")
    return names


def _class_order(found: list[str], classes: Sequence[str] | None, what: str,
                 rows: Sequence[tuple[int, str, str | None]] = (), where: Path | None = None) -> list[str]:
    """The classes in class-index order: --classes' order when given (it must name exactly the
    classes found), else sorted."""
    if len(found) < 2:
        raise PrepareError(f"{what} name one class ({found[0]!r}); a classification needs at least two")
    if not classes:
        return found
    names = _check_classes(classes)
    unknown = [c for c in found if c not in names]
    if unknown:
        line = next((ln for ln, _, label in rows if label == unknown[0]), None)
        hint = next((f" (did you mean {n!r}?)" for n in names if n.lower() == unknown[0].lower()), "")
        at = f"{where}: line {line}: label {unknown[0]!r} is" if line else f"{what} include {unknown[0]!r},"
        raise PrepareError(f"{at} not one of --classes {', '.join(names)}{hint}")
    return names


def _write(out: Path, lines: list[dict], labels: list[str | None], names: list[str], task_type: str,
           notes: list[str]) -> OwnDataset:
    if all(label is not None for label in labels):
        prepared = write_dataset(out, lines, labels, class_names=names, task_type=task_type)
        return OwnDataset(prepared.manifest, prepared.label_config, prepared.truth, task_type, names, prepared.count,
                          prepared.class_counts, notes)
    out.mkdir(parents=True, exist_ok=True)
    # A truth file of an earlier preparation in this folder would no longer match: remove it first.
    (out / TRUTH_NAME).unlink(missing_ok=True)
    atomic_write_lines(out / LABELS_NAME, [json.dumps(label_config_json(names), indent=2)])
    atomic_write_lines(out / MANIFEST_NAME, (json.dumps(line, ensure_ascii=False) for line in lines))
    return OwnDataset(out / MANIFEST_NAME, out / LABELS_NAME, None, task_type, names, len(lines), {}, notes)
