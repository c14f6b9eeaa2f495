"""Semantic segmentation (Ground Truth `groundtruth/semantic-segmentation`): every pixel gets a class.

In a manifest the label is a file: `<attribute>` (Ground Truth wants its name to end in "-ref")
holds the URI of an RGB PNG painted with the colours of the metadata's `internal-color-map`
({"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence"}, "1": ...}, category
k at "k+1"). Reading one maps colours to this job's categories *by name*, so a mask from another
job is read right or refused, never renumbered.

Everywhere else (ledger, training channels, worker answers) a label value is a class map: a
greyscale (mode L) PNG, pixel = class id (0 background, k + 1 the job's category k), at the
image's size, inline as a `data:image/png;base64,` URL. JSON carries it as a string, a canvas of
blobs in a few hundred bytes, and as a URL it is still a reference: a training channel's
`<attribute>` (`...-ref`) names its mask as Ground Truth's does, only inline. The segmenter's
reply carries the same PNG as bare base64 (`parse_output`).

Quality is Ground Truth's: per image, the mean over the classes present in either mask
(background excluded) of their IoU; an image both call all background scores 1. The auto-labels
are certified on its mean (0.7 by default, the service's) with Hoeffding–Bentkus.
"""

from __future__ import annotations

import base64
import binascii
import colorsys
import io
import math
from typing import Any, Sequence

import numpy as np

from labelloop import storage
from labelloop.manifest import Label
from labelloop.tasks import register
from labelloop.tasks.semantic_segmentation import clicks as segmentation_clicks
from labelloop.tasks.base import Framework, Simulated, TaskType
from labelloop.tasks.semantic_segmentation.people import click_mask, ragged, vote

BACKGROUND = "BACKGROUND"
BACKGROUND_HEX = "#ffffff"
# The first ten categories' colours: Ground Truth's documented examples use these (matplotlib's tab10).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MAX_SIDE = 8192  # pixels a side: refuses decompression bombs before their pixels are read
# The reply's mask PNG is at most this many bytes (base64 adds a third): what sizes transform
# requests under the model server's reply limit. A 128 x 128 mask of pure noise is 16.5 KB.
MAX_MASK_PNG_BYTES = 32_768
MAX_MASK_CHARS = 4 * math.ceil(MAX_MASK_PNG_BYTES / 3)
MAX_CANDIDATES, MAX_CANDIDATE_NAME = 8, 40  # the reply's `confidences`: signals measured side by side
_NUMBER_CHARS = 23  # longest json.dumps of a float
DATA_URL = "data:image/png;base64,"


# ---------------------------------------------------------------- class maps as PNGs


def encode_mask(mask: np.ndarray) -> str:
    """A class map (2-D, values 0..255) as the base64 text of a mode-L PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_value(mask: np.ndarray) -> str:
    """A class map as a label value: its PNG as a data: URL."""
    return DATA_URL + encode_mask(mask)


def _as_value(text: str) -> str:
    """A checked PNG, bare base64 or a data: URL, as a label value."""
    return text if text.startswith(DATA_URL) else DATA_URL + text


def _image(data: bytes, what: str):
    """The PNG in `data`, opened (pixels not read yet); ValueError when it is none or too large."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Exception:  # PIL raises several kinds for bytes that are no image
        raise ValueError(f"{what} is not a PNG image") from None
    if image.format != "PNG":
        raise ValueError(f"{what} is a {image.format} image, not a PNG")
    if not (0 < image.width <= MAX_SIDE and 0 < image.height <= MAX_SIDE):
        raise ValueError(f"{what} is {image.width} x {image.height} pixels; at most {MAX_SIDE} a side")
    return image


def decode_mask(value: Any, n_classes: int | None = None, what: str = "mask") -> np.ndarray:
    """The class map a value holds (base64 PNG text, or a `data:image/png;base64,` URL).

    `n_classes`: the job's categories; class ids above it are refused. ValueError says what is wrong.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be the base64 text of a PNG, got {type(value).__name__}")
    text = value[len(DATA_URL):] if value.startswith(DATA_URL) else value
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64 text") from None
    image = _image(data, what)
    if image.mode != "L":
        raise ValueError(f"{what} must be a greyscale (mode L) PNG whose pixels are class ids, got mode {image.mode}")
    try:
        mask = np.asarray(image, dtype=np.uint8)
    except Exception:
        raise ValueError(f"{what}: the PNG's pixel data is damaged") from None
    if n_classes is not None and mask.size and int(mask.max()) > n_classes:
        raise ValueError(f"{what} has class id {int(mask.max())}; this job's ids are 0 (background) to {n_classes}")
    return mask


def hex_colors(n_classes: int) -> list[str]:
    """Background's colour, then each category's: fixed, distinct, never background's white."""
    colors = [BACKGROUND_HEX, *PALETTE[:n_classes]]
    k = 0
    while len(colors) < n_classes + 1:  # more categories than the palette: spread hues (golden angle)
        k += 1
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.55 + 0.4 * (k % 2), 0.9 - 0.3 * (k % 3) / 2)
        color = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        if color not in colors:
            colors.append(color)
    return colors


