"""Examples of labeled items: how one item is drawn (an image as a thumbnail, a text as an
excerpt, by the run's task type) and which items the report shows."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from labelloop import tasks
from labelloop.report.accuracy import example_truth, true_class
from labelloop.report.jinja import environment, pct
from labelloop.report.run import Item, RunData

if TYPE_CHECKING:
    from markupsafe import Markup  # what Jinja2's autoescaping macros return

THUMB_PX = 96
BOX_PX = 384  # boxes are drawn on a copy about this large, then shrunk with the image
BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990"]
EXCERPT_CHARS = 180
MASK_ALPHA = 150  # a mask's classes show over the image, which still shows through

# An item's source (its manifest line, label removed) and, for labels that are not one class
# (boxes), the label value -> HTML.
ExampleView = Callable[[dict[str, Any], Any], "Markup"]


def _macros():
    return environment().get_template("examples.html").module


def thumbnail(ref: str, boxes: list[dict[str, Any]] | None = None, overlay: Any = None) -> str | None:
    """A data: URI of a small PNG of a local image, or None; `boxes` (Ground Truth annotations,
    in the image's pixels) drawn on it, a colour per class; `overlay` (an RGBA image of its size,
    a mask) laid over it."""
    if ref.startswith("s3://"):
        return None
    try:
        from PIL import Image

        with Image.open(ref) as image:
            image = image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy()
    except Exception:
        return None
    if boxes:
        image = _with_boxes(image.convert("RGB"), boxes)
    if overlay is not None and overlay.size == image.size:
        image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    if max(image.size) < THUMB_PX:  # small images (8x8 digits): scale up, keep the pixels sharp
        factor = max(1, THUMB_PX // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    image.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _with_boxes(image: Any, boxes: list[dict[str, Any]]) -> Any:
    from PIL import ImageDraw

    scale = max(1, BOX_PX // max(image.size))  # draw on a larger copy so thin lines survive the thumbnail
    image = image.resize((image.width * scale, image.height * scale))
    draw = ImageDraw.Draw(image)
    for box in boxes:
        try:
            x, y, w, h = (float(box[k]) * scale for k in ("left", "top", "width", "height"))
            colour = BOX_COLOURS[int(box.get("class_id", 0)) % len(BOX_COLOURS)]
        except (KeyError, TypeError, ValueError):
            continue
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=max(2, scale))
    return image


def image_example(source: dict[str, Any], value: Any = None) -> Markup:
    """The image `source-ref` names, as an embedded thumbnail; a placeholder when it cannot be read."""
    ref = source.get("source-ref")
    ref = ref if isinstance(ref, str) else ""
    uri = thumbnail(ref) if ref else None
    return _macros().image(uri, ref) if uri else _macros().missing(ref)


def image_boxes_example(source: dict[str, Any], value: Any = None) -> Markup:
    """The image with the label's boxes drawn on it (none for an item not labeled yet)."""
    ref = source.get("source-ref")
    ref = ref if isinstance(ref, str) else ""
    boxes = value.get("annotations") if isinstance(value, dict) else None
    uri = thumbnail(ref, boxes if isinstance(boxes, list) else None) if ref else None
    return _macros().image(uri, ref) if uri else _macros().missing(ref)


def _mask_overlay(value: Any) -> Any:
    """A mask label as a see-through RGBA image, each class in its colour; None if it is no mask.

    The value is a class map (a ledger's base64 PNG) or the path of a painted mask (an output
    manifest's, background white).
    """
    import numpy as np
    from PIL import Image

    from labelloop.tasks.semantic_segmentation import decode_mask, rgb_palette

    try:
        mask = decode_mask(value)
        rgb = rgb_palette(int(mask.max()))[mask]
        painted = mask != 0
    except ValueError:
        try:
            with Image.open(str(value)) as image:
                rgb = np.asarray(image.convert("RGB"))
        except Exception:  # not a readable image: the example is drawn without its mask
            return None
        painted = (rgb != rgb_palette(0)[0]).any(axis=2)  # anything but the background's colour
    alpha = np.where(painted, MASK_ALPHA, 0).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")


