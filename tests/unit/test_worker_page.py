"""The local worker page over plain HTTP: answers, leases, several workers, the journal, bad requests.

Each test serves a small synthesized batch with `PeopleWorkforce` on a random loopback port and
talks to it over HTTP (http.client), as the page's script does.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from labelloop import tasks
from labelloop.local.worker_page import PeopleWorkforce, widget_for
from labelloop.local.workforce import SimulatedWorkforce, WorkforceError
from labelloop.manifest import CLICKS_KEY, item_key

CLASSES = ["cat", "dog", "bird"]


def make_params(folder: Path, lines: list[dict], workers: int = 1, name: str = "pets-abc-001-label", **task) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_text(
        json.dumps({"document-version": "2018-11-28", "labels": [{"label": c} for c in CLASSES]})
    )
    manifest = folder / f"{name}.manifest"
    manifest.write_text("".join(json.dumps({"labelloop-id": 10 + i, **line}) + "\n" for i, line in enumerate(lines)))
    return {
        "LabelingJobName": name,
        "LabelAttributeName": "animal",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": str(manifest)}}},
        "OutputConfig": {"S3OutputPath": str(folder / "labeling")},
        "LabelCategoryConfigS3Uri": str(folder / "labels.json"),
        "HumanTaskConfig": {
            "NumberOfHumanWorkersPerDataObject": workers,
            "TaskTimeLimitInSeconds": 300,
            "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-TextMultiClass",
            **task,
        },
    }


def texts(n: int) -> list[dict]:
    return [{"source": f"text number {i}"} for i in range(n)]


class Job:
    """A labeling job running in a thread, and an HTTP client for its page."""

    def __init__(self, workforce: PeopleWorkforce, params: dict):
        self.workforce, self.params = workforce, params
        self.box: dict = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (workforce._server is None or workforce._current() is None):
            if "error" in self.box:
                raise self.box["error"]
            time.sleep(0.01)
        self.port = workforce._server.server_address[1]
        self.token = workforce.token

    def _run(self) -> None:
        try:
            self.box["describe"] = self.workforce.run_labeling_job(self.params)
        except BaseException as exc:
            self.box["error"] = exc

    @property
    def name(self) -> str:
        return self.params["LabelingJobName"]

    @property
    def root(self) -> Path:
        return Path(self.params["OutputConfig"]["S3OutputPath"]) / self.name

    @property
    def journal(self) -> Path:
        return self.root / "annotations" / "worker-response" / "answers.jsonl"

    def journal_bytes(self) -> bytes:
        return self.journal.read_bytes() if self.journal.exists() else b""

    def request(self, method: str, path: str, body=None, *, worker: str | None = "alice", token: str | None = "",
                headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict | bytes, dict]:
        token = self.token if token == "" else token
        query = []
        if worker is not None:
            query.append(f"worker={worker}")
        sep = "&" if "?" in path else "?"
        url = path + (sep + "&".join(query) if query else "")
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            all_headers["X-Labelloop-Token"] = token
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, url, body=data, headers=all_headers)
            response = conn.getresponse()
            payload = response.read()
            kind = response.getheader("Content-Type", "")
            parsed = json.loads(payload) if kind.startswith("application/json") else payload
            return response.status, parsed, dict(response.getheaders())
        finally:
            conn.close()

    def next(self, worker: str = "alice") -> dict:
        status, data, _ = self.request("POST", "/api/next", {}, worker=worker)
        assert status == 200, data
        return data

    def answer(self, item: int, label: int, worker: str = "alice", answer_id: str | None = None, job: str | None = None):
        body = {"job": job or self.name, "item": item, "label": label}
        if answer_id:
            body["answer_id"] = answer_id
        return self.request("POST", "/api/answer", body, worker=worker)

    def answer_next(self, label: int, worker: str = "alice") -> int:
        data = self.next(worker)
        assert data["state"] == "item", data
        status, body, _ = self.answer(data["item"]["index"], label, worker)
        assert status == 200, body
        return data["item"]["index"]

    def result(self, timeout: float = 10) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the labeling job is still waiting"
        if "error" in self.box:
            raise self.box["error"]
        return self.box["describe"]

    def output(self) -> list[dict]:
        path = self.root / "manifests" / "output" / "output.manifest"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def workforce():
    wf = PeopleWorkforce(port=0)
    yield wf
    wf.close()


# ---------------------------------------------------------------- the happy path


def test_a_batch_answered_on_the_page_writes_ground_truths_output_like_the_simulated_workforce(tmp_path, workforce):
    urls: list[str] = []
    workforce.on_ready = urls.append
    params = make_params(tmp_path / "people", texts(3))
    job = Job(workforce, params)
    assert urls == [workforce.url] and urls[0].startswith(f"http://127.0.0.1:{job.port}/?token=")
    labels = {}
    for label in (2, 0, 1):
        labels[job.answer_next(label)] = label
    describe = job.result()
    assert describe["LabelingJobStatus"] == "Completed"
    assert describe["LabelCounters"]["HumanLabeled"] == 3 and describe["LabelCounters"]["FailedNonRetryableError"] == 0
    assert workforce.answered == 3 and workforce.jobs == [describe]
    out = job.output()
    assert [line["labelloop-id"] for line in out] == [10, 11, 12]
    assert [line["animal"] for line in out] == [labels[0], labels[1], labels[2]]

    # The simulated workforce, answering the same, writes the same lines (but the creation date).
    truth = {item_key(line): CLASSES[line["animal"]] for line in out}
    simulated_params = make_params(tmp_path / "simulated", texts(3))
    simulated = SimulatedWorkforce(truth).run_labeling_job(simulated_params)
    sim_out = [json.loads(line) for line in Path(simulated["LabelingJobOutput"]["OutputDatasetS3Uri"]).read_text().splitlines()]
    strip = lambda line: {**line, "animal-metadata": {k: v for k, v in line["animal-metadata"].items() if k != "creation-date"}}  # noqa: E731
    assert [strip(line) for line in out] == [strip(line) for line in sim_out]
    assert set(describe) == set(simulated)
    assert out[0]["animal-metadata"]["human-annotated"] == "yes"
    assert out[0]["animal-metadata"]["job-name"] == f"labeling-job/{job.name}"


def test_the_page_is_served_with_the_token_and_sets_a_worker_cookie(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(1)))
    status, body, headers = job.request("GET", f"/?token={job.token}", worker=None, token=None)
    assert status == 200 and b"labelloop" in body
    assert "labelloop-worker=w-" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    assert "script-src 'nonce-" in headers["Content-Security-Policy"]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, data, _ = job.request("POST", "/api/next", {}, worker=None, headers={"Cookie": cookie})
    assert status == 200 and data["worker"] == cookie.split("=")[1]


def test_the_models_guess_is_passed_on_when_valid_and_dropped_when_not(tmp_path, workforce):
    lines = [
        {"source": "a", "labelloop-guess": {"class": 1, "confidence": 0.87}},
        {"source": "b"},
        {"source": "c", "labelloop-guess": {"class": 7, "confidence": 0.5}},
        {"source": "d", "labelloop-guess": {"class": 2, "confidence": "high"}},
    ]
    job = Job(workforce, make_params(tmp_path, lines))
    guesses = []
    for _ in lines:
        data = job.next()
        guesses.append(data["item"]["guess"])
        job.answer(data["item"]["index"], 0)
    assert guesses == [{"class": 1, "name": "dog", "confidence": 0.87}, None, None,
                       {"class": 2, "name": "bird", "confidence": None}]
    job.result()
    assert job.output()[0]["labelloop-guess"] == {"class": 1, "confidence": 0.87}, "input lines are kept as they are"


def test_images_are_served_only_for_items_of_the_batch(tmp_path, workforce):
    from PIL import Image

    img = tmp_path / "one.png"
    Image.new("L", (8, 8), 200).save(img)
    job = Job(workforce, make_params(tmp_path, [{"source-ref": str(img)}, {"source": "text"}]))
    item = job.next()["item"]
    assert item["kind"] == "image" and item["source_ref"] == str(img)
    status, body, headers = job.request("GET", item["image_url"], worker=None)
    assert status == 200 and headers["Content-Type"] == "image/png" and body == img.read_bytes()
    for query in (f"job={job.name}&item=1", f"job={job.name}&item=2", f"job={job.name}&item=../../etc/passwd",
                  "job=other&item=0"):
        status, data, _ = job.request("GET", f"/api/image?{query}&token={job.token}")
        assert status == 404 and data["error"], query


# ---------------------------------------------------------------- bad requests change nothing


def bad_requests(job: Job) -> list[tuple[str, dict, int]]:
    answer = lambda **kw: {"job": job.name, "item": 0, "label": 1, **kw}  # noqa: E731
    return [
        ("no token", dict(method="POST", path="/api/answer", body=answer(), token=None), 401),
        ("wrong token", dict(method="POST", path="/api/answer", body=answer(), token="not-the-token-at-all"), 403),
        ("token in the query, wrong", dict(method="GET", path="/?token=nope-nope-nope-nope", token=None, worker=None), 403),
        ("unknown item", dict(method="POST", path="/api/answer", body=answer(item=99)), 404),
        ("item not a number", dict(method="POST", path="/api/answer", body=answer(item="0")), 404),
        ("unknown job", dict(method="POST", path="/api/answer", body=answer(job="nope")), 404),
        ("label outside the categories", dict(method="POST", path="/api/answer", body=answer(label=3)), 400),
        ("negative label", dict(method="POST", path="/api/answer", body=answer(label=-1)), 400),
        ("label by name", dict(method="POST", path="/api/answer", body=answer(label="dog")), 400),
        ("label true", dict(method="POST", path="/api/answer", body=answer(label=True)), 400),
        ("replayed answer", dict(method="POST", path="/api/answer", body=answer(answer_id="first-answer")), 409),
        ("second answer by the same worker", dict(method="POST", path="/api/answer", body=answer(label=2)), 409),
        ("item leased to another worker", dict(method="POST", path="/api/answer", body=answer(item=1)), 409),
        ("bad answer id", dict(method="POST", path="/api/answer", body=answer(item=1, answer_id="a b")), 400),
        ("not JSON", dict(method="POST", path="/api/answer", raw=b"{label: 1"), 400),
        ("JSON but not an object", dict(method="POST", path="/api/answer", raw=b"[1, 2]"), 400),
        ("no worker", dict(method="POST", path="/api/answer", body=answer(item=1), worker=None), 400),
        ("bad worker name", dict(method="POST", path="/api/answer", body=answer(item=1), worker="%3Cscript%3E"), 400),
        ("GET on a POST route", dict(method="GET", path="/api/answer"), 405),
        ("unknown path", dict(method="GET", path="/etc/passwd"), 404),
        ("skip an item not assigned", dict(method="POST", path="/api/skip", body={"job": job.name, "item": 1}), 409),
        ("wrong Host header", dict(method="POST", path="/api/next", body={}, headers={"Host": "evil.example:80"}), 403),
        ("body too large", dict(method="POST", path="/api/answer", raw=b" " * (70 * 1024)), 413),
        ("negative Content-Length", dict(method="POST", path="/api/answer", raw=b"", headers={"Content-Length": "-1"}), 400),
        ("Content-Length not a number", dict(method="POST", path="/api/answer", raw=b"", headers={"Content-Length": "ten"}), 400),
        ("deeply nested JSON", dict(method="POST", path="/api/answer", raw=b"[" * 5000 + b"]" * 5000), 400),
        ("deeply nested JSON in an answer", dict(method="POST", path="/api/answer",
                                                 raw=b'{"label": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}"), 400),
        ("a POST from another site (Origin)", dict(method="POST", path="/api/answer", body=answer(item=1),
                                                   headers={"Origin": "http://evil.example"}), 403),
        ("a POST from another site (Sec-Fetch-Site)", dict(method="POST", path="/api/answer", body=answer(item=1),
                                                           headers={"Sec-Fetch-Site": "cross-site"}), 403),
        ("Origin null, not from this page", dict(method="POST", path="/api/answer", body=answer(item=1),
                                                 headers={"Origin": "null"}), 403),
        ("a static file outside the page's own", dict(method="GET", path="/static/../job.py"), 404),
        ("a static file, escaped", dict(method="GET", path="/static/widgets/%2e%2e/%2e%2e/files.py"), 404),
        ("a static file without the token", dict(method="GET", path="/static/page.js", token=None), 401),
    ]


def test_bad_requests_get_a_clear_4xx_and_change_nothing(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(3)))
    first = job.next("alice")["item"]["index"]
    assert first == 0
    assert job.next("bob")["item"]["index"] == 1  # bob holds item 1 now
    status, body, _ = job.answer(0, 1, answer_id="first-answer")
    assert status == 200, body
    assert job.next("alice")["item"]["index"] == 2  # item 1 is bob's
    before_journal, before = job.journal_bytes(), job.next("carol")
    for what, kwargs, expected in bad_requests(job):
        status, data, _ = job.request(**kwargs)
        assert status == expected, f"{what}: {status} {data}"
        assert isinstance(data, dict) and data["error"] and data["status"] == expected, what
        assert job.journal_bytes() == before_journal, f"{what} changed the journal"
    after = job.next("carol")
    assert after["progress"] == before["progress"] and after["progress"]["done"] == 1
    workforce.close()
    with pytest.raises(WorkforceError, match="closed"):
        job.result()


def test_an_answer_for_a_finished_batch_is_refused(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(1)))
    job.answer_next(0)
    job.result()
    status, data, _ = job.answer(0, 1)
    assert status == 409 and "complete" in data["error"]
    status, data, _ = job.request("POST", "/api/undo", {"job": job.name})
    assert status == 409
    assert job.next()["state"] == "idle"


# ---------------------------------------------------------------- several workers


def test_two_workers_share_a_batch_without_labeling_an_item_twice(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(6)))
    a, b = job.next("alice")["item"]["index"], job.next("bob")["item"]["index"]
    assert a != b
    assert job.next("alice")["item"]["index"] == a, "asking again returns the item one holds"
    status, data, _ = job.answer(a, 0, worker="bob")
    assert status == 409 and "another worker" in data["error"]
    done = {"alice": [], "bob": []}
    turn = ["alice", "bob"]
    while True:
        worker = turn[len(done["alice"]) + len(done["bob"]) & 1]
        data = job.next(worker)
        if data["state"] != "item":
            other = turn[(turn.index(worker) + 1) % 2]
            data = job.next(other)
            if data["state"] != "item":
                break
            worker = other
        status, body, _ = job.answer(data["item"]["index"], 1, worker)
        assert status == 200, body
        done[worker].append(data["item"]["index"])
    job.result()
    assert sorted(done["alice"] + done["bob"]) == list(range(6))
    assert done["alice"] and done["bob"]
    events = [json.loads(line) for line in job.journal.read_text().splitlines()]
    assert len(events) == 6 and len({e["item"] for e in events}) == 6


def test_several_workers_per_object_vote_like_the_simulated_workforce(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(3), workers=2))
    # Both workers can hold the same item: each item needs two different answers.
    assert job.next("alice")["item"]["index"] == job.next("bob")["item"]["index"] == 0
    assert job.next("carol")["item"]["index"] == 1, "both answer slots of item 0 are leased"
    votes = {0: {"alice": 1, "bob": 1}, 1: {"carol": 2, "alice": 0}, 2: {"bob": 2, "carol": 2}}
    status, body, _ = job.answer(0, 1, "alice")
    assert status == 200 and body["complete"] is False
    status, body, _ = job.answer(0, 2, "alice")
    assert status == 409, "the same worker cannot answer an item twice"
    for item, answers in votes.items():
        for worker, label in answers.items():
            if (item, worker) == (0, "alice"):
                continue
            job.next(worker)
            status, body, _ = job.answer(item, label, worker)
            assert status == 200, (item, worker, body)
    describe = job.result()
    assert describe["LabelCounters"]["HumanLabeled"] == 3
    out = job.output()
    rng = np.random.default_rng([0, sum(job.name.encode())])
    consolidate = tasks.get("image-classification").consolidate
    expected = [consolidate(list(votes[i].values()), 2, rng) for i in range(3)]
    assert [(line["animal"], line["animal-metadata"]["confidence"]) for line in out] == expected
    assert expected[0] == (1, 0.99) and expected[2] == (2, 0.99) and expected[1][1] == 0.52
    responses = [json.loads(line) for line in (job.root / "annotations" / "worker-response" / "responses.jsonl").read_text().splitlines()]
    assert [sorted(r["workers"]) for r in responses] == [["alice", "bob"], ["alice", "carol"], ["bob", "carol"]]


def test_an_expired_lease_lets_another_worker_take_the_item(tmp_path):
    with PeopleWorkforce(port=0, lease_seconds=0.3) as workforce:
        job = Job(workforce, make_params(tmp_path, texts(1)))
        assert job.next("alice")["item"]["index"] == 0
        assert job.next("bob")["state"] == "waiting"
        time.sleep(0.4)
        assert job.next("bob")["item"]["index"] == 0
        status, data, _ = job.answer(0, 1, "alice")
        assert status == 409, "alice's lease went to bob"
        assert job.answer(0, 2, "bob")[0] == 200
        job.result()


# ---------------------------------------------------------------- skip and undo


def test_skip_puts_the_item_last_for_that_worker(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(3)))
    assert job.next()["item"]["index"] == 0
    status, _, _ = job.request("POST", "/api/skip", {"job": job.name, "item": 0})
    assert status == 200
    order = [job.answer_next(1) for _ in range(2)]
    assert order == [1, 2]
    data = job.next()
    assert data["item"]["index"] == 0 and data["item"]["skipped_before"] is True
    job.answer(0, 2)
    job.result()


def test_undo_takes_back_the_last_answer_and_brings_its_item_back(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(3)))
    status, data, _ = job.request("POST", "/api/undo", {"job": job.name})
    assert status == 409 and "no answer to undo" in data["error"]
    job.answer_next(1)
    job.answer_next(1)
    assert job.next()["item"]["index"] == 2
    status, data, _ = job.request("POST", "/api/undo", {"job": job.name})
    assert status == 200 and data["item"] == 1 and data["progress"]["done"] == 1
    nxt = job.next()
    assert nxt["item"]["index"] == 1 and nxt["can_undo"] is True
    status, data, _ = job.request("POST", "/api/undo", {"job": job.name}, worker="bob")
    assert status == 409, "bob has nothing to undo; alice's answers are hers"
    job.answer(1, 2)
    job.answer_next(0)
    job.result()
    assert [line["animal"] for line in job.output()] == [1, 2, 0]
    events = [json.loads(line) for line in job.journal.read_text().splitlines()]
    assert [e["event"] for e in events] == ["answer", "answer", "undo", "answer", "answer"]


# ---------------------------------------------------------------- durability


def test_a_restarted_process_continues_from_the_journal(tmp_path):
    params = make_params(tmp_path, texts(4))
    with PeopleWorkforce(port=0) as first:
        job = Job(first, params)
        job.answer_next(2)
        job.answer_next(1)
        job.request("POST", "/api/undo", {"job": job.name})
        job.answer(1, 0)
        first.close()
        with pytest.raises(WorkforceError):
            job.result()
    assert not (job.root / "manifests" / "output" / "output.manifest").exists()
    with open(job.journal, "ab") as handle:  # a crash in the middle of writing a line
        handle.write(b'{"event":"answer","job":"' + job.name.encode() + b'","ite')
    with PeopleWorkforce(port=0) as second:
        again = Job(second, params)
        data = again.next("alice")
        assert data["progress"]["done"] == 2 and data["can_undo"] is True
        assert data["item"]["index"] == 2
        again.answer(2, 1)
        again.answer_next(2, worker="bob")
        again.result()
    assert [line["animal"] for line in again.output()] == [2, 0, 1, 2]
    lines = job.journal.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines if not line.endswith(b'"ite')), "appends after the torn line stay whole"


def test_a_journal_that_already_completes_the_batch_finishes_at_once(tmp_path):
    params = make_params(tmp_path, texts(2))
    with PeopleWorkforce(port=0) as first:
        job = Job(first, params)
        job.answer_next(0)
        job.answer_next(1)
        job.result()
    (job.root / "manifests" / "output" / "output.manifest").unlink()
    with PeopleWorkforce(port=0) as second:
        describe = second.run_labeling_job(params)
    assert describe["LabelCounters"]["HumanLabeled"] == 2 and second.answered == 2
    assert [line["animal"] for line in job.output()] == [0, 1]


def test_unanswered_items_fail_when_the_task_lifetime_ends(tmp_path):
    with PeopleWorkforce(port=0) as workforce:
        job = Job(workforce, make_params(tmp_path, texts(2), TaskAvailabilityLifetimeInSeconds=1))
        job.answer_next(1)
        describe = job.result(timeout=5)
    assert describe["LabelCounters"] == {"TotalLabeled": 1, "HumanLabeled": 1, "MachineLabeled": 0,
                                         "FailedNonRetryableError": 1, "Unlabeled": 0}
    out = job.output()
    assert out[0]["animal"] == 1 and "animal" not in out[1]
    assert "failure-reason" in out[1]["animal-metadata"]


def test_one_server_serves_batch_after_batch(tmp_path):
    urls = []
    with PeopleWorkforce(port=0, on_ready=urls.append) as workforce:
        first = Job(workforce, make_params(tmp_path, texts(1), name="pets-abc-001-label"))
        first.answer_next(0)
        first.result()
        second = Job(workforce, make_params(tmp_path, texts(1), name="pets-abc-002-label"))
        assert second.port == first.port
        data = second.next()
        assert data["job"] == "pets-abc-002-label"
        status, body, _ = second.answer(0, 1, job="pets-abc-001-label")
        assert status == 409, "an answer for the earlier batch"
        second.answer(0, 1)
        second.result()
    assert len(urls) == 1 and workforce.answered == 2


def test_only_the_loopback_interface(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        PeopleWorkforce(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        PeopleWorkforce(host="192.168.1.10")
    with pytest.raises(ValueError, match="token"):
        PeopleWorkforce(token="short")
    with PeopleWorkforce(port=0, token="a-fixed-token-for-bookmarks") as workforce:
        assert workforce.start().endswith("/?token=a-fixed-token-for-bookmarks")
        assert workforce._server.server_address[0] == "127.0.0.1"


def test_a_resumed_run_asking_again_under_a_new_job_name_keeps_the_answers_given(tmp_path):
    # The process died while people were labeling job run-1's batch; the resumed run asks for the
    # same items (and one more) as a new job, in the same output location.
    crashed = make_params(tmp_path, texts(3), name="pets-aaaa1111-001-label")
    with PeopleWorkforce(port=0) as first:
        job = Job(first, crashed)
        job.answer_next(2)
        job.answer_next(1)
        job.request("POST", "/api/undo", {"job": job.name})
        first.close()
        with pytest.raises(WorkforceError):
            job.result()
    resumed = make_params(tmp_path, texts(4), name="pets-bbbb2222-001-label")
    with PeopleWorkforce(port=0) as second:
        again = Job(second, resumed)
        data = again.next()
        assert data["progress"]["done"] == 1, "the answer kept, not the one undone"
        assert data["item"]["index"] == 1
        for _ in range(3):
            again.answer_next(0)
        again.result()
    assert [line["animal"] for line in again.output()] == [2, 0, 0, 0]
    events = [json.loads(line) for line in again.journal.read_text().splitlines()]
    assert events[0]["carried-from"] == "pets-aaaa1111-001-label" and events[0]["job"] == again.name
    # A finished job's answers are its own: they are not carried into another batch.
    with PeopleWorkforce(port=0) as third:
        other = Job(third, make_params(tmp_path, texts(4), name="pets-cccc3333-001-label"))
        assert other.next()["progress"]["done"] == 1, "only the unfinished job's answer carries"


def test_a_port_in_use_is_a_clear_error():
    with PeopleWorkforce(port=0) as first:
        first.start()
        taken = first._server.server_address[1]
        with pytest.raises(WorkforceError, match=f"cannot serve the worker page on 127.0.0.1:{taken}"):
            PeopleWorkforce(port=taken).start()


# ---------------------------------------------------------------- hardening


def raw_exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[bytes, float]:
    """Send raw bytes; read one whole response or until the server closes: (what came back, seconds it took)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    return received, time.monotonic() - started


