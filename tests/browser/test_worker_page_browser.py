"""People label on the local worker page, in real headless Chromium.

The first tests share one real local run: the real state machine, handlers and CNN (training
and batch transform in subprocesses), with both human batches answered on the worker page by
typing and clicking, including a skip and an undo. The report of that run is then rendered in
Chromium. The last tests drive the page's own features on a synthesized batch: the model's
suggestion confirmed with Enter, letter shortcuts, text items, and two browsers as two workers.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from labelloop.datasets import load_truth
from labelloop.datasets.digits import prepare_digits
from labelloop.local.engine import LocalEngine
from labelloop.local.worker_page import PeopleWorkforce
from labelloop.report import write_report

RUN_TIMEOUT = 600  # seconds for the whole run; a quiet 2-core machine needs about a minute


# ---------------------------------------------------------------- page helpers


def page_state(driver) -> dict:
    return driver.execute_script(
        """const item = document.getElementById('item');
        return {state: document.body.dataset.state || null, job: item.dataset.job || null,
                index: item.dataset.index === undefined ? null : Number(item.dataset.index),
                key: item.dataset.key || null, error: document.getElementById('error').textContent,
                progress: document.getElementById('progress-text').textContent,
                guess: document.getElementById('guess').hidden ? null : document.getElementById('guess').textContent,
                message: document.getElementById('message').textContent,
                worker: document.getElementById('worker').textContent};"""
    )


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_item(driver, other_than: tuple | None = None, timeout: float = 30.0) -> dict:
    """Wait until the page shows an item other than `other_than` ((job, index)); fail on a page error."""

    def ready():
        s = page_state(driver)
        assert not s["error"], f"the page shows an error: {s['error']}"
        if s["state"] == "item" and (other_than is None or (s["job"], s["index"]) != other_than):
            return s
        return None

    return wait_for(ready, timeout, "the next item")


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def click(driver, css: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, css).click()


def key_for(index: int) -> str:
    return str(index + 1) if index < 9 else "0" if index == 9 else chr(ord("a") + index - 10)


def image_loaded(driver) -> bool:
    return driver.execute_script(
        "const i = document.getElementById('image'); return !i.hidden && i.complete && i.naturalWidth > 0;"
    )


def journal(out: Path, job: str) -> list[dict]:
    path = out / job / "annotations" / "worker-response" / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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


# ---------------------------------------------------------------- the page's features, on a synthesized batch


CATEGORIES = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "duck", "frog", "lion", "tiger"]


def _png(path: Path, size: int = 8) -> None:
    """A tiny grayscale PNG without Pillow's help (a diagonal)."""
    rows = b"".join(b"\x00" + bytes(255 if x == y else 0 for x in range(size)) for y in range(size))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def make_job(folder: Path, lines: list[dict], workers: int = 1, name: str = "pets-001-label",
             categories: list[str] = CATEGORIES, attribute: str = "animal", lambdas: str = "TextMultiClass") -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(json.dumps({"document-version": "2018-11-28", "labels": [{"label": c} for c in categories]}))
    (folder / "batch.manifest").write_text("".join(json.dumps({"labelloop-id": i, **line}) + "\n" for i, line in enumerate(lines)))
    return {
        "LabelingJobName": name,
        "LabelAttributeName": attribute,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": str(folder / "batch.manifest")}}},
        "OutputConfig": {"S3OutputPath": str(folder / "labeling")},
        "LabelCategoryConfigS3Uri": str(folder / "labels.json"),
        "HumanTaskConfig": {"NumberOfHumanWorkersPerDataObject": workers, "TaskTimeLimitInSeconds": 300,
                            "PreHumanTaskLambdaArn": f"arn:aws:lambda:us-east-1:432418664414:function:PRE-{lambdas}"},
    }


def start_job(workforce: PeopleWorkforce, params: dict) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def go():
        try:
            box["describe"] = workforce.run_labeling_job(params)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    wait_for(lambda: workforce._server is not None and workforce._current() is not None, 10, "the job to open")
    return thread, box


@contextlib.contextmanager
def labeling_page(open_browser, console_errors, params: dict):
    """The labeling job `params` served locally and open in one fresh browser; yields `.driver`,
    `.workforce` and `.first` (the first item's page state). When the body ends without an error,
    the job must have completed and the browser console stayed clean."""
    with PeopleWorkforce(port=0) as workforce:
        thread, box = start_job(workforce, params)
        driver = open_browser()
        try:
            driver.get(workforce.url)
            yield SimpleNamespace(driver=driver, workforce=workforce, first=wait_item(driver))
            thread.join(10)
            assert box.get("describe", {}).get("LabelingJobStatus") == "Completed", box
            assert console_errors(driver) == []
        finally:
            driver.quit()


def output_lines(params: dict) -> list[dict]:
    path = Path(params["OutputConfig"]["S3OutputPath"]) / params["LabelingJobName"] / "manifests" / "output" / "output.manifest"
    return [json.loads(line) for line in path.read_text().splitlines()]


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