def image_mask_example(source: dict[str, Any], value: Any = None) -> Markup:
    """The image with the label's mask laid over it (none for an item not labeled yet)."""
    ref = source.get("source-ref")
    ref = ref if isinstance(ref, str) else ""
    uri = thumbnail(ref, overlay=_mask_overlay(value) if value is not None else None) if ref else None
    return _macros().image(uri, ref) if uri else _macros().missing(ref)


def text_example(source: dict[str, Any], value: Any = None) -> Markup:
    """The item's text: whole when short, else its start with the whole text folded beneath (never
    clipped); a placeholder for text kept elsewhere."""
    ref = source.get("source-ref")
    if "source" not in source and isinstance(ref, str):
        return _macros().missing(ref)
    text = str(source.get("source", ""))
    if len(text) <= EXCERPT_CHARS:
        return _macros().text(text, text)
    return _macros().folded(text[:EXCERPT_CHARS] + "…", text)


VIEWS: dict[str, ExampleView] = {"image": image_example, "image-boxes": image_boxes_example,
                                  "image-mask": image_mask_example, "text": text_example}


def example_view(task_type: str | None) -> ExampleView:
    """How an item of this task type is drawn (its `report_example`); text for a type not known here."""
    try:
        return VIEWS[tasks.get(str(task_type)).report_example]
    except ValueError:
        return text_example


@dataclass
class Example:
    body: Markup
    name: str | None  # the class, shown bold
    note: str
    true_class: str | None = None  # set when the label is wrong: what the true labels say


@dataclass
class ExampleGroup:
    title: str
    note: str
    examples: list[Example]


def _iter_note(iteration: int | None) -> str:
    if iteration is None:
        return ""
    return " · input" if iteration == 0 else f" · it. {iteration}"


def _agreement(confidence: float | None) -> str:
    return "" if confidence is None or confidence >= 0.95 else f" · agreement {pct(confidence)}"


def example_groups(data: RunData) -> list[ExampleGroup]:
    """Auto-labels, the worst-case tail, human labels and the batch waiting for people, each with a
    few examples; a label the true labels (when the run had them) contradict is marked."""
    view = example_view(data.task_type)
    labels = data.labels
    groups = []
    auto, tail, human = labels.auto_examples(), labels.tail_examples(), labels.human_examples()
    truth = example_truth(data, auto + tail + human)
    above = labels.auto - labels.tail
    if auto:
        groups.append(ExampleGroup(
            "Auto-labeled", f"the {len(auto)} least confident of {above:,} above the threshold, closest to it first",
            [_example(view, i, f" {pct(i.confidence)}{_iter_note(i.iteration)}", truth) for i in auto]))
    if tail:
        groups.append(ExampleGroup(
            "Worst-case tail",
            f"{len(tail)} of {labels.tail:,} auto-labeled below the threshold: the bound's slack above the target pays "
            "for them even if every one is wrong",
            [_example(view, i, f" {pct(i.confidence)}{_iter_note(i.iteration)}", truth) for i in tail]))
    if human:
        groups.append(ExampleGroup(
            "Routed to humans", f"{len(human)} of {labels.human:,} human labels, newest first",
            [_example(view, i, _iter_note(i.iteration) + _agreement(i.confidence), truth) for i in human]))
    if data.pending:
        groups.append(ExampleGroup(
            "Waiting for people", f"{len(data.pending)} of {data.pending_count:,} items in the current human batch",
            [Example(view(i.source), None, "waiting for people") for i in data.pending]))
    return groups


def _example(view: ExampleView, item: Item, note: str, truth: dict[str, str]) -> Example:
    true = true_class(truth, item) if item.class_id is not None else None  # boxes: scored by IoU, not marked
    wrong = true if true is not None and true != item.class_name else None
    name = item.class_name or (_box_count(item.value) if isinstance(item.value, dict) else "")
    return Example(view(item.source, item.value), name, note, wrong)


def _box_count(value: Any) -> str:
    boxes = value.get("annotations") if isinstance(value, dict) else None
    n = len(boxes) if isinstance(boxes, list) else 0
    return "no objects" if n == 0 else f"{n} box" + ("es" if n > 1 else "")
