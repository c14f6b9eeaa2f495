"""The click tool of segmentation: an object's mask from its four extreme points and corrective
clicks (the proposer, the simulated person that measures it, and the worker page's endpoint)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labelloop.tasks.semantic_segmentation import clicks as sc
import worker_page_helpers
from worker_page_helpers import Job, make_params, texts

workforce = worker_page_helpers.workforce  # the worker page's fixture, used here too

H, W = 96, 128
SEGMENTATION = "arn:aws:lambda:us-east-1:432418664414:function:PRE-SemanticSegmentation"


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, the object's true mask, a distractor's mask): a bright textured ellipse and, inside
    its extreme points' box but apart from it, a dimmer blob that is not the object, on dark noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    truth = ((yy - 50) / 30) ** 2 + ((xx - 50) / 22) ** 2 <= 1
    distractor = np.zeros((H, W), bool)
    distractor[21:27, 66:73] = True
    image = rng.normal(30, 8, (H, W))
    image[truth] = rng.normal(190, 15, truth.sum())
    image[distractor] = rng.normal(140, 10, distractor.sum())
    return np.clip(image, 0, 255).astype(np.uint8), truth, distractor


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def from_runs(reply: dict, shape: tuple[int, int]) -> np.ndarray:
    """What the page paints from a reply (the box, then alternating off/on run lengths row by row)."""
    mask = np.zeros(shape, bool)
    if reply["box"] is None:
        return mask
    x, y, w, h = reply["box"]
    flat = np.repeat(np.arange(len(reply["counts"])) % 2 == 1, reply["counts"])
    assert flat.size == w * h
    mask[y:y + h, x:x + w] = flat.reshape(h, w)
    return mask


# ---------------------------------------------------------------- the proposer


def test_the_simulated_person_clicks_the_extreme_points_and_the_centre_of_the_largest_wrong_region():
    truth = np.zeros((10, 12), bool)
    truth[2:8, 3:9] = True
    truth[1, 5] = True  # one pixel above the top edge: the top extreme point
    assert sc.extreme_points(truth) == [(5, 1), (3, 5), (6, 7), (8, 5)]  # of an even run, the later middle one
    guess = truth.copy()
    guess[3:8, 3:8] = False  # a 5 x 5 hole: the largest wrong region, missed
    guess[0, 0] = True  # a single wrong pixel
    assert sc.corrective_click(guess, truth) == sc.Click(5, 5, True)
    wrong = truth.copy()
    wrong[:, 10:] = True  # a 10 x 2 band wrongly added, at the image's edge
    click = sc.corrective_click(wrong, truth)
    assert not click.positive and click.x in (10, 11) and click.y in (4, 5), "of equally deep pixels, the middle one"
    assert sc.corrective_click(truth, truth) is None
    with pytest.raises(ValueError, match="empty mask"):
        sc.extreme_points(np.zeros((4, 4), bool))


def test_four_extreme_clicks_give_the_object_and_a_negative_click_takes_a_wrong_blob_away():
    image, truth, distractor = scene()
    points = sc.extreme_points(truth)
    first = sc.propose(image, points, [])
    assert sc.iou(first, truth) > 0.9
    assert first[distractor].all(), "the blob lies in the box and is bright: the first proposal takes it"
    click = sc.corrective_click(first, truth)
    assert not click.positive and distractor[click.y, click.x]
    second = sc.propose(image, points, [click])
    assert not second[distractor].any(), "the negative click removes the whole blob, not only the disc under it"
    assert sc.iou(second, truth) > sc.iou(first, truth)
    assert (second & truth).sum() >= (first & truth).sum() - 5, "and keeps the object"


def test_a_positive_click_adds_a_missed_part_and_clicks_hold_whatever_the_method_makes():
    image, truth, distractor = scene()
    image[distractor] = 30
    points = sc.extreme_points(truth)
    for proposer in sc.PROPOSERS:
        mask = sc.propose(image, points, [sc.Click(50, 50, True), sc.Click(60, 70, False)], proposer)
        assert all(mask[y, x] for x, y in points) and mask[50, 50], proposer
        assert not mask[70, 60], proposer
    # Here the object's dim lower half looks like the background, so four clicks miss it; one click adds it.
    rng = np.random.default_rng(1)
    dim = image.copy()
    lower = truth & (np.mgrid[:H, :W][0] >= 56)
    dim[lower] = np.clip(rng.normal(40, 5, lower.sum()), 0, 255).astype(np.uint8)
    first = sc.propose(dim, points, [])
    click = sc.corrective_click(first, truth)
    assert click.positive and lower[click.y, click.x]
    second = sc.propose(dim, points, [click])
    assert (second & lower).sum() > (first & lower).sum() + 0.5 * lower.sum()


def test_a_large_image_is_proposed_whole_at_its_own_size():
    # How fast is bench/click_study.py's to say (a timed test fails on a busy machine, not on slow code).
    rng = np.random.default_rng(2)
    image = np.clip(rng.normal(40, 10, (1500, 2000, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:1500, :2000]
    truth = ((yy - 700) / 500) ** 2 + ((xx - 1000) / 700) ** 2 <= 1
    image[truth] = (200, 120, 60)
    mask = sc.propose(image, sc.extreme_points(truth), [sc.Click(1000, 700, True)])
    assert mask.shape == truth.shape and sc.iou(mask, truth) > 0.95


def test_the_reply_runs_round_trip():
    rng = np.random.default_rng(3)
    for mask in (rng.random((7, 9)) < 0.4, np.zeros((5, 5), bool), np.ones((3, 4), bool)):
        reply = sc.runs(mask)
        assert (from_runs(reply, mask.shape) == mask).all()
    corner = np.zeros((6, 6), bool)
    corner[4:, 4:] = True
    assert sc.runs(corner) == {"box": [4, 4, 2, 2], "counts": [0, 4]}


@pytest.mark.parametrize("body, message", [
    ({"points": [[1, 1], [2, 2], [3, 3]]}, "4 extreme points (top, left, bottom, right), got 3 points"),
    ({}, "4 extreme points (top, left, bottom, right), got NoneType"),
    ({"points": [[1, 1], [2, 2], [3, 3], [128, 5]]}, "point 4 (128, 5) is outside the 128 x 96 image"),
    ({"points": [[1, 1], [2, 2], [3, -0.5], [4, 4]]}, "point 3 (3, -0.5) is outside"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, "4"]]}, "point 4 must be [x, y] in image pixels"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, True]]}, "point 4 must be [x, y]"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, 4]], "clicks": [{"x": 5, "y": 5}]}, "click 1 must be {x, y, positive"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, 4]], "clicks": [{"x": 5, "y": 96, "positive": True}]}, "click 1 (5, 96)"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, 4]], "clicks": {"x": 1}}, "clicks must be a list"),
    ({"points": [[1, 1], [2, 2], [3, 3], [4, 4]], "clicks": [{"x": 1, "y": 1, "positive": True}] * 21}, "at most 20"),
])
def test_a_bad_request_says_what_is_wrong(body, message):
    with pytest.raises(ValueError) as caught:
        sc.parse_request(body, W, H)
    assert message in str(caught.value)


# ---------------------------------------------------------------- the worker page's endpoint


def test_the_page_proposes_an_object_for_the_item_the_person_holds_validation_items_too(tmp_path, workforce):
    image, truth, _ = scene()
    (tmp_path / "scene.png").write_bytes(png(image))
    (tmp_path / "copy.png").write_bytes(png(image))
    model = np.zeros((H, W), np.uint8)
    model[:40, :40] = 1  # a guess nowhere near the object: a proposal that used it would show
    from labelloop.tasks.semantic_segmentation import mask_value

    guess = {"class": mask_value(model), "confidence": 0.9}
    lines = [{"source-ref": str(tmp_path / "scene.png"), "labelloop-role": "validation", "labelloop-guess": guess},
             {"source-ref": str(tmp_path / "copy.png"), "labelloop-role": "train", "labelloop-guess": guess}]
    job = Job(workforce, make_params(tmp_path, lines, PreHumanTaskLambdaArn=SEGMENTATION))
    item = job.next()["item"]
    assert item["index"] == 0 and item["guess"] is None and item["widget_options"]["clicks"] is True
    points = [list(p) for p in sc.extreme_points(truth)]
    status, reply, _ = job.request("POST", "/api/propose", {"job": job.name, "item": 0, "points": points})
    assert status == 200, reply
    first = from_runs(reply, (H, W))
    assert sc.iou(first, truth) > 0.9 and reply["proposer"] == sc.DEFAULT_PROPOSER and reply["seconds"] < 1.0
    clicks = [{"x": 68, "y": 23, "positive": False}]
    status, reply, _ = job.request("POST", "/api/propose", {"job": job.name, "item": 0, "points": points, "clicks": clicks})
    assert status == 200 and not from_runs(reply, (H, W))[21:27, 66:73].any()
    assert job.journal_bytes() == b"", "a proposal is no answer: nothing is recorded"
    assert job.answer(0, mask_value(first.astype(np.uint8) * 2))[0] == 200
    assert job.next()["item"]["index"] == 1
    status, routed, _ = job.request("POST", "/api/propose", {"job": job.name, "item": 1, "points": points})
    assert status == 200 and (from_runs(routed, (H, W)) == first).all(), "the same image and clicks, the same mask"


def test_bad_proposal_requests_are_refused_with_a_clear_message(tmp_path, workforce):
    image, truth, _ = scene()
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png(image))
    lines = [{"source-ref": str(tmp_path / "a.png")}, {"source-ref": str(tmp_path / "b.png")}]
    job = Job(workforce, make_params(tmp_path, lines, PreHumanTaskLambdaArn=SEGMENTATION))
    assert job.next("alice")["item"]["index"] == 0 and job.next("bob")["item"]["index"] == 1
    points = [list(p) for p in sc.extreme_points(truth)]
    body = lambda **kw: {"job": job.name, "item": 0, "points": points, **kw}  # noqa: E731
    refused = [
        (dict(body=body(points=points[:3])), 400, "item 0: points must be the object's 4 extreme points"),
        (dict(body=body(points=[*points[:3], [500, 5]])), 400, "item 0: point 4 (500, 5) is outside the 128 x 96 image"),
        (dict(body=body(clicks=[{"x": 1, "y": 1}])), 400, "click 1 must be {x, y, positive: true|false}"),
        (dict(body=body(item=7)), 404, "no item 7 in batch"),
        (dict(body=body(job="nope")), 404, "no labeling job 'nope'"),
        (dict(body=body(item=1)), 409, "item 1 is not assigned to worker alice"),
        (dict(body=body(), token=None), 401, "missing access token"),
        (dict(body=body(), token="not-the-token-at-all"), 403, "wrong access token"),
        (dict(body=body(), headers={"Origin": "http://evil.example"}), 403, "from another site"),
        (dict(body=body(), worker=None), 400, "no worker identity"),
    ]
    for kwargs, expected, message in refused:
        status, data, _ = job.request("POST", "/api/propose", **kwargs)
        assert status == expected and message in data["error"], (kwargs, status, data)
    assert job.request("POST", "/api/propose", body())[0] == 200


def test_a_task_type_without_a_click_tool_refuses_proposals(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(1)))
    job.next()
    status, data, _ = job.request("POST", "/api/propose", {"job": job.name, "item": 0, "points": [[0, 0]] * 4})
    assert status == 404 and data["error"] == "task type text-classification has no click tool"
