"""True labels for simulated annotators and scoring (`--truth`), in the forms people have them.

Two formats, told apart per file by its first record:

- `labelloop prepare`'s truth file: `{"key": ..., "label": class name}` a line, where the key is
  an image's `source-ref` or, for a text, `sha256:<hex digest of the text>` (see
  `labelloop.manifest.item_key`);
- a labeled Ground Truth manifest (an output manifest, or any manifest labeled the same way):
  `source` or `source-ref` lines whose label attribute's `<attribute>-metadata` holds the
  `class-name` (classification), a `class-map` (bounding boxes: the label is then the boxes,
  each named by its class) or an `internal-color-map` (semantic segmentation: the attribute,
  `<name>-ref`, names a mask PNG painted in the map's colours). Lines without the attribute
  (objects Ground Truth failed to label) are skipped.

A true label is a class name; for boxes `{"image_size": [...], "annotations": [{"class-name",
"left", "top", "width", "height"}, ...]}`; for a mask `{"mask-ref": uri, "internal-color-map":
{...}}`, read only when an item's answer is wanted. The task type turns it into its label value
(`TaskType.truth_value`).

`check_truth` compares the truth with the run's manifest and categories before the run starts,
so a mistyped label or keys that match nothing stop the run before anyone is paid.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from labelloop.manifest import ManifestError, item_key

PREPARE_FORMAT = "labelloop truth file"
MANIFEST_FORMAT = "Ground Truth labeled manifest"
EXAMPLES = 3  # first offending keys or labels an error names


class TruthError(ManifestError):
    """The truth file is unusable or does not fit the run; the message says where and why."""


@dataclass
class Truth:
    labels: dict[str, Any]  # item key -> class name, named boxes, or a mask file and its colours
    lines: dict[str, int]  # item key -> line number in the file (for errors)
    format: str
    attribute: str | None = None  # the label attribute read, for a Ground Truth manifest
    skipped: int = 0  # manifest lines without a label (not counted as truth)


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = path.open("r", encoding="utf-8-sig")
    except FileNotFoundError:
        raise TruthError(f"--truth {path}: no such file") from None
    except IsADirectoryError:
        raise TruthError(f"--truth {path}: is a folder, not a file") from None
    with handle:
        try:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                try:
                    yield number, json.loads(text)
                except (json.JSONDecodeError, RecursionError) as exc:
                    reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                    raise TruthError(f"--truth {path} line {number}: not valid JSON ({reason})") from None
        except UnicodeDecodeError:
            raise TruthError(f"--truth {path}: not UTF-8 text") from None


# The metadata keys that name a label's classes: classification, bounding boxes, semantic segmentation.
NAMING_KEYS = ("class-name", "class-map", "internal-color-map")


def _manifest_attribute(line: dict[str, Any], preferred: str | None) -> str | None:
    """The label attribute of a labeled manifest line: `preferred` if it has it, else the one
    whose metadata names a class."""
    if preferred and isinstance(line.get(f"{preferred}-metadata"), dict) and preferred in line:
        return preferred
    found = [k[: -len("-metadata")] for k, v in line.items()
             if k.endswith("-metadata") and isinstance(v, dict) and any(n in v for n in NAMING_KEYS)
             and k[: -len("-metadata")] in line]
    return found[0] if len(found) == 1 else None


def read_truth(path: Path | str, attribute: str | None = None) -> Truth:
    """Read a truth file of either format (see the module's doc); errors name the line."""
    path = Path(path)
    truth: Truth | None = None
    for number, value in _records(path):
        where = f"--truth {path} line {number}"
        if not isinstance(value, dict):
            raise TruthError(f"{where}: expected a JSON object, got {type(value).__name__}")
        if truth is None:
            if "key" in value and "label" in value:
                truth = Truth({}, {}, PREPARE_FORMAT)
            elif "source" in value or "source-ref" in value:
                truth = Truth({}, {}, MANIFEST_FORMAT)
            else:
                raise TruthError(
                    f"{where}: neither a truth line ({{\"key\": ..., \"label\": ...}}) nor a labeled manifest line "
                    "('source' or 'source-ref' with '<attribute>' and '<attribute>-metadata')")
        if truth.format == PREPARE_FORMAT:
            key, label = value.get("key"), value.get("label")
            if not isinstance(key, str) or not key:
                raise TruthError(f"{where}: 'key' must be a non-empty string")
            if not isinstance(label, str) or not label:
                raise TruthError(f"{where}: 'label' must be a non-empty string")
        else:
            try:
                key = item_key(value)
            except ManifestError:
                raise TruthError(f"{where}: a labeled manifest line needs 'source' or 'source-ref'") from None
            name = _manifest_attribute(value, truth.attribute or attribute)
            if name is None:
                truth.skipped += 1  # Ground Truth lists the objects it could not label without a label
                continue
            if truth.attribute is None:
                truth.attribute = name
            meta = value[f"{name}-metadata"]
            if "internal-color-map" in meta:
                label = _named_mask(value[name], meta["internal-color-map"], where)
            else:
                label = meta.get("class-name") if "class-map" not in meta else _named_boxes(value[name], meta["class-map"], where)
            if not isinstance(label, (str, dict)) or not label:
                raise TruthError(f"{where}: '{name}-metadata' has no 'class-name'")
        if key in truth.labels:
            raise TruthError(f"{where}: item {_short(key)} already has a label (line {truth.lines[key]})")
        truth.labels[key] = label
        truth.lines[key] = number
    if truth is None:
        raise TruthError(f"--truth {path}: the file is empty")
    if not truth.labels:
        raise TruthError(f"--truth {path}: no line of this {truth.format} carries a label")
    return truth


def _named_boxes(value: Any, class_map: Any, where: str) -> dict[str, Any]:
    """Boxes whose class ids are named by the line's own class-map (ids of another job mean nothing here)."""
    if not isinstance(value, dict) or not isinstance(value.get("annotations"), list) or not isinstance(class_map, dict):
        raise TruthError(f"{where}: a box label needs 'annotations' and its metadata a 'class-map'")
    named = []
    for n, box in enumerate(value["annotations"]):
        if not isinstance(box, dict) or str(box.get("class_id")) not in class_map:
            raise TruthError(f"{where}: box {n} has a class_id its class-map does not name")
        named.append({**{k: v for k, v in box.items() if k != "class_id"}, "class-name": str(class_map[str(box["class_id"])])})
    return {"image_size": value.get("image_size"), "annotations": named}


def _named_mask(ref: Any, colors: Any, where: str) -> dict[str, Any]:
    """A mask file and the colour map that names its classes (the file is read when it is needed)."""
    if not isinstance(ref, str) or not ref:
        raise TruthError(f"{where}: a mask label is the URI of its PNG, got {str(ref)[:80]!r}")
    if not isinstance(colors, dict) or not all(isinstance(e, dict) and isinstance(e.get("class-name"), str)
                                               for e in colors.values()):
        raise TruthError(f"{where}: its internal-color-map must map indices to {{class-name, hex-color}}")
    return {"mask-ref": ref, "internal-color-map": colors}


def names_in(label: Any) -> list[str]:
    """The class names a true label uses (for a mask, those its colour map names but background)."""
    if isinstance(label, dict) and "internal-color-map" in label:
        return [e["class-name"] for e in label["internal-color-map"].values() if e["class-name"] != "BACKGROUND"]
    if isinstance(label, dict):
        return [a["class-name"] for a in label.get("annotations", [])]
    return [label]


def _short(key: str) -> str:
    return repr(key if len(key) <= 60 else key[:57] + "...")


def did_you_mean(label: str, classes: list[str]) -> str:
    same = [c for c in classes if c.casefold() == label.casefold()]
    close = same or difflib.get_close_matches(label, classes, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class TruthCheck:
    covered: int  # manifest items that have a true label
    items: int  # manifest items (lines that name an item)

    def line(self, path: Path | str, truth: Truth, simulated: bool = True) -> str:
        share = f"{100 * self.covered / self.items:.1f} %" if self.items else "–"
        line = f"true labels: {self.covered} of the manifest's {self.items} items ({share}) from {path} ({truth.format})"
        if simulated and self.covered < self.items:
            line += f"; simulated annotators fail the {self.items - self.covered} items without one (counted as failed)"
        return line


def _manifest_keys(lines: Iterable[str]) -> list[str]:
    """The keys of the manifest's items; lines the run will reject anyway are left to it."""
    keys = []
    for text in lines:
        try:
            value = json.loads(text)
            keys.append(item_key(value))
        except (ValueError, ManifestError, TypeError, AttributeError, RecursionError):
            continue
    return keys


def check_truth(truth: Truth, path: Path | str, manifest_lines: Iterable[str], classes: list[str]) -> TruthCheck:
    """Raise TruthError for labels outside `classes` or keys no manifest item has; else the coverage."""
    known = set(classes)
    unknown: dict[str, int] = {}
    for key, label in truth.labels.items():
        for name in names_in(label):
            if name not in known:
                unknown.setdefault(name, truth.lines[key])
    if unknown:
        shown = "; ".join(f"line {n}: {label!r}{did_you_mean(label, classes)}"
                          for label, n in sorted(unknown.items(), key=lambda kv: kv[1])[:EXAMPLES])
        more = f" (and {len(unknown) - EXAMPLES} more labels)" if len(unknown) > EXAMPLES else ""
        raise TruthError(f"--truth {path}: labels that are not categories of this job ({', '.join(classes)}): "
                         f"{shown}{more}")
    keys = set(_manifest_keys(manifest_lines))
    if not keys:  # an empty (or wholly invalid) manifest: Bootstrap says so, more usefully than stray keys
        return TruthCheck(covered=0, items=0)
    stray = [k for k in truth.labels if k not in keys]
    if stray:
        first = ", ".join(f"line {truth.lines[k]}: {_short(k)}" for k in stray[:EXAMPLES])
        hint = (" Text items are keyed 'sha256:<hex digest of the text>' (as `labelloop prepare` writes them), images by "
                "their source-ref; a labeled Ground Truth manifest of the same items works too.")
        raise TruthError(f"--truth {path}: {len(stray)} of its {len(truth.labels)} keys match no item of the manifest "
                         f"({first}).{hint}")
    return TruthCheck(covered=sum(k in truth.labels for k in keys), items=len(keys))


def truth_for_run(path: Path | str, execution_input: dict[str, Any], simulated: bool = True) -> tuple[dict[str, Any], str]:
    """The truth a local run reads ({key: true label}) and the line saying what it covers; checked
    against the run's manifest and categories (TruthError before anything starts)."""
    from labelloop.config import parse_label_category_config

    classes = execution_input.get("LabelCategories")
    if not classes:
        config_uri = execution_input["LabelCategoryConfigUri"]
        try:
            classes = parse_label_category_config(json.loads(Path(config_uri).read_text(encoding="utf-8")), config_uri)
        except (OSError, ValueError) as exc:  # a ConfigurationError is a ValueError
            raise TruthError(f"--label-config {config_uri}: {exc}") from None
    truth = read_truth(path, execution_input.get("LabelAttributeName"))
    with open(execution_input["ManifestUri"], encoding="utf-8-sig", errors="replace") as manifest:
        check = check_truth(truth, path, manifest, list(classes))
    return truth.labels, check.line(path, truth, simulated)