def rgb_palette(n_classes: int) -> np.ndarray:
    """`hex_colors` as a (n_classes + 1, 3) uint8 lookup table: `rgb_palette(k)[mask]` paints a class map."""
    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in hex_colors(n_classes)], dtype=np.uint8)


def color_map(class_names: Sequence[str], confidence: float | None = None) -> dict[str, dict[str, Any]]:
    """Ground Truth's `internal-color-map` for this job's categories."""
    names = [BACKGROUND, *class_names]
    out = {}
    for i, (name, color) in enumerate(zip(names, hex_colors(len(class_names)))):
        out[str(i)] = {"class-name": name, "hex-color": color}
        if confidence is not None:
            out[str(i)]["confidence"] = round(float(confidence), 4)
    return out


def paint(mask: np.ndarray, n_classes: int) -> bytes:
    """The RGB PNG Ground Truth writes for a class map: each class in its `internal-color-map` colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb_palette(n_classes)[mask], mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def unpaint(data: bytes, colors: Any, class_names: Sequence[str], what: str) -> np.ndarray:
    """The class map of a painted mask, its colours named by `colors` (an `internal-color-map`) and
    the names turned into this job's ids. Transparent pixels are background."""
    if not isinstance(colors, dict) or not colors:
        raise ValueError("its metadata needs an internal-color-map of {index: {class-name, hex-color}}")
    ids: dict[int, int] = {}
    for key, entry in colors.items():
        name, color = (entry.get("class-name"), entry.get("hex-color")) if isinstance(entry, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(color, str) or len(color) != 7 or color[0] != "#":
            raise ValueError(f"internal-color-map entry {key!r} needs a class-name and a hex-color '#rrggbb'")
        if name != BACKGROUND and name not in class_names:
            raise ValueError(f"internal-color-map entry {key!r} names {name[:80]!r}, not a category of this job")
        try:
            rgb = int(color[1:], 16)
        except ValueError:
            raise ValueError(f"internal-color-map entry {key!r}: hex-color {color[:20]!r} is not '#rrggbb'") from None
        class_id = 0 if name == BACKGROUND else list(class_names).index(name) + 1
        if ids.setdefault(rgb, class_id) != class_id:
            raise ValueError(f"internal-color-map gives the colour {color} to two classes")
    image = _image(data, what)
    try:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
    except Exception:
        raise ValueError(f"{what}: the PNG's pixel data is damaged") from None
    packed = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]
    found, inverse = np.unique(packed, return_inverse=True)
    background = ids.get(int(BACKGROUND_HEX[1:], 16), 0)
    lookup = np.empty(len(found), dtype=np.uint8)
    for n, rgb in enumerate(found):
        if int(rgb) not in ids:
            raise ValueError(f"{what} has pixels of colour #{int(rgb):06x}, which its internal-color-map does not name")
        lookup[n] = ids[int(rgb)]
    mask = lookup[inverse.reshape(packed.shape)]
    mask[rgba[..., 3] == 0] = background
    return mask


# ---------------------------------------------------------------- quality, votes, noise


def class_ious(predicted: np.ndarray, reference: np.ndarray) -> dict[int, float]:
    """IoU per class id either mask has, background (0) excluded."""
    if predicted.shape != reference.shape:
        raise ValueError(f"masks of different sizes: {predicted.shape[1]} x {predicted.shape[0]} "
                         f"against {reference.shape[1]} x {reference.shape[0]}")
    classes = np.union1d(np.unique(predicted), np.unique(reference))
    return {int(c): float(np.logical_and(predicted == c, reference == c).sum()
                          / np.logical_or(predicted == c, reference == c).sum()) for c in classes if c != 0}


