"""Shared by the worker page's unit tests: job parameters, a job run in a thread with its HTTP client, `workforce`."""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import pytest

from labelloop.local.worker_page import PeopleWorkforce

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
