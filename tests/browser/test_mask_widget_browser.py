"""People paint masks with the mouse on the local worker page (headless Chromium): brush, polygon,
eraser, undo, and the model's mask to fix on a routed image but never on a validation image."""

from __future__ import annotations

import base64
import numpy as np
from PIL import Image

from labelloop import tasks
from labelloop.tasks.semantic_segmentation import decode_mask, hex_colors, mask_value
from test_box_widget_browser import drag
from worker_page_browser_helpers import image_loaded, journal, labeling_page, make_job, output_lines, page_state, press, wait_for, \
    wait_item

CLASSES = ["road", "car", "person"]  # class ids 1, 2, 3; 0 is background
W, H = 128, 96  # not square: a transposed mask would not fit
ATTRIBUTE = "scene-ref"


def ready(driver) -> bool:
    """The image is shown and the widget has its mask (the model's, when it has one) to paint on."""
    return image_loaded(driver) and driver.execute_script(
        "const s = document.getElementById('mask-status'); return !!s && !s.textContent.startsWith('loading');")


def click_at(driver, *points: tuple[float, float]) -> None:
    """Click each point, given in the image's own pixels."""
    from selenium.webdriver.common.action_chains import ActionChains

    img = driver.find_element("id", "image")
    k = driver.execute_script("const i = arguments[0]; return i.clientWidth / i.naturalWidth;", img)
    chain = ActionChains(driver)
    for x, y in points:
        chain.move_to_element_with_offset(img, round(x * k - img.size["width"] / 2), round(y * k - img.size["height"] / 2))
        chain.click()
    chain.perform()


def shown(driver, x: int, y: int) -> list[int]:
    """The overlay's RGBA at an image pixel: what the person sees painted there."""
    return driver.execute_script(
        "return [...document.getElementById('mask-paint').getContext('2d').getImageData(arguments[0], arguments[1], 1, 1).data];",
        x, y)


def painted_pixels(driver) -> int:
    return driver.execute_script(
        """const c = document.getElementById('mask-paint'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;""")


def rgb(hex_color: str) -> list[int]:
    return [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]


