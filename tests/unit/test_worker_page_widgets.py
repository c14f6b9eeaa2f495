"""The worker page over HTTP: validation items shown blind, mask answers, each task type's widget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from labelloop import tasks
from labelloop.local.worker_page import PeopleWorkforce, widget_for
from labelloop.local.workforce import WorkforceError
from labelloop.manifest import CLICKS_KEY

import worker_page_helpers
from worker_page_helpers import CLASSES, Job, make_params, texts

workforce = worker_page_helpers.workforce  # the helpers' pytest fixture, bound here for this module's tests


# ---------------------------------------------------------------- validation items reach people blind


def test_a_validation_item_never_shows_the_models_guess(tmp_path, workforce):
    guess = {"class": 2, "confidence": 0.9312}
    lines = [
        {"source": "a", "labelloop-role": "validation", "labelloop-guess": guess},
        {"source": "b", "labelloop-role": "train", "labelloop-guess": guess},
    ]
    job = Job(workforce, make_params(tmp_path, lines))
    status, raw, _ = job.request("POST", "/api/next", {}, headers={"Accept": "application/json"})
    assert status == 200 and raw["item"]["index"] == 0
    assert raw["item"]["guess"] is None
    assert "0.9312" not in json.dumps(raw) and "labelloop-guess" not in json.dumps(raw)
    job.answer(0, 1)
    shown = job.next()["item"]
    assert shown["index"] == 1 and shown["guess"] == {"class": 2, "name": "bird", "confidence": 0.9312}
    job.answer(1, 2)
    job.result()
    assert [line["animal"] for line in job.output()] == [1, 2]


# ---------------------------------------------------------------- masks


def test_a_mask_answer_is_its_images_size_and_a_validation_image_gets_no_model_mask(tmp_path, workforce):
    from PIL import Image

    from labelloop.tasks.semantic_segmentation import decode_mask, hex_colors, mask_value

    for name in ("a.png", "b.png"):
        Image.new("RGB", (6, 4), (90, 90, 90)).save(tmp_path / name)
    model = np.zeros((4, 6), dtype=np.uint8)
    model[1:3, 2:5] = 3
    guess = {"class": mask_value(model), "confidence": 0.5}
    lines = [{"source-ref": str(tmp_path / "a.png"), "labelloop-role": "validation", "labelloop-guess": guess},
             {"source-ref": str(tmp_path / "b.png"), "labelloop-role": "train", "labelloop-guess": guess}]
    arn = "arn:aws:lambda:us-east-1:432418664414:function:PRE-SemanticSegmentation"
    job = Job(workforce, make_params(tmp_path, lines, PreHumanTaskLambdaArn=arn))
    item = job.next()["item"]
    assert item["widget"] == "masks" and item["widget_options"] == {"colors": hex_colors(len(CLASSES)), "clicks": True}
    assert item["index"] == 0 and item["guess"] is None, "a validation image is painted blind"
    painted = np.zeros((4, 6), dtype=np.uint8)
    painted[0, 0] = 1
    refused = [
        (mask_value(painted.T), "the answer is 4 x 6 pixels, but item 0's image is 6 x 4"),
        (mask_value(np.zeros((4, 5), dtype=np.uint8)), "the answer is 5 x 4 pixels"),
        (mask_value(painted * 4), "class id 4; this job's ids are 0 (background) to 3"),
        ("data:image/png;base64,iVBORw0KGgo=", "not a PNG image"),
    ]
    for label, message in refused:
        status, body, _ = job.answer(0, label)
        assert status == 400 and message in body["error"], (message, body)
    for clicks in (-1, "7", 2.5, 10 ** 6):  # what the click tool counted, if anything: a count or nothing
        body = {"job": job.name, "item": 0, "label": mask_value(painted), "clicks": clicks}
        status, data, _ = job.request("POST", "/api/answer", body)
        assert status == 400 and "clicks must be a count of clicks" in data["error"], (clicks, data)
    assert job.journal_bytes() == b"", "a refused answer is never recorded"
    body = {"job": job.name, "item": 0, "label": mask_value(painted), "clicks": 9}
    assert job.request("POST", "/api/answer", body)[0] == 200
    assert json.loads(job.journal_bytes())["clicks"] == 9, "the clicks are journaled with the answer"
    shown = job.next()["item"]
    assert shown["index"] == 1 and shown["guess"]["class"] == mask_value(model) and shown["guess"]["confidence"] == 0.5
    assert job.answer(1, mask_value(model))[0] == 200
    job.result()
    task = tasks.get("semantic-segmentation")
    masks = [decode_mask(task.line_label(line, "animal", CLASSES)) for line in job.output()]
    assert (masks[0] == painted).all() and (masks[1] == model).all()
    assert [line["animal-metadata"].get(CLICKS_KEY) for line in job.output()] == [9, None]  # the brush alone: not said


# ---------------------------------------------------------------- widgets


def test_the_item_names_its_widget_and_the_page_serves_it(tmp_path, workforce):
    assert widget_for("image-classification") == widget_for("text-classification") == "classification"
    with pytest.raises(WorkforceError, match="no widget for task type 'video-tracking'"):
        widget_for("video-tracking")
    widgets = Path(sys.modules[PeopleWorkforce.__module__].__file__).parent / "static" / "widgets"
    for task_type in tasks.names():  # every task type the loop runs has a widget the page can load
        name = widget_for(task_type)
        assert (widgets / f"{name}.js").is_file() and (widgets / f"{name}.css").is_file(), task_type
    job = Job(workforce, make_params(tmp_path, texts(1)))
    widget = job.next()["item"]["widget"]
    assert widget == "classification"
    for name, kind in ((f"widgets/{widget}.js", "text/javascript"), (f"widgets/{widget}.css", "text/css"),
                       ("page.js", "text/javascript"), ("page.css", "text/css")):
        status, body, headers = job.request("GET", f"/static/{name}?token={job.token}", worker=None, token=None)
        assert status == 200 and headers["Content-Type"].startswith(kind) and len(body) > 100, name
    status, page, headers = job.request("GET", f"/?token={job.token}", worker=None, token=None)
    nonce = headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}" src="/static/page.js?token={job.token}">'.encode() in page
    assert b"<style" not in page and b"style-src 'self'" in headers["Content-Security-Policy"].encode()


def test_a_task_type_without_a_widget_is_refused_before_anyone_is_asked(tmp_path, workforce):
    with pytest.raises(WorkforceError, match="no widget for task type 'video-tracking'"):
        workforce.run_labeling_job(make_params(tmp_path, texts(1)), task_type="video-tracking")
    assert workforce._server is None, "no page was served"


def test_every_page_file_ships_with_the_package():
    # An installed labelloop serves the page from package data: each file under static/ must be
    # named by pyproject.toml's package-data, or a widget works from a checkout and 404s when installed.
    import tomllib

    import labelloop.local.worker_page as package

    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][package.__name__]
    folder = Path(package.__file__).parent
    shipped = {path for pattern in patterns for path in folder.glob(pattern) if path.is_file()}
    files = {path for path in (folder / "static").rglob("*") if path.is_file()}
    assert files and files == shipped, sorted(str(p.relative_to(folder)) for p in files ^ shipped)
    assert {"page.html", "page.js", "page.css", "widgets/classification.js", "widgets/classification.css"} <= {
        str(p.relative_to(folder / "static")) for p in files}

