"""People label on the local worker page, in real headless Chromium.

The first tests share one real local run: the real state machine, handlers and CNN (training
and batch transform in subprocesses), with both human batches answered on the worker page by
typing and clicking, including a skip and an undo. The report of that run is then rendered in
Chromium. The page's own features on a synthesized batch (the model's suggestion confirmed with
Enter, letter shortcuts, text items, two browsers as two workers) are in
test_worker_page_browser_features.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from labelloop.datasets import load_truth
from labelloop.datasets.digits import prepare_digits
from labelloop.local.engine import LocalEngine
from labelloop.local.worker_page import PeopleWorkforce
from labelloop.report import write_report

from worker_page_browser_helpers import click, image_loaded, journal, page_state, press, wait_for, wait_item

RUN_TIMEOUT = 600  # seconds for the whole run; a quiet 2-core machine needs about a minute


def key_for(index: int) -> str:
    return str(index + 1) if index < 9 else "0" if index == 9 else chr(ord("a") + index - 10)


# ---------------------------------------------------------------- a real local run, labeled in the browser


@pytest.fixture(scope="module")
def labeled_run(tmp_path_factory, open_browser, screenshot, console_errors):
    root = tmp_path_factory.mktemp("people-run")
    data = prepare_digits(root / "data", limit=120)
    truth = load_truth(data.truth)
    classes = data.class_names
    urls: list[str] = []
    workforce = PeopleWorkforce(port=0, on_ready=urls.append)
    out = root / "run"
    engine = LocalEngine(out / "work", workforce)
    execution_input = {
        "ManifestUri": str(data.manifest),
        "OutputUri": str(out),
        "JobName": "people",
        "TaskType": "image-classification",
        "LabelAttributeName": "digit",
        "LabelCategoryConfigUri": str(data.label_config),
        "HumanBatchSize": 10,
        "MaxHumanLabeledObjectCount": 20,
        "ValidationPolicy": "ground-truth",
        "ValidationFraction": 0.3,
        "Seed": 0,
    }
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = engine.run(execution_input, name="people-browser", timeout_seconds=RUN_TIMEOUT)
        except BaseException as exc:  # reported by the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="labelloop-run", daemon=True)
    started = time.monotonic()
    thread.start()
    driver = open_browser()
    story: dict = {"answers": [], "skipped": None, "undone": None, "wrong": None, "images": 0, "console": None}
    try:
        wait_for(lambda: urls or not thread.is_alive(), 120, "the worker page to start")
        assert urls, f"the run ended before any labeling job: {outcome}"
        driver.get(urls[0])
        last = None
        while thread.is_alive() and time.monotonic() - started < RUN_TIMEOUT:
            s = page_state(driver)
            assert not s["error"], f"the page shows an error: {s['error']}"
            if s["state"] != "item" or (s["job"], s["index"]) == last:
                time.sleep(0.1)
                continue
            current = (s["job"], s["index"])
            wait_for(lambda: image_loaded(driver), 10, "the item's image")
            story["images"] += 1
            right = classes.index(truth[s["key"]])
            if story["skipped"] is None:  # skip the very first item: it comes back at the end of its batch
                press(driver, "\ue014")  # ArrowRight
                story["skipped"] = s["key"]
                wait_item(driver, other_than=current)
                continue
            if story["undone"] is None:  # a wrong answer, then undo: the same item comes back
                wrong = (right + 1) % len(classes)
                click(driver, f'#categories button[data-class="{wrong}"]')
                wait_item(driver, other_than=current)
                screenshot(driver, root / "worker-page.png", full_page=False)
                click(driver, "#undo")
                wait_for(lambda want=current: (page_state(driver)["job"], page_state(driver)["index"]) == want, 15,
                         "the undone item")
                story["undone"], story["wrong"] = s["key"], wrong
            if len(story["answers"]) % 2:
                click(driver, f'#categories button[data-class="{right}"]')
            else:
                press(driver, key_for(right))
            story["answers"].append({"job": s["job"], "key": s["key"], "label": right})
            last = current
        thread.join(timeout=max(1.0, RUN_TIMEOUT - (time.monotonic() - started)))
        story["console"] = console_errors(driver)
        story["idle"] = page_state(driver)
    finally:
        workforce.close()
        driver.quit()
    assert not thread.is_alive(), "the run did not end"
    assert "error" not in outcome, f"the run raised {outcome['error']!r}"
    return {
        "result": outcome["result"], "workforce": workforce, "story": story, "out": out, "root": root,
        "truth": truth, "classes": classes, "seconds": time.monotonic() - started,
    }


def test_run_succeeds_with_the_answers_given_in_the_browser(labeled_run):
    result, story, workforce = labeled_run["result"], labeled_run["story"], labeled_run["workforce"]
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert result.summary["StopReason"] == "human-budget-spent"
    assert result.summary["HumanLabeled"] == 20 == len(story["answers"]) == workforce.answered
    assert story["images"] >= 20, "every item was shown with its image"
    lines = [json.loads(line) for line in Path(result.summary["OutputManifestUri"]).read_text().splitlines() if line.strip()]
    assert len(lines) == 120
    human = {line["source-ref"]: line for line in lines if line["digit-metadata"].get("human-annotated") == "yes"}
    answered = {a["key"]: a["label"] for a in story["answers"]}
    assert set(human) == set(answered)
    for key, line in human.items():
        assert line["digit"] == answered[key]
        assert line["digit-metadata"]["class-name"] == labeled_run["truth"][key]
    assert story["console"] == [], f"browser console errors: {story['console']}"


def test_each_batch_went_through_the_page_and_its_journal(labeled_run):
    story, out = labeled_run["story"], labeled_run["out"]
    jobs = sorted({a["job"] for a in story["answers"]})
    assert len(jobs) == 2, "two human batches of 10"
    for job in jobs:
        events = journal(out / "labeling", job)
        answers = [e for e in events if e["event"] == "answer"]
        undone = {e["answer-id"] for e in events if e["event"] == "undo"}
        kept = [e for e in answers if e["answer-id"] not in undone]
        assert sorted(e["key"] for e in kept) == sorted(a["key"] for a in story["answers"] if a["job"] == job)
        output = out / "labeling" / job / "manifests" / "output" / "output.manifest"
        assert len(output.read_text().splitlines()) == 10
    assert story["idle"]["state"] == "idle" and "complete" in story["idle"]["message"]


def test_skip_brings_the_item_back_last_and_undo_replaces_the_answer(labeled_run):
    story, out = labeled_run["story"], labeled_run["out"]
    first_job = story["answers"][0]["job"]
    first_batch = [a for a in story["answers"] if a["job"] == first_job]
    assert first_batch[-1]["key"] == story["skipped"], "the skipped item was answered last in its batch"
    events = journal(out / "labeling", first_job)
    wrong = [e for e in events if e["event"] == "answer" and e["key"] == story["undone"] and e["label"] == story["wrong"]]
    assert len(wrong) == 1
    assert any(e["event"] == "undo" and e["answer-id"] == wrong[0]["answer-id"] for e in events)
    final = {a["key"]: a["label"] for a in story["answers"]}
    assert final[story["undone"]] != story["wrong"]


def test_worker_page_screenshot_shows_an_item(labeled_run):
    shot = labeled_run["root"] / "worker-page.png"
    assert shot.is_file() and shot.stat().st_size > 5000


def test_report_of_the_run_renders_in_chromium(labeled_run, open_browser, screenshot):
    from selenium.webdriver.common.by import By

    path = write_report(labeled_run["out"])
    assert path == labeled_run["out"] / "report" / "report.html"
    driver = open_browser()
    try:
        driver.get(path.as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) >= 3 + 20, "three plots and the examples"
        broken = driver.execute_script("return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0
        rows = driver.find_elements(By.CSS_SELECTOR, "table.iterations tbody tr")
        assert len(rows) == labeled_run["result"].summary["Iterations"] == 2
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "$1.60" in text, "20 human labels x $0.08 x 1 worker"
        assert "Routed to humans" in text
        shot = screenshot(driver, labeled_run["root"] / "report.png")
        assert shot.stat().st_size > 20000
    finally:
        driver.quit()
    for name in ("labels.png", "calibration.png", "classes.png"):
        assert (path.parent / name).stat().st_size > 1000
