"""People draw, move, resize and delete boxes with the mouse on the local worker page (headless Chromium)."""

from __future__ import annotations


import pytest
from PIL import Image

from worker_page_browser_helpers import image_loaded, labeling_page, make_job, output_lines, press, wait_for, wait_item

CLASSES = ["car", "pedestrian", "sign"]


def drag(driver, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at `start`, move to `end` in steps, release; both in the image's own pixels."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    img = driver.find_element(By.ID, "image")
    k = driver.execute_script("const i = arguments[0]; return i.clientWidth / i.naturalWidth;", img)
    w, h = img.size["width"], img.size["height"]
    at = lambda p: (round(p[0] * k - w / 2), round(p[1] * k - h / 2))  # noqa: E731 - offsets from the centre
    chain = ActionChains(driver).move_to_element_with_offset(img, *at(start)).click_and_hold()
    for f in (0.25, 0.5, 0.75, 1.0):
        chain.move_to_element_with_offset(img, *at((start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]))))
    chain.release().perform()


def boxes_shown(driver) -> list[dict]:
    return driver.execute_script(
        """return [...document.querySelectorAll('#box-layer .box')].map(b => ({cls: Number(b.dataset.class),
             selected: b.classList.contains('selected')}));""")


def test_boxes_drawn_moved_resized_and_deleted_with_the_mouse(tmp_path, open_browser, console_errors):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (200, 100), (40, 40, 40)).save(tmp_path / name)
    suggestion = {"class": {"image_size": [{"width": 200, "height": 100, "depth": 3}],
                            "annotations": [{"class_id": 2, "left": 150, "top": 10, "width": 30, "height": 30}]},
                  "confidence": 0.71}
    params = make_job(tmp_path, [
        {"source-ref": str(tmp_path / "a.png")},
        {"source-ref": str(tmp_path / "b.png"), "labelloop-role": "train", "labelloop-guess": suggestion},
        {"source-ref": str(tmp_path / "c.png"), "labelloop-role": "validation", "labelloop-guess": suggestion},
    ], name="street-001-label", categories=CLASSES, attribute="objects", lambdas="BoundingBox")
    with labeling_page(open_browser, console_errors, params) as page:
        driver, s = page.driver, page.first
        wait_for(lambda: image_loaded(driver), 10, "the image")
        assert s["index"] == 0 and s["guess"] is None and boxes_shown(driver) == []
        drag(driver, (20, 20), (60, 50))  # draw a box, then name it: a car
        press(driver, "1")
        drag(driver, (100, 30), (120, 90))  # and a pedestrian
        press(driver, "2")
        drag(driver, (5, 5), (6, 6))  # a click, not a box
        assert [b["cls"] for b in boxes_shown(driver)] == [0, 1]
        drag(driver, (110, 60), (130, 60))  # move the pedestrian 20 px right
        drag(driver, (140, 90), (150, 95))  # its corner handle: resize to 30 x 65
        drag(driver, (40, 35), (40, 35))  # select the car ...
        press(driver, "\ue017")  # ... and Delete it
        assert [b["cls"] for b in boxes_shown(driver)] == [1]
        press(driver, "\ue007")  # Enter submits
        s = wait_item(driver, other_than=(s["job"], 0))
        wait_for(lambda: image_loaded(driver), 10, "the image")
        # A routed image starts from the model's boxes; adjust: re-class it as a car, then submit.
        assert s["index"] == 1 and "the model's boxes (71 %)" in s["guess"]
        assert boxes_shown(driver) == [{"cls": 2, "selected": False}]
        drag(driver, (160, 20), (160, 20))
        press(driver, "1")
        press(driver, "\ue007")
        s = wait_item(driver, other_than=(s["job"], 1))
        wait_for(lambda: image_loaded(driver), 10, "the image")
        # A validation image is drawn blind: no model boxes, no suggestion; "No objects" answers it.
        assert s["index"] == 2 and s["guess"] is None and boxes_shown(driver) == []
        driver.find_element("id", "box-none").click()
    lines = output_lines(params)
    first = lines[0]["objects"]
    assert first["image_size"] == [{"width": 200, "height": 100, "depth": 3}]
    (pedestrian,) = first["annotations"]
    assert pedestrian["class_id"] == 1
    assert pedestrian["left"] == pytest.approx(120, abs=2) and pedestrian["top"] == pytest.approx(30, abs=2)
    assert pedestrian["width"] == pytest.approx(30, abs=2) and pedestrian["height"] == pytest.approx(65, abs=2)
    assert lines[0]["objects-metadata"]["class-map"] == {"1": "pedestrian"}
    assert lines[0]["objects-metadata"]["type"] == "groundtruth/object-detection"
    assert lines[1]["objects"]["annotations"] == [{"class_id": 0, "left": 150, "top": 10, "width": 30, "height": 30}]
    assert lines[2]["objects"]["annotations"] == [] and lines[2]["objects-metadata"]["human-annotated"] == "yes"