def mean_iou(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Ground Truth's image quality: mean IoU over the classes either mask has, background (0)
    excluded; 1 when both are all background."""
    ious = list(class_ious(predicted, reference).values())
    return float(np.mean(ious)) if ious else 1.0


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{what} must be a number in [0, 1], got {str(value)[:40]!r}")
    return float(value)


class SemanticSegmentation(TaskType):
    name = "semantic-segmentation"
    ground_truth_type = "groundtruth/semantic-segmentation"
    lambda_suffix = "SemanticSegmentation"
    title = "Paint every object's pixels"
    ui_template = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-semantic-segmentation
    name="crowd-semantic-segmentation"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="{{ task.input.header }}"
    labels="{{ task.input.labels | to_json | escape }}">
    <full-instructions header="Segmentation instructions">
      <p>Paint every pixel of each object of the listed categories with its category. Leave the
      background unpainted. Submit with nothing painted when the image shows none of them.</p>
    </full-instructions>
    <short-instructions>
      <p>Paint each object's pixels with its category; leave the rest.</p>
    </short-instructions>
  </crowd-semantic-segmentation>
</crowd-form>
"""
    algorithm_folder = "semantic_segmentation"
    framework = Framework("pytorch", "2.6.0", "py312", gpu=True)
    deploy_prefix = "SemanticSegmentation"
    items_are_images = True
    widget = "masks"
    report_example = "image-mask"
    quality_name = "mean-iou"
    default_target = 0.7
    # Masks' IoUs cluster and their best sit at the top: Hoeffding–Bentkus certified no 0.7 mask
    # in any measured run, the betting bound does (docs/benchmarks.md).
    default_iou_bound = "betting"
    bounded_mean = True
    label_in_file = True
    continues_training = True

    def description(self, class_names: list[str]) -> str:
        return f"Paint the pixels of every object of {len(class_names)} categories"

    # ------------------------------------------------------------ labels in manifests

    def read_value(self, value: Any, class_names: list[str]) -> str:
        """A class map (a data: URL, as a browser makes one, or bare base64 PNG text), checked; as a data: URL."""
        decode_mask(value, len(class_names))
        return _as_value(value)

    def line_label(self, line: dict[str, Any], attribute: str, class_names: list[str]) -> str:
        """The mask file `<attribute>` names, its colours read with the line's internal-color-map."""
        ref = line[attribute]
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"expected the URI of a mask PNG, got {str(ref)[:80]!r}")
        meta = line.get(f"{attribute}-metadata")
        colors = meta.get("internal-color-map") if isinstance(meta, dict) else None
        return mask_value(unpaint(self._read(ref), colors, class_names, f"mask {ref[:200]}"))

    @staticmethod
    def _read(ref: str) -> bytes:
        try:
            return storage.read_bytes(ref)
        except FileNotFoundError:
            raise ValueError(f"mask {ref[:200]} does not exist") from None
        except OSError as exc:
            raise ValueError(f"mask {ref[:200]} cannot be read ({exc.strerror or exc})") from None

    def line_value(self, value: str, class_names: list[str], *, folder: str, name: str) -> str:
        """Writes the painted mask to `folder`/`name`.png; its URI."""
        if not folder or not name:
            raise ValueError("a mask label needs a folder to be written to, beside the manifest")
        uri = storage.join(folder, f"{name}.png")
        storage.write_bytes(uri, paint(decode_mask(value), len(class_names)))
        return uri

    def label_metadata(self, value: str, class_names: list[str]) -> dict[str, Any]:
        return {"internal-color-map": color_map(class_names)}

    def output_line(self, source: dict[str, Any], label: Label | None, **kwargs: Any) -> dict[str, Any]:
        line = super().output_line(source, label, **kwargs)
        if label is not None:  # Ground Truth repeats the label's confidence on each class
            meta = line[f"{kwargs['attribute']}-metadata"]
            meta["internal-color-map"] = color_map(kwargs["class_names"], label.confidence)
        return line

    def human_metadata(self, value: str, confidence: float, class_names: list[str], job_name: str) -> dict[str, Any]:
        return {**super().human_metadata(value, confidence, class_names, job_name),
                "internal-color-map": color_map(class_names, confidence)}

    # ------------------------------------------------------------ people and their answers

    def consolidate(self, answers: list[str], workers: int, rng: np.random.Generator) -> tuple[str, float]:
        """Per-pixel vote (`vote`); one worker's mask as it is."""
        masks = [decode_mask(a) for a in answers]
        if len({m.shape for m in masks}) > 1:
            raise ValueError(f"workers' masks of one image differ in size: {sorted({m.shape for m in masks})}")
        if len(masks) == 1:
            return _as_value(answers[0]), 1.0
        winner, confidence = vote(masks)
        return mask_value(winner), confidence

    def simulated_answer(self, true: str, class_names: list[str], accuracy: float, rng: np.random.Generator) -> str:
        """The true mask with its boundaries made ragged (`ragged`) with probability 1 − accuracy."""
        if accuracy >= 1:
            return true
        return mask_value(ragged(decode_mask(true), 1.0 - accuracy, rng))

    simulated_annotators = ("clicks", "painter")  # people.py: clicks count what a mask costs

    def simulate(self, true: str, class_names: list[str], accuracy: float, rng: np.random.Generator, *,
                 item, annotator: str | None = None) -> Simulated:
        """"clicks": the click tool on the item's image (`click_mask`); "painter": `simulated_answer`."""
        if annotator == "painter":
            return Simulated(self.simulated_answer(true, class_names, accuracy, rng))
        mask, clicks = click_mask(segmentation_clicks.read_image(item()), decode_mask(true), accuracy, rng)
        return Simulated(mask_value(mask), clicks)

    def truth_value(self, truth: Any, class_names: list[str]) -> str | None:
        """A true mask: a mask file with its colour map (`labelloop.truth`), or already a value of this job."""
        try:
            if isinstance(truth, dict) and isinstance(truth.get("mask-ref"), str):
                data = self._read(truth["mask-ref"])
                return mask_value(unpaint(data, truth.get("internal-color-map"), class_names, "true mask"))
            return self.read_value(truth, class_names)
        except ValueError:
            return None

    def value_size(self, value: str) -> tuple[int, int]:
        height, width = decode_mask(value).shape
        return width, height

    def widget_options(self, class_names: list[str]) -> dict[str, Any]:
        """The overlay paints each class in its `internal-color-map` colour (index = class id); the
        widget offers the click tool (`propose_object`)."""
        return {"colors": hex_colors(len(class_names)), "clicks": True}

    proposes_objects = True

    def propose_object(self, image: bytes, request: dict[str, Any]) -> dict[str, Any]:
        """An object's mask from its four extreme points and corrective clicks (`clicks`)."""
        return segmentation_clicks.answer(image, request)

    # ------------------------------------------------------------ quality and confidence

    def reply_line_bytes(self, n_classes: int) -> int:
        """The longest answer line: a mask of MAX_MASK_PNG_BYTES and MAX_CANDIDATES named confidences."""
        frame = len('{"mask":"","confidence":,"confidences":{}}\n') + MAX_MASK_CHARS + _NUMBER_CHARS
        return frame + MAX_CANDIDATES * (len('"":,') + MAX_CANDIDATE_NAME + _NUMBER_CHARS)

    def parse_output(self, output: Any, n_classes: int) -> dict[str, Any]:
        """The segmenter's answer for one image: `{"mask": <base64 mode-L PNG, pixel = class id, at the
        image's size>, "confidence": <image confidence in [0, 1]>, "confidences": {<signal>: [0, 1]}}`."""
        if not isinstance(output, dict) or not isinstance(output.get("mask"), str):
            raise ValueError("expected SageMakerOutput.mask: the base64 text of a PNG class map")
        if len(output["mask"]) > MAX_MASK_CHARS:
            raise ValueError(f"the mask's PNG is larger than {MAX_MASK_PNG_BYTES} bytes, the most a reply may carry")
        decode_mask(output["mask"], n_classes)
        confidence = _probability(output.get("confidence"), "confidence")
        candidates = output.get("confidences", {})
        if not isinstance(candidates, dict) or len(candidates) > MAX_CANDIDATES:
            raise ValueError(f"confidences must be an object of at most {MAX_CANDIDATES} named numbers")
        for key, value in candidates.items():
            if len(key) > MAX_CANDIDATE_NAME:
                raise ValueError(f"confidences: the name {key[:60]!r} is longer than {MAX_CANDIDATE_NAME} characters")
            _probability(value, f"confidences[{key!r}]")
        return {"mask": output["mask"], "confidence": confidence, "confidences": dict(candidates)}

    def predicted(self, outputs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(masks, the segmenter's image confidences)."""
        values = np.empty(len(outputs), dtype=object)
        values[:] = [DATA_URL + record["mask"] for record in outputs]  # a label value, as every other
        return values, np.array([record["confidence"] for record in outputs], dtype=float)

    def quality(self, value: str, reference: str) -> float:
        return mean_iou(decode_mask(value), decode_mask(reference))

    def class_qualities(self, value: str, reference: str) -> dict[int, float]:
        """IoU per category index (class id − 1) either mask has."""
        return {c - 1: q for c, q in class_ious(decode_mask(value), decode_mask(reference)).items()}


TASK = register(SemanticSegmentation())
