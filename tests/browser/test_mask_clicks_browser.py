"""People make masks with few clicks on the local worker page (headless Chromium, real mouse
events): four extreme points give an object, a corrective click takes a wrong blob away, Ctrl+Z
takes a click back, objects go into the image's mask one at a time, the brush still paints."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from labelloop import tasks
from labelloop.tasks.semantic_segmentation.clicks import extreme_points, iou
from labelloop.tasks.semantic_segmentation import decode_mask, hex_colors, mask_value
from test_box_widget_browser import drag
from test_mask_widget_browser import click_at, ctrl_z, ready, rgb, shown
from worker_page_browser_helpers import labeling_page, make_job, output_lines, press, wait_for, wait_item

CLASSES = ["shirt", "bag", "shoe"]  # class ids 1, 2, 3
W, H = 128, 96
ATTRIBUTE = "clothes-ref"


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, ellipse, rectangle, blob): two bright objects on dark noise, and a dimmer blob inside
    the ellipse's extreme points' box that is not part of it."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:H, :W]
    ellipse = ((yy - 50) / 30) ** 2 + ((xx - 45) / 22) ** 2 <= 1
    rectangle = np.zeros((H, W), bool)
    rectangle[20:70, 90:118] = True
    blob = np.zeros((H, W), bool)
    blob[21:27, 61:68] = True
    image = rng.normal(30, 8, (H, W))
    image[ellipse] = rng.normal(190, 15, ellipse.sum())
    image[rectangle] = rng.normal(120, 10, rectangle.sum())
    image[blob] = rng.normal(150, 10, blob.sum())
    return np.clip(image, 0, 255).astype(np.uint8), ellipse, rectangle, blob


def status(driver) -> str:
    return driver.find_element("id", "mask-status").text


def clicked(driver, *points: tuple[int, int]) -> float:
    """Click image pixels (their centres); the seconds until the proposed mask is painted."""
    click_at(driver, *((x + 0.5, y + 0.5) for x, y in points))
    start = time.monotonic()
    wait_for(lambda: " px · click a wrong region" in status(driver), 10, "the proposed mask")
    return time.monotonic() - start


def test_an_object_from_four_extreme_clicks_corrected_by_one_more(tmp_path, open_browser, screenshot, console_errors):
    image, ellipse, rectangle, blob = scene()
    Image.fromarray(image).convert("RGB").save(tmp_path / "clothes.png")
    model = np.zeros((H, W), np.uint8)
    model[:30, :30] = 1  # a validation image gets the click tool, never the model's mask
    params = make_job(tmp_path, [{"source-ref": str(tmp_path / "clothes.png"), "labelloop-role": "validation",
                                  "labelloop-guess": {"class": mask_value(model), "confidence": 0.9}}],
                      name="clothes-001-label", categories=CLASSES, attribute=ATTRIBUTE, lambdas="SemanticSegmentation")
    colors = hex_colors(len(CLASSES))
    with labeling_page(open_browser, console_errors, params) as page:
        driver, s = page.driver, page.first
        wait_for(lambda: ready(driver), 10, "the mask widget")
        assert s["guess"] is None and shown(driver, 10, 10)[3] == 0, "a validation image is painted blind"
        press(driver, "2")  # bag
        press(driver, "c")  # the click tool
        top, left, bottom, right = extreme_points(ellipse)
        click_at(driver, *((x + 0.5, y + 0.5) for x, y in (top, left, bottom)))
        assert "extreme point 3 of 4" in status(driver) and shown(driver, 45, 50)[3] == 0
        seconds = clicked(driver, right)
        assert seconds < 1.0, f"the proposed mask took {seconds:.2f} s"
        bag = [*rgb(colors[2]), 255]
        assert shown(driver, 45, 50) == bag and shown(driver, 64, 24) == bag, "the object, and the blob in its box"
        assert shown(driver, 100, 40)[3] == 0
        clicked(driver, (64, 24))  # on the blob, which the mask has: "not the object"
        assert shown(driver, 64, 24)[3] == 0 and shown(driver, 45, 50) == bag
        ctrl_z(driver)  # takes back that click, not the object
        assert shown(driver, 64, 24) == bag and shown(driver, 45, 50) == bag
        assert s["index"] == 0 and wait_item(driver)["index"] == 0, "Ctrl+Z took back a click, not an answer"
        clicked(driver, (64, 24))
        screenshot(driver, tmp_path / "mask-clicks.png")
        press(driver, "\ue007")  # Enter: the object is done (the next Enter submits)
        press(driver, "3")  # shoe: a second object, its four clicks in another order
        r_top, r_left, r_bottom, r_right = extreme_points(rectangle)
        click_at(driver, *((x + 0.5, y + 0.5) for x, y in (r_left, r_right, r_top)))
        clicked(driver, r_bottom)
        done = driver.find_element("id", "mask-object-done")
        assert done.is_enabled()
        done.click()
        assert not done.is_enabled(), "the object is done: the next click starts another"
        assert shown(driver, 100, 40) == [*rgb(colors[3]), 255] and shown(driver, 45, 50) == bag
        press(driver, "1")  # shirt: the brush still paints the last pixels
        press(driver, "b")
        drag(driver, (5.5, 90.5), (5.5, 90.5))
        press(driver, "\ue007")  # Enter submits
    task = tasks.get("semantic-segmentation")
    mask = decode_mask(task.line_label(output_lines(params)[0], ATTRIBUTE, CLASSES))
    assert mask.shape == (H, W)
    assert iou(mask == 2, ellipse) > 0.9 and not (mask[blob] == 2).any(), "the bag, without the blob"
    assert iou(mask == 3, rectangle) > 0.9, "the shoe"
    assert mask[90, 5] == 1 and (mask == 1).sum() <= 16, "the brush's dab"
    assert not mask[:15, :15].any(), "nothing of the model's mask"
    # The answer's cost in clicks: 4 + 2 for the bag (the click taken back was spent all the same), 4 for the
    # shoe; the brush's dab is no click of the tool.
    assert output_lines(params)[0][f"{ATTRIBUTE}-metadata"]["labelloop-clicks"] == 10
