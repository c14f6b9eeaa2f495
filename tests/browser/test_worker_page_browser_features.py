"""The worker page's own features in headless Chromium, on a synthesized batch: suggestions, keys, two workers."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path


from labelloop.local.worker_page import PeopleWorkforce

from worker_page_browser_helpers import (
    click, image_loaded, journal, labeling_page, make_job, output_lines, page_state, press, start_job, wait_for, wait_item,
)


# ---------------------------------------------------------------- the page's features, on a synthesized batch


def _png(path: Path, size: int = 8) -> None:
    """A tiny grayscale PNG without Pillow's help (a diagonal)."""
    rows = b"".join(b"\x00" + bytes(255 if x == y else 0 for x in range(size)) for y in range(size))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def output_labels(params: dict) -> list[int | None]:
    return [line.get(params["LabelAttributeName"]) for line in output_lines(params)]


def test_suggestion_enter_letters_and_text_items(tmp_path, open_browser, screenshot, console_errors):
    image = tmp_path / "diagonal.png"
    _png(image)
    params = make_job(tmp_path, [
        {"source": "A small animal that purrs.", "labelloop-guess": {"class": 1, "confidence": 0.87}},
        {"source": "<b>not bold</b> & a big striped cat"},
        {"source-ref": str(image)},
        {"source": "It says moo, supposedly.", "labelloop-guess": {"class": 5}},
    ])
    with labeling_page(open_browser, console_errors, params) as page:
        driver, s = page.driver, page.first
        assert s["index"] == 0
        assert "model suggests: dog (87 %)" in s["guess"]
        assert "0 / 4 done" in s["progress"]
        labels = driver.execute_script(
            "return [...document.querySelectorAll('#categories button')].map(b => b.textContent)")
        assert labels[0] == "1cat" and labels[9] == "0frog" and labels[10] == "alion" and labels[11] == "btiger"
        screenshot(driver, tmp_path / "worker-page-suggestion.png", full_page=False)
        press(driver, "\ue007")  # Enter confirms the suggestion
        s = wait_item(driver, other_than=(s["job"], 0))
        assert s["index"] == 1 and s["guess"] is None
        shown = driver.execute_script("return document.getElementById('text').textContent")
        assert shown == "<b>not bold</b> & a big striped cat", "text is shown as text, never as HTML"
        press(driver, "\ue007")  # no suggestion: Enter does nothing
        time.sleep(0.5)
        assert page_state(driver)["index"] == 1 and "1 / 4 done" in page_state(driver)["progress"]
        press(driver, "b")  # the 12th category's shortcut
        s = wait_item(driver, other_than=(s["job"], 1))
        assert s["index"] == 2
        wait_for(lambda: image_loaded(driver), 10, "the image")
        click(driver, '#categories button[data-class="10"]')
        s = wait_item(driver, other_than=(s["job"], 2))
        assert s["index"] == 3 and s["guess"].startswith("model suggests: cow —"), "no confidence, no percentage"
        press(driver, "1")  # correct the model
        wait_for(lambda: page_state(driver)["state"] == "idle", 10, "the page to say the batch is done")
        assert "complete" in page_state(driver)["message"]
    assert output_labels(params) == [1, 11, 10, 0]
    assert page.workforce.answered == 4


def test_two_browsers_are_two_workers_and_never_get_the_same_item(tmp_path, open_browser):
    params = make_job(tmp_path, [{"source": f"item {i}"} for i in range(2)])
    with PeopleWorkforce(port=0) as workforce:
        thread, box = start_job(workforce, params)
        first, second = open_browser(), open_browser()
        try:
            first.get(workforce.url)
            a = wait_item(first)
            second.get(workforce.url)
            b = wait_item(second)
            assert a["worker"] != b["worker"], "each browser gets its own worker id (cookie)"
            assert {a["index"], b["index"]} == {0, 1}, "an item leased to one worker is not handed to another"
            press(first, "1")
            press(second, "2")
            thread.join(10)
        finally:
            first.quit()
            second.quit()
    assert box["describe"]["LabelCounters"]["HumanLabeled"] == 2
    answers = journal(Path(params["OutputConfig"]["S3OutputPath"]), params["LabelingJobName"])
    assert len({e["worker"] for e in answers}) == 2
    labels = output_labels(params)
    assert labels[a["index"]] == 0 and labels[b["index"]] == 1


def test_a_validation_item_reaches_the_page_blind(tmp_path, open_browser, console_errors):
    guess = {"class": 1, "confidence": 0.87}
    params = make_job(tmp_path, [
        {"source": "A small animal that purrs.", "labelloop-role": "validation", "labelloop-guess": guess},
        {"source": "It barks.", "labelloop-role": "train", "labelloop-guess": guess},
    ])
    with labeling_page(open_browser, console_errors, params) as page:
        driver, s = page.driver, page.first
        assert s["index"] == 0 and s["guess"] is None, "no suggestion on a validation item"
        shown = driver.execute_script(
            "return {text: document.body.innerText, suggested: document.querySelectorAll('.suggested').length}")
        # "87 %", not "87": the worker's random id can hold the digits 87
        assert "suggests" not in shown["text"] and "87 %" not in shown["text"] and shown["suggested"] == 0
        seen = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
            fetch('/api/next', {method: 'POST', headers: {'Content-Type': 'application/json',
                'X-Labelloop-Token': new URLSearchParams(location.search).get('token')}, body: '{}'})
              .then(r => r.text()).then(done, e => done('error: ' + e));""")
        assert '"guess": null' in seen and "0.87" not in seen, "what the page gets from the server has no guess"
        press(driver, "\ue007")  # Enter confirms a suggestion: there is none, so nothing is answered
        time.sleep(0.5)
        assert page_state(driver)["index"] == 0 and "0 / 2 done" in page_state(driver)["progress"]
        press(driver, "3")
        s = wait_item(driver, other_than=(s["job"], 0))
        assert s["index"] == 1 and "model suggests: dog (87 %)" in s["guess"], "a training item keeps its suggestion"
        press(driver, "\ue007")
    assert output_labels(params) == [2, 1]