def test_a_silent_or_slow_client_is_cut_off_by_the_socket_timeout(tmp_path):
    with PeopleWorkforce(port=0, socket_timeout=0.5) as workforce:
        job = Job(workforce, make_params(tmp_path, texts(1)))
        host = f"Host: 127.0.0.1:{job.port}\r\n"
        # Headers never finished: the connection is closed without an answer.
        received, seconds = raw_exchange(job.port, b"POST /api/next HTTP/1.1\r\n" + host.encode())
        assert received == b"" and seconds < 4
        # A body announced but never sent in full: a 400, and the thread is free again.
        head = (f"POST /api/answer?worker=alice HTTP/1.1\r\n{host}X-Labelloop-Token: {job.token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        received, seconds = raw_exchange(job.port, head.encode() + b'{"job": ')
        assert received.startswith(b"HTTP/1.1 400") and seconds < 4, received[:200]
        assert job.journal_bytes() == b""
        assert job.next()["progress"]["done"] == 0, "the server still answers"


def test_a_chunked_body_over_the_limit_is_refused(tmp_path, workforce):
    job = Job(workforce, make_params(tmp_path, texts(1)))
    head = (f"POST /api/answer?worker=alice HTTP/1.1\r\nHost: 127.0.0.1:{job.port}\r\nX-Labelloop-Token: {job.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b" " * 8192
    body = b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    received, _ = raw_exchange(job.port, head + body)
    assert received.startswith(b"HTTP/1.1 413"), received[:200]
    assert job.journal_bytes() == b""
    small = json.dumps({"job": job.name, "item": 0, "label": 1}).encode()
    received, _ = raw_exchange(job.port, head + f"{len(small):x}\r\n".encode() + small + b"\r\n0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert job.result()["LabelCounters"]["HumanLabeled"] == 1, "a chunked body within the limit is read"


def png(path: Path, shade: int) -> bytes:
    from PIL import Image

    Image.new("L", (4, 4), shade).save(path)
    return path.read_bytes()


def test_an_image_is_served_only_as_the_file_the_job_started_with(tmp_path, workforce):
    shown = tmp_path / "real"
    other = tmp_path / "other"
    shown.mkdir(), other.mkdir()
    first = png(shown / "a.png", 10)
    secret = png(other / "a.png", 250)
    (other / "secret.png").write_bytes(secret)
    png(shown / "b.png", 20)
    png(shown / "c.png", 30)
    (tmp_path / "link-a.png").symlink_to(shown / "a.png")
    (tmp_path / "dir").symlink_to(shown)
    os.mkfifo(tmp_path / "fifo.png")
    refs = [tmp_path / "link-a.png", tmp_path / "dir" / "b.png", shown / "c.png", tmp_path / "fifo.png", shown]
    job = Job(workforce, make_params(tmp_path, [{"source-ref": str(ref)} for ref in refs]))
    url = lambda i: f"/api/image?job={job.name}&item={i}&token={job.token}"  # noqa: E731
    status, body, _ = job.request("GET", url(0))
    assert status == 200 and body == first, "a symlink that was there at the start is followed"
    assert job.request("GET", url(1))[0] == 200
    # Re-pointed after the start: the file link, the folder link; the file itself swapped for another.
    (tmp_path / "link-new.png").symlink_to(other / "secret.png")
    os.replace(tmp_path / "link-new.png", tmp_path / "link-a.png")
    (tmp_path / "dir-new").symlink_to(other)
    (other / "b.png").write_bytes(secret)
    os.replace(tmp_path / "dir-new", tmp_path / "dir")
    (shown / "c-new.png").write_bytes(secret)
    os.replace(shown / "c-new.png", shown / "c.png")
    for item in (0, 1, 2, 3, 4):  # the FIFO and the folder were never regular files
        status, data, _ = job.request("GET", url(item))
        assert status == 404 and isinstance(data, dict) and data["error"], (item, status)
    # Pointed back at the very file of the start: served again.
    (tmp_path / "link-back.png").symlink_to(shown / "a.png")
    os.replace(tmp_path / "link-back.png", tmp_path / "link-a.png")
    assert job.request("GET", url(0))[1] == first


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


def test_open_connections_are_capped_and_the_rest_answered_503(tmp_path):
    # 300 slow connections held 308 threads: above the cap a connection gets a 503 and no thread.
    with PeopleWorkforce(port=0, socket_timeout=5, max_connections=3) as workforce:
        job = Job(workforce, make_params(tmp_path, texts(1)))
        threads_before = threading.active_count()
        silent = [socket.create_connection(("127.0.0.1", job.port), timeout=5) for _ in range(3)]
        try:
            time.sleep(0.3)
            busy = []
            for _ in range(20):
                received, seconds = raw_exchange(job.port, b"")
                busy.append(received.startswith(b"HTTP/1.1 503") and seconds < 2)
            assert all(busy)
            assert threading.active_count() <= threads_before + 3
        finally:
            for conn in silent:
                conn.close()
        time.sleep(0.3)
        assert job.next()["progress"]["done"] == 0, "once they close, the page answers again"
