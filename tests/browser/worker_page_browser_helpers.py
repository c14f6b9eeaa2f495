"""Shared by the browser tests of the worker page and its widgets: the page's state, keys, clicks, a served job."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace


from labelloop.local.worker_page import PeopleWorkforce


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


def image_loaded(driver) -> bool:
    return driver.execute_script(
        "const i = document.getElementById('image'); return !i.hidden && i.complete && i.naturalWidth > 0;"
    )


def journal(out: Path, job: str) -> list[dict]:
    path = out / job / "annotations" / "worker-response" / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CATEGORIES = ["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat", "duck", "frog", "lion", "tiger"]


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
