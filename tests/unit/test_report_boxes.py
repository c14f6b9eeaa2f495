"""The run report of object-detection runs: boxes drawn on their images, mean IoU per iteration and class."""

from __future__ import annotations

import io
import json
import re

import pytest

from labelloop.report import load_run, totals, write_report

from report_helpers import embedded_images, metrics, write


def test_a_box_run_draws_each_labels_boxes_on_its_image(tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    write(out / "config" / "settings.json", {"JobName": "street", "TaskType": "object-detection",
                                             "LabelAttributeName": "objects", "TargetAccuracy": 0.6})
    write(out / "config" / "label-categories.json", {"document-version": "2018-11-28", "labels": [{"label": "car"}]})
    lines = []
    for i, boxes in enumerate(([[10, 10, 30, 20]], [], [[5, 5, 10, 10], [40, 30, 15, 15]])):
        Image.new("RGB", (64, 48), (255, 255, 255)).save(tmp_path / f"{i}.png")
        human = i == 1
        lines.append({"source-ref": str(tmp_path / f"{i}.png"),
                      "objects": {"image_size": [{"width": 64, "height": 48, "depth": 3}],
                                  "annotations": [dict(zip(("left", "top", "width", "height"), b), class_id=0) for b in boxes]},
                      "objects-metadata": {"objects": [{"confidence": 0.9}] * len(boxes), "class-map": {"0": "car"},
                                           "confidence": 0.8, "type": "groundtruth/object-detection",
                                           "human-annotated": "yes" if human else "no",
                                           "job-name": f"{'labeling-job/' if human else ''}street-1234abcd-001-{'label' if human else 'auto'}",
                                           "creation-date": "2026-11-29T00:00:00"}})
    write(out / "output" / "output.manifest", lines)
    write(out / "output" / "summary.json", {"Total": 3, "HumanLabeled": 1, "HumanLabeledByThisJob": 1, "AutoLabeled": 2,
                                           "Unlabeled": 0, "Iterations": 1, "StopReason": "all-labeled", "Error": None})
    t = totals(load_run(out))
    assert (t.items, t.human, t.auto, t.unlabeled) == (3, 1, 2, 0)
    page = write_report(out).read_text()
    assert "1 box" in page and "2 boxes" in page and "no objects" in page
    drawn = [Image.open(io.BytesIO(png)).convert("RGB") for png in embedded_images(page)]
    red = [img for img in drawn if any(px[0] > 200 and px[1] < 80 and px[2] < 120 for px in img.get_flattened_data())]
    assert len(red) == 2, "the two images with boxes have them drawn (class 0's colour); the empty one has none"


def box_line(path: str, boxes: list, human: bool, classes: list[str]) -> dict:
    """An output line with boxes [(class, left, top, width, height)]."""
    present = sorted({b[0] for b in boxes})
    return {"source-ref": path,
            "objects": {"image_size": [{"width": 64, "height": 48, "depth": 3}],
                        "annotations": [dict(zip(("class_id", "left", "top", "width", "height"), b)) for b in boxes]},
            "objects-metadata": {"objects": [{"confidence": 0.9}] * len(boxes), "class-map": {str(c): classes[c] for c in present},
                                 "confidence": 0.8, "type": "groundtruth/object-detection",
                                 "human-annotated": "yes" if human else "no", "job-name": "street-1234abcd-001-auto",
                                 "creation-date": "2026-11-29T00:00:00"}}


def test_a_judged_box_run_reads_in_mean_iou_per_iteration_and_per_class(tmp_path):
    from labelloop.evaluation import evaluate
    from labelloop.tasks import get

    classes = ["car", "bike"]
    out = tmp_path / "run"
    write(out / "config" / "settings.json", {"JobName": "street", "TaskType": "object-detection", "LabelAttributeName": "objects",
                                             "TargetAccuracy": 0.6, "PricePerLabel": 0.1, "PricePerAdjustedLabel": 0.04})
    write(out / "config" / "label-categories.json", {"document-version": "2018-11-28", "labels": [{"label": c} for c in classes]})
    lines = [
        box_line("/i/0.png", [(0, 10, 10, 20, 20)], False, classes),  # the car exactly: IoU 1
        box_line("/i/1.png", [(0, 10, 10, 20, 20), (1, 40, 10, 10, 10)], False, classes),  # car 1; bike half off
        box_line("/i/2.png", [(1, 0, 0, 10, 10)], True, classes),
    ]
    truth_boxes = {"/i/0.png": [(0, 10, 10, 20, 20)], "/i/1.png": [(0, 10, 10, 20, 20), (1, 45, 10, 10, 10)],
                   "/i/2.png": [(1, 0, 0, 10, 10)]}
    truth = {k: {"image_size": [{"width": 64, "height": 48, "depth": 3}],
                 "annotations": [{"class-name": classes[b[0]], **dict(zip(("left", "top", "width", "height"), b[1:]))} for b in v]}
             for k, v in truth_boxes.items()}
    write(out / "output" / "output.manifest", lines)
    evaluation = evaluate((json.dumps(line) for line in lines), "objects", truth, get("object-detection"), classes)
    # The bike boxes overlap by 5 of 10 columns: IoU 50 / 150 = 1/3; image 1 scores (1 + 1/3) / 2.
    assert evaluation.per_class["bike"]["auto"] == 1 and evaluation.per_class["bike"]["auto_correct"] == pytest.approx(1 / 3)
    assert evaluation.per_class["car"] == {"auto": 2, "auto_correct": 2.0, "human": 0, "human_correct": 0}
    assert evaluation.per_class["bike"]["human"] == 1 and evaluation.auto_accuracy == pytest.approx((1 + 2 / 3) / 2)
    write(out / "output" / "evaluation.json", evaluation.to_json())
    write(out / "iterations" / "001" / "metrics.json", {
        **metrics(1, 10, 10, 2, 2, 0, 0.4321, 0.7123, stop="all-labeled"), "LowerBound": 0.6042, "Support": 37,
        "HumanAdjusted": 6})
    write(out / "output" / "summary.json", {"Total": 3, "HumanLabeled": 1, "HumanLabeledByThisJob": 10, "HumanAdjusted": 6,
                                           "AutoLabeled": 2, "Unlabeled": 0, "Iterations": 1, "StopReason": "all-labeled",
                                           "Error": None})
    page = write_report(out).read_text()
    table = page.split('<table class="iterations">')[1].split("</table>")[0]
    headers = re.findall(r"<th>([^<]*)</th>", table)
    assert {"threshold", "val. IoU", "IoU bound", "support", "adjusted"} <= set(headers) and "val. acc." not in headers
    row = dict(zip(headers, re.findall(r"<td>([^<]*)</td>", table), strict=True))
    assert (row["threshold"], row["val. IoU"], row["IoU bound"], row["support"], row["adjusted"]) == (
        "0.4321", "0.712", "0.604", "37", "6")
    assert "target mean IoU ≥ 0.6" in page and "auto-label mean IoU" in page and "0.833" in page
    assert "(4 drawn × $0.10 + 6 adjusted × $0.04) × 1 worker" in page and "$0.64" in page
    per_class = page.split('<table class="accuracy">')[1].split("</table>")[0]
    assert "<th>auto-labeled images</th><th>auto mean IoU</th>" in per_class
    assert "<tr><td>car</td><td>2</td><td>1.000</td><td>0</td><td>–</td></tr>" in per_class
    assert '<tr class="below"><td>bike</td><td>1</td><td>0.333 ▼ below target</td><td>1</td><td>1.000</td></tr>' in per_class
    assert "Auto-label mean IoU per class" in page and "Threshold and validation mean IoU per iteration" in page
