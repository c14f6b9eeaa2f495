"""Bounding boxes (Ground Truth `groundtruth/object-detection`): every object of the categories, boxed.

The quality of a label is its image's mean IoU against a reference (`image_iou`, Ground
Truth's per-class scoring), a number in [0, 1]: the auto-labels are certified on their *mean*
IoU (Ground Truth's 0.6 by default) with the Hoeffding–Bentkus bound, since Clopper–Pearson
speaks only of pass/fail rates.

A label value is Ground Truth's: `{"image_size": [{"width", "height", "depth"}], "annotations":
[{"class_id", "left", "top", "width", "height"}, ...]}`, pixels from the top-left corner. An
annotation may also carry a `confidence` (the model's score, or the workers' agreement); that
goes to the metadata's `objects`, never into the label itself.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from labelloop.manifest import Label, ManifestError
from labelloop.tasks import register
from labelloop.tasks.base import Framework, TaskType

# A detector's box is part of its label from this score up: on held-out canvases the mean IoU of
# the labels peaks at 0.2-0.25 (0.37-0.43) and falls to 0.19-0.25 at 0.5 (bench/detector_study.py).
SCORE_CUTOFF = 0.2
MAX_BOXES = 100  # most boxes the detector answers for one image (its max-boxes hyperparameter is capped at it)
_NUMBER_CHARS = 23  # longest json.dumps of a float

COORDS = ("left", "top", "width", "height")
MATCH_IOU = 0.5  # workers' boxes for one object overlap at least this much (the usual detection match)


def as_array(annotations: Sequence[dict[str, Any]]) -> np.ndarray:
    """(n, 4) array of left, top, width, height."""
    return np.asarray([[float(a[k]) for k in COORDS] for a in annotations], dtype=float).reshape(-1, 4)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` with every box in `b` (both (n, 4) left, top, width, height)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    a_lo, a_hi = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b_lo, b_hi = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0, None).prod(axis=2)
    union = a[:, None, 2:].prod(axis=2) + b[None, :, 2:].prod(axis=2) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def image_iou(predicted: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]]) -> float:
    """One image's mean IoU as Ground Truth's object-detection tutorial scores it: the mean of its
    `class_ious`. Two empty labels agree ("no objects"): 1."""
    per_class = class_ious(predicted, reference)
    return float(np.mean(list(per_class.values()))) if per_class else 1.0


def class_ious(predicted: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]]) -> dict[int, float]:
    """{class id: IoU} for each class present in either label, as Ground Truth's tutorial scores a class.

    Predicted boxes, in descending confidence, each take the unmatched reference box they overlap
    most (any overlap); an unmatched prediction and an unmatched reference box each count an IoU
    of 0; the class scores the mean over all of them.
    """
    classes = sorted({int(a["class_id"]) for a in predicted} | {int(a["class_id"]) for a in reference})
    per_class = {}
    for c in classes:
        pred = sorted((a for a in predicted if int(a["class_id"]) == c), key=lambda a: -float(a.get("confidence", 1.0)))
        ref = [a for a in reference if int(a["class_id"]) == c]
        ious = iou_matrix(as_array(pred), as_array(ref))
        free = np.ones(len(ref), dtype=bool)
        matched = []
        for row in ious:
            candidates = np.where(free & (row > 0), row, -1.0)
            if len(candidates) and candidates.max() > 0:
                j = int(candidates.argmax())
                free[j] = False
                matched.append(float(row[j]))
        pairs = len(matched) + (len(pred) - len(matched)) + int(free.sum())
        per_class[c] = sum(matched) / pairs
    return per_class


def consolidate_boxes(answers: list[list[dict[str, Any]]], workers: int) -> list[dict[str, Any]]:
    """One set of boxes from several workers' boxes for an image.

    Boxes of one class from different workers that overlap at IoU ≥ 0.5 are one object (greedy,
    largest overlap first, at most one box per worker in an object); an object at least half the
    workers drew is kept, at the mean of its boxes, with the share of workers who drew it as its
    confidence. With one worker, that worker's boxes.
    """
    boxes = [(w, dict(a)) for w, answer in enumerate(answers) for a in answer]
    if workers <= 1 or len(answers) <= 1:
        return [{**a, "confidence": 1.0} for _, a in boxes]
    clusters: list[list[tuple[int, dict]]] = []
    for w, box in sorted(boxes, key=lambda wb: -float(wb[1]["width"]) * float(wb[1]["height"])):
        best, best_iou = None, MATCH_IOU
        for cluster in clusters:
            if cluster[0][1]["class_id"] != box["class_id"] or any(cw == w for cw, _ in cluster):
                continue
            iou = float(iou_matrix(as_array([box]), as_array([b for _, b in cluster])).mean())
            if iou >= best_iou:
                best, best_iou = cluster, iou
        if best is None:
            clusters.append([(w, box)])
        else:
            best.append((w, box))
    needed = workers / 2.0
    kept = []
    for cluster in clusters:
        if len(cluster) < needed:
            continue
        mean = as_array([b for _, b in cluster]).mean(axis=0)
        kept.append({"class_id": int(cluster[0][1]["class_id"]), **{k: round(float(v), 1) for k, v in zip(COORDS, mean)},
                     "confidence": round(len(cluster) / workers, 2)})
    return sorted(kept, key=lambda a: (a["top"], a["left"]))


def jittered(annotations: Sequence[dict[str, Any]], width: int, height: int, miss_rate: float, jitter: float,
             rng: np.random.Generator) -> list[dict[str, Any]]:
    """A simulated worker's boxes: each true box missed with `miss_rate`, its edges moved by
    N(0, jitter × its size) pixels, kept inside the image."""
    out = []
    for a in annotations:
        if miss_rate > 0 and rng.random() < miss_rate:
            continue
        x0, y0, w, h = (float(a[k]) for k in COORDS)
        x1, y1 = x0 + w, y0 + h
        if jitter > 0:
            x0, x1 = x0 + rng.normal(0, jitter * w), x1 + rng.normal(0, jitter * w)
            y0, y1 = y0 + rng.normal(0, jitter * h), y1 + rng.normal(0, jitter * h)
        x0, x1 = sorted((min(max(x0, 0.0), width - 1.0), min(max(x1, 1.0), float(width))))
        y0, y1 = sorted((min(max(y0, 0.0), height - 1.0), min(max(y1, 1.0), float(height))))
        out.append({"class_id": int(a["class_id"]), "left": round(x0, 1), "top": round(y0, 1),
                    "width": round(max(1.0, x1 - x0), 1), "height": round(max(1.0, y1 - y0), 1)})
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {str(value)[:40]!r}")
    return float(value)


def _count(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer ≥ {low}, got {str(value)[:40]!r}")
    return value


class ObjectDetection(TaskType):
    name = "object-detection"
    ground_truth_type = "groundtruth/object-detection"
    lambda_suffix = "BoundingBox"
    title = "Draw a box around every object"
    ui_template = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="{{ task.input.header }}"
    labels="{{ task.input.labels | to_json | escape }}">
    <full-instructions header="Bounding box instructions">
      <p>Draw one tight box around each object of the listed categories and pick its category.
      Boxes may overlap. Submit with no boxes when the image shows none of them.</p>
    </full-instructions>
    <short-instructions>
      <p>One tight box per object; none when there is none.</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""
    algorithm_folder = "object_detection"
    framework = Framework("pytorch", "2.6.0", "py312", gpu=True)
    deploy_prefix = "ObjectDetection"
    items_are_images = True
    widget = "boxes"
    report_example = "image-boxes"
    quality_name = "mean-iou"
    default_target = 0.6
    bounded_mean = True
    continues_training = True

    def description(self, class_names: list[str]) -> str:
        return f"Draw a box around every object of {len(class_names)} categories"

    # ------------------------------------------------------------ labels in manifests

    def read_value(self, value: Any, class_names: list[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object with image_size and annotations, got {type(value).__name__}")
        size = value.get("image_size")
        if not isinstance(size, list) or len(size) != 1 or not isinstance(size[0], dict):
            raise ValueError("image_size must be a list of one {width, height, depth} object")
        width = _count(size[0].get("width"), "image_size width", 1)
        height = _count(size[0].get("height"), "image_size height", 1)
        depth = _count(size[0].get("depth", 3), "image_size depth", 1)
        annotations = value.get("annotations")
        if not isinstance(annotations, list):
            raise ValueError("annotations must be a list (empty when the image shows no object)")
        kept = []
        for n, a in enumerate(annotations):
            if not isinstance(a, dict):
                raise ValueError(f"annotation {n} must be an object, got {type(a).__name__}")
            class_id = a.get("class_id")
            if isinstance(class_id, bool) or not isinstance(class_id, int) or not 0 <= class_id < len(class_names):
                raise ValueError(f"annotation {n}: class_id {class_id!r} is not a class index in 0..{len(class_names) - 1}")
            left, top = _number(a.get("left"), f"annotation {n} left"), _number(a.get("top"), f"annotation {n} top")
            w, h = _number(a.get("width"), f"annotation {n} width"), _number(a.get("height"), f"annotation {n} height")
            if w <= 0 or h <= 0:
                raise ValueError(f"annotation {n}: width and height must be positive, got {w} x {h}")
            if left >= width or top >= height or left + w <= 0 or top + h <= 0:
                raise ValueError(f"annotation {n}: the box ({left}, {top}, {w} x {h}) lies outside the {width} x {height} image")
            box = {"class_id": class_id, "left": left, "top": top, "width": w, "height": h}
            if "confidence" in a:
                box["confidence"] = _number(a["confidence"], f"annotation {n} confidence")
            kept.append(box)
        return {"image_size": [{"width": width, "height": height, "depth": depth}], "annotations": kept}

    def existing_label(self, line: dict[str, Any], attribute: str, class_names: list[str], number: int,
                       job: str) -> Label | None:
        label = super().existing_label(line, attribute, class_names, number, job)
        class_map = (line.get(f"{attribute}-metadata") or {}).get("class-map")
        if label is not None and isinstance(class_map, dict):
            for a in label.class_id["annotations"]:
                named = class_map.get(str(a["class_id"]))
                if named is not None and named != class_names[a["class_id"]]:
                    raise ManifestError(f"line {number}: existing label {attribute} has class_id {a['class_id']}, "
                                        f"{class_names[a['class_id']]!r} in this job's categories, but its class-map "
                                        f"says {str(named)[:80]!r}")
        return label

    def write_value(self, value: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
        return {
            "image_size": value["image_size"],
            "annotations": [{k: (int(a[k]) if k == "class_id" else _tidy(a[k])) for k in ("class_id", *COORDS)}
                            for a in value["annotations"]],
        }

    def label_metadata(self, value: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
        present = sorted({int(a["class_id"]) for a in value["annotations"]})
        return {
            "objects": [{"confidence": round(float(a.get("confidence", 1.0)), 4)} for a in value["annotations"]],
            "class-map": {str(c): class_names[c] for c in present},
        }

    # ------------------------------------------------------------ people and their answers

    def consolidate(self, answers: list[dict[str, Any]], workers: int, rng: np.random.Generator) -> tuple[dict, float]:
        """Boxes clustered by IoU across workers and averaged; the confidence is the mean agreement."""
        merged = consolidate_boxes([a["annotations"] for a in answers], workers)
        confidence = float(np.mean([a["confidence"] for a in merged])) if merged else 1.0
        return {"image_size": answers[0]["image_size"], "annotations": merged}, round(confidence, 2)

    def simulated_answer(self, true: dict[str, Any], class_names: list[str], accuracy: float,
                         rng: np.random.Generator) -> dict[str, Any]:
        """The true boxes, each missed with probability 1 − accuracy and its edges moved by
        N(0, (1 − accuracy) × its size): an annotator of accuracy 1 draws exactly the truth."""
        size = true["image_size"][0]
        noise = max(0.0, 1.0 - accuracy)
        drawn = jittered(true["annotations"], size["width"], size["height"], noise, noise, rng)
        return {"image_size": true["image_size"], "annotations": drawn}

    def truth_value(self, truth: Any, class_names: list[str]) -> dict[str, Any] | None:
        """A true label: boxes named by class (`labelloop.truth`), or already a value of this job."""
        if not isinstance(truth, dict) or not isinstance(truth.get("annotations"), list):
            return None
        try:
            annotations = [{**{k: v for k, v in a.items() if k != "class-name"}, "class_id": class_names.index(a["class-name"])}
                           if isinstance(a, dict) and "class-name" in a else a for a in truth["annotations"]]
            return self.read_value({**truth, "annotations": annotations}, class_names)
        except ValueError:
            return None

    # ------------------------------------------------------------ quality and confidence

    def reply_line_bytes(self, n_classes: int) -> int:
        """The detector's longest answer line: MAX_BOXES boxes of six numbers and the image size."""
        frame = len('{"boxes":[],"image_size":[{"width":,"height":,"depth":}]}\n') + 3 * _NUMBER_CHARS
        box = len('{"class_id":,"left":,"top":,"width":,"height":,"score":},') + 6 * _NUMBER_CHARS
        return frame + MAX_BOXES * box

    def parse_output(self, output: Any, n_classes: int) -> dict[str, Any]:
        """The detector's answer for one image: `{"image_size": [...], "boxes": [{"class_id", "left",
        "top", "width", "height", "score"}, ...]}`, in the image's pixels."""
        if not isinstance(output, dict) or not isinstance(output.get("boxes"), list):
            raise ValueError("expected SageMakerOutput.boxes: a list of scored boxes")
        if len(output["boxes"]) > MAX_BOXES:
            raise ValueError(f"{len(output['boxes'])} boxes for one image; the detector answers at most {MAX_BOXES}")
        names = [str(c) for c in range(n_classes)]
        value = self.read_value({"image_size": output.get("image_size"), "annotations": [
            {k: b.get(k) for k in ("class_id", *COORDS)} if isinstance(b, dict) else b for b in output["boxes"]]}, names)
        for n, b in enumerate(output["boxes"]):
            score = _number(b.get("score"), f"box {n} score")
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"box {n} score must be in [0, 1], got {score}")
            value["annotations"][n]["score"] = score
        return {"image_size": value["image_size"], "boxes": value["annotations"]}

    def predicted(self, output: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(labels, image confidences) from the detector's per-image boxes.

        The label is the boxes scored at least SCORE_CUTOFF. The image's confidence is the mean
        score of its kept boxes times one minus the best score it dropped (1 for either part when
        there is none): of the signals measured it ranks images by their IoU best (Spearman
        0.45-0.53 against 0.41-0.47 for the lowest kept score; bench/detector_study.py).
        """
        values = np.empty(len(output), dtype=object)
        confidence = np.empty(len(output), dtype=float)
        for i, record in enumerate(output):
            found = record["boxes"]
            kept = [b for b in found if b["score"] >= SCORE_CUTOFF]
            dropped = [b["score"] for b in found if b["score"] < SCORE_CUTOFF]
            values[i] = {
                "image_size": record["image_size"],
                "annotations": [{**{k: b[k] for k in ("class_id", *COORDS)}, "confidence": b["score"]} for b in kept],
            }
            kept_mean = float(np.mean([b["score"] for b in kept])) if kept else 1.0
            confidence[i] = kept_mean * (1.0 - max(dropped, default=0.0))
        return values, confidence

    def quality(self, value: dict[str, Any], reference: dict[str, Any]) -> float:
        return image_iou(value["annotations"], reference["annotations"])

    def class_qualities(self, value: dict[str, Any], reference: dict[str, Any]) -> dict[int, float]:
        return class_ious(value["annotations"], reference["annotations"])


def _tidy(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(float(x), 1)


TASK = register(ObjectDetection())