def ctrl_z(driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()


def idat_start(label: str) -> bytes:
    """The first bytes of a PNG answer's image data: its zlib header and first deflate block header."""
    data = base64.b64decode(label.split(",", 1)[1])
    at = data.index(b"IDAT") + 4
    return data[at:at + 3]


def test_masks_painted_filled_erased_and_undone_with_the_mouse(tmp_path, open_browser, screenshot, console_errors):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (W, H), (60, 60, 60)).save(tmp_path / name)
    model = np.zeros((H, W), dtype=np.uint8)
    model[20:60, 30:70] = 2  # the model calls a block a car
    suggestion = {"class": mask_value(model), "confidence": 0.64}
    params = make_job(tmp_path, [
        {"source-ref": str(tmp_path / "a.png")},
        {"source-ref": str(tmp_path / "b.png"), "labelloop-role": "train", "labelloop-guess": suggestion},
        {"source-ref": str(tmp_path / "c.png"), "labelloop-role": "validation", "labelloop-guess": suggestion},
    ], name="streets-001-label", categories=CLASSES, attribute=ATTRIBUTE, lambdas="SemanticSegmentation")
    colors = hex_colors(len(CLASSES))
    with labeling_page(open_browser, console_errors, params) as page:
        driver, s = page.driver, page.first
        wait_for(lambda: ready(driver), 10, "the mask widget")
        assert s["index"] == 0 and s["guess"] is None and painted_pixels(driver) == 0
        for _ in range(5):  # the brush starts at 4 px on this image; ] widens it
            press(driver, "]")
        assert driver.find_element("id", "mask-size-label").text == "9 px"
        press(driver, "2")  # car: a 9 px stroke along y = 20
        drag(driver, (20, 20), (60, 20))
        press(driver, "1")  # road: a polygon, closed by clicking its first corner again
        press(driver, "p")
        click_at(driver, (70, 10), (110, 10), (110, 50), (70, 50), (70, 10))
        assert shown(driver, 80, 30) == [*rgb(colors[1]), 255]
        press(driver, "e")  # erase a 9 px column through the polygon
        drag(driver, (90, 5), (90, 55))
        press(driver, "b")
        press(driver, "3")  # person: two strokes taken back (Ctrl+Z, then the button), one kept
        drag(driver, (20, 70), (60, 70))
        ctrl_z(driver)
        drag(driver, (20, 85), (40, 85))
        driver.find_element("id", "mask-undo").click()
        drag(driver, (10, 60), (10, 90))
        assert shown(driver, 40, 70)[3] == 0 and shown(driver, 30, 85)[3] == 0
        assert page_state(driver)["index"] == 0, "Ctrl+Z took back a stroke, not the last answer"
        screenshot(driver, tmp_path / "mask-widget.png")
        # This browser has CompressionStream; without it the widget writes stored deflate blocks.
        driver.execute_script("window.savedCompression = window.CompressionStream; window.CompressionStream = undefined;")
        press(driver, "\ue007")  # Enter submits
        s = wait_item(driver, other_than=(s["job"], 0))
        driver.execute_script("window.CompressionStream = window.savedCompression;")
        wait_for(lambda: ready(driver), 10, "the model's mask")
        # A routed image starts from the model's mask: fix it with a person's dab, then submit.
        assert s["index"] == 1 and "the model's mask (64 %)" in s["guess"]
        assert shown(driver, 50, 40) == [*rgb(colors[2]), 255] and shown(driver, 100, 80)[3] == 0
        assert painted_pixels(driver) == 40 * 40
        press(driver, "3")
        drag(driver, (100.5, 80.5), (100.5, 80.5))
        press(driver, "p")  # a triangle closed with Enter, then taken back whole with Ctrl+Z
        click_at(driver, (100, 10), (124, 10), (124, 34))
        press(driver, "\ue007")
        assert shown(driver, 120, 14) == [*rgb(colors[3]), 255]
        ctrl_z(driver)
        assert shown(driver, 120, 14)[3] == 0 and shown(driver, 100, 80)[3] == 255
        press(driver, "\ue007")
        s = wait_item(driver, other_than=(s["job"], 1))
        wait_for(lambda: ready(driver), 10, "the mask widget")
        # A validation image is painted blind: no model mask, no suggestion.
        assert s["index"] == 2 and s["guess"] is None and painted_pixels(driver) == 0
        driver.find_element("id", "mask-submit").click()
    task = tasks.get("semantic-segmentation")
    lines = output_lines(params)
    first, routed, blind = (decode_mask(task.line_label(line, ATTRIBUTE, CLASSES)) for line in lines)
    assert first.shape == routed.shape == blind.shape == (H, W)
    assert (first[17:23, 22:58] == 2).all(), "the car stroke"
    # The polygon's corners were (70, 10) and (110, 50): exactly the pixels whose centres lie inside.
    assert (first[10:50, 70:84] == 1).all() and (first[10:50, 96:110] == 1).all(), "the road polygon"
    assert not first[:10].any() and not first[50:60, 66:].any() and not first[:, 110:].any(), "nothing past its edges"
    assert not first[10:50, 87:94].any(), "the erased column"
    assert (first[62:88, 8:12] == 3).all(), "the person stroke that was kept"
    assert (first[65:76, 15:65] == 0).all() and (first[80:90, 15:45] == 0).all(), "the undone strokes"
    assert set(np.unique(first)) == {0, 1, 2, 3}
    changed = routed != model
    assert routed[80, 100] == 3 and changed.sum() == (routed == 3).sum() <= 16, "the model's mask, plus the dab"
    assert not blind.any(), "nothing painted: all background"
    assert lines[0][f"{ATTRIBUTE}-metadata"]["type"] == "groundtruth/semantic-segmentation"
    answers = [record["label"] for record in journal(tmp_path / "labeling", params["LabelingJobName"])]
    assert idat_start(answers[0]) == b"\x78\x01\x01", "one final stored block: the widget's own zlib"
    assert idat_start(answers[1])[0] == 0x78 and (idat_start(answers[1])[2] >> 1) & 3 in (1, 2), "the browser's deflate"
