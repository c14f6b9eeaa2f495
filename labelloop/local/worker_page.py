"""Real people label locally: a worker page served from this machine.

`PeopleWorkforce` is the local binding for Ground Truth labeling jobs when people, not
simulated annotators, answer. `run_labeling_job(params)` takes the CreateLabelingJob request
the state machine sends, serves the batch on a small HTTP server bound to the loopback
interface (stdlib `ThreadingHTTPServer`), blocks until every item has its answers, then writes
Ground Truth's output manifest exactly as `SimulatedWorkforce` does and returns the
DescribeLabelingJob-shaped answer.

- Access: a random token in the page URL (`http://127.0.0.1:PORT/?token=...`, handed to
  `on_ready`). Every request must carry it (query `token` or header `X-Labelloop-Token`).
- Workers: a `worker` query parameter names the person; without one the page sets a cookie
  with a random id, so two browsers are two workers. Items are handed out with a lease per
  worker (the task time limit of the request), so two people never get the same item unless
  the job wants several answers per item (NumberOfHumanWorkersPerDataObject): then an item
  waits for that many answers from different workers and is consolidated by majority vote,
  with the same vote and confidence as `SimulatedWorkforce`.
- Durability: every answer (and undo) is appended to
  `<S3OutputPath>/<job>/annotations/worker-response/answers.jsonl` and fsync'd before the page
  hears "ok". A closed tab loses nothing, and a new `PeopleWorkforce` given the same job
  rebuilds its state from that journal and continues where it stopped. A run resumed after a
  crash asks for the same batch under a new job name: the answers in the journals of unfinished
  jobs beside it count for the same items.
- Bad requests (no or wrong token, unknown job or item, label outside the categories, an
  answer replayed or for an item this worker may not answer) get a 4xx with a JSON
  `{"error": ...}` and change nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import mimetypes
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from labelloop import tasks
from labelloop.config import parse_label_category_config
from labelloop.local.workforce import (
    WorkforceError,
    _local,
    describe_labeling_job,
    task_of,
)
from labelloop.manifest import ID_KEY, ManifestError, item_key

GUESS_KEY = "labelloop-guess"  # optional on input lines: {"class": int, "confidence": float}
TOKEN_HEADER = "X-Labelloop-Token"
WORKER_COOKIE = "labelloop-worker"
JOURNAL_NAME = "answers.jsonl"
MAX_BODY = 64 * 1024
WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
ANSWER_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class PageError(Exception):
    """A request the worker page refuses: answered with `status` and a JSON message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> float:
    return time.monotonic()


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class _Answer:
    worker: str
    label: int
    answer_id: str


@dataclass
class _Item:
    index: int
    line: dict[str, Any]
    key: str
    answers: list[_Answer] = field(default_factory=list)
    leases: dict[str, float] = field(default_factory=dict)  # worker -> monotonic expiry

    def answered_by(self, worker: str) -> bool:
        return any(a.worker == worker for a in self.answers)

    def live_leases(self, now: float, exclude: str | None = None) -> list[str]:
        return [w for w, until in self.leases.items() if until > now and w != exclude and not self.answered_by(w)]


class _Job:
    """One labeling job's batch and the state of its answers (guarded by the workforce lock)."""

    def __init__(self, params: dict[str, Any], lease_seconds: float | None, seed: int):
        self.params = params
        self.name = str(params["LabelingJobName"])
        self.attribute = str(params["LabelAttributeName"])
        config_uri = params["LabelCategoryConfigS3Uri"]
        self.classes = parse_label_category_config(json.loads(_local(config_uri).read_text()), config_uri)
        task = params["HumanTaskConfig"]
        self.workers = int(task.get("NumberOfHumanWorkersPerDataObject", 1))
        if self.workers < 1:
            raise WorkforceError(f"NumberOfHumanWorkersPerDataObject must be at least 1, got {self.workers}")
        self.lease_seconds = float(lease_seconds if lease_seconds is not None else task.get("TaskTimeLimitInSeconds", 300))
        self.lifetime = float(task.get("TaskAvailabilityLifetimeInSeconds", 864000))
        self.task = task_of(params)
        self.seed = seed
        self.root = _local(params["OutputConfig"]["S3OutputPath"]) / self.name
        self.out_path = self.root / "manifests" / "output" / "output.manifest"
        self.journal = self.root / "annotations" / "worker-response" / JOURNAL_NAME
        self.started = datetime.now(timezone.utc)
        self.deadline = _now() + self.lifetime
        self.items: list[_Item] = []
        manifest = _local(params["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
        seen: dict[str, int] = {}
        for number, text in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            line = json.loads(text)
            try:
                key = item_key(line)
            except ManifestError as exc:
                raise WorkforceError(f"{manifest} line {number}: {exc}") from None
            if key in seen:
                raise WorkforceError(f"{manifest} line {number}: same item as line {seen[key]} ({key[:80]})")
            seen[key] = number
            self.items.append(_Item(len(self.items), line, key))
        self.by_key = {item.key: item for item in self.items}
        self.answer_ids: set[str] = set()
        self.stacks: dict[str, list[tuple[str, int]]] = {}  # worker -> [(answer id, item index)]
        self.skips: dict[str, dict[int, int]] = {}  # worker -> {item index: skip sequence}
        self.skip_seq = 0
        self.finished = False
        self.expired = False

    # ------------------------------------------------------------ state

    def complete(self, item: _Item) -> bool:
        return len(item.answers) >= self.workers

    def done(self) -> int:
        return sum(self.complete(i) for i in self.items)

    def all_done(self) -> bool:
        return all(self.complete(i) for i in self.items)

    def item(self, index: Any) -> _Item:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.items):
            raise PageError(404, f"no item {index!r} in batch {self.name} (items are 0..{len(self.items) - 1})")
        return self.items[index]

    def can_take(self, item: _Item, worker: str, now: float) -> bool:
        if self.complete(item) or item.answered_by(worker):
            return False
        if item.leases.get(worker, 0.0) > now:
            return True
        return len(item.answers) + len(item.live_leases(now, exclude=worker)) < self.workers

    def next_for(self, worker: str, now: float) -> _Item | None:
        held = [i for i in self.items if i.leases.get(worker, 0.0) > now and self.can_take(i, worker, now)]
        if held:
            item = held[0]
        else:
            skipped = self.skips.get(worker, {})
            candidates = [i for i in self.items if self.can_take(i, worker, now)]
            candidates.sort(key=lambda i: (skipped.get(i.index, -1), i.index))
            if not candidates:
                return None
            item = candidates[0]
        for other in self.items:  # one item at a time per worker
            if other is not item:
                other.leases.pop(worker, None)
        item.leases[worker] = now + self.lease_seconds
        return item

    def guess(self, item: _Item) -> dict[str, Any] | None:
        raw = item.line.get(GUESS_KEY)
        if not isinstance(raw, dict):
            return None
        cls, conf = raw.get("class"), raw.get("confidence")
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < len(self.classes):
            return None
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.0 <= float(conf) <= 1.0:
            conf = None
        return {"class": cls, "name": self.classes[cls], "confidence": None if conf is None else float(conf)}

    def progress(self, worker: str) -> dict[str, int]:
        return {
            "done": self.done(),
            "total": len(self.items),
            "answers": sum(len(i.answers) for i in self.items),
            "needed": len(self.items) * self.workers,
            "mine": sum(i.answered_by(worker) for i in self.items),
        }

    # ------------------------------------------------------------ changes (each journaled first)

    def check_answer(self, worker: str, item: _Item, label: Any, answer_id: str, now: float) -> None:
        if isinstance(label, bool) or not isinstance(label, int):
            raise PageError(400, f"label must be a class index (an integer 0..{len(self.classes) - 1}), got {label!r}")
        if not 0 <= label < len(self.classes):
            raise PageError(400, f"label {label} is outside the categories (0..{len(self.classes) - 1})")
        if answer_id in self.answer_ids:
            raise PageError(409, f"answer {answer_id} was already recorded (replayed request); nothing changed")
        if item.answered_by(worker):
            raise PageError(409, f"worker {worker} already answered item {item.index}; use undo to change it")
        if self.complete(item):
            raise PageError(409, f"item {item.index} already has its {self.workers} answer(s)")
        if not self.can_take(item, worker, now):
            raise PageError(409, f"item {item.index} is assigned to another worker; ask for the next item")

    def apply_answer(self, worker: str, item: _Item, label: int, answer_id: str) -> None:
        item.answers.append(_Answer(worker, label, answer_id))
        item.leases.pop(worker, None)
        self.answer_ids.add(answer_id)
        self.stacks.setdefault(worker, []).append((answer_id, item.index))
        self.skips.get(worker, {}).pop(item.index, None)

    def last_answer(self, worker: str) -> tuple[str, _Item] | None:
        stack = self.stacks.get(worker) or []
        return (stack[-1][0], self.items[stack[-1][1]]) if stack else None

    def apply_undo(self, worker: str, answer_id: str, now: float) -> _Item | None:
        stack = self.stacks.get(worker) or []
        for k in range(len(stack) - 1, -1, -1):
            if stack[k][0] == answer_id:
                item = self.items[stack.pop(k)[1]]
                item.answers = [a for a in item.answers if a.answer_id != answer_id]
                for other in self.items:
                    other.leases.pop(worker, None)
                item.leases[worker] = now + self.lease_seconds  # the undone item comes back first
                return item
        return None

    def skip(self, worker: str, item: _Item) -> None:
        self.skip_seq += 1
        self.skips.setdefault(worker, {})[item.index] = self.skip_seq
        item.leases.pop(worker, None)

    # ------------------------------------------------------------ journal

    def journal_append(self, record: dict[str, Any]) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def replay_journal(self) -> int:
        """Rebuild the answers an earlier process recorded; returns how many answers now stand.

        First this job's own journal. Then the journals of unfinished labeling jobs beside it (no
        output manifest): a run resumed after a crash asks again under a new job name, and the
        answers people already gave for the same items count. Those are copied into this job's
        journal, so it stands on its own from then on.
        """
        if self.journal.exists():
            raw = self.journal.read_bytes()
            if raw and not raw.endswith(b"\n"):  # a crash mid-write: end the torn line so appends stay whole
                with open(self.journal, "ab") as handle:
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            self._replay(raw, self.name)
        carried: dict[str, str] = {}  # answer id -> the job it was given in
        others = []
        for path in self.root.parent.glob(f"*/annotations/worker-response/{JOURNAL_NAME}"):
            job_dir = path.parents[2]
            if job_dir != self.root and not (job_dir / "manifests" / "output" / "output.manifest").exists():
                others.append((path.stat().st_mtime, path, job_dir.name))
        for _, path, name in sorted(others):
            for answer_id in self._replay(path.read_bytes(), name):
                carried[answer_id] = name
        for item in self.items:
            for answer in item.answers:
                if answer.answer_id in carried:
                    record = self._answer_record(item, answer.worker, answer.label, answer.answer_id)
                    self.journal_append({**record, "carried-from": carried[answer.answer_id]})
        for item in self.items:  # nobody holds a lease after a restart
            item.leases.clear()
        return sum(len(item.answers) for item in self.items)

    def _replay(self, raw: bytes, job_name: str) -> list[str]:
        """Apply one journal's answers and undos (those of `job_name`); returns the answer ids applied."""
        applied = []
        now = _now()
        for text in raw.decode("utf-8", errors="replace").splitlines():
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or record.get("job") != job_name:
                continue
            worker, answer_id = record.get("worker"), record.get("answer-id")
            if not isinstance(worker, str) or not isinstance(answer_id, str):
                continue
            if record.get("event") == "answer":
                item = self.by_key.get(record.get("key"))
                label = record.get("label")
                if item is None or answer_id in self.answer_ids:
                    continue
                if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(self.classes):
                    continue
                if item.answered_by(worker) or self.complete(item):
                    continue
                self.apply_answer(worker, item, label, answer_id)
                applied.append(answer_id)
            elif record.get("event") == "undo":
                self.apply_undo(worker, answer_id, now)
        return applied

    def _answer_record(self, item: _Item, worker: str, label: int, answer_id: str) -> dict[str, Any]:
        return {
            "event": "answer", "job": self.name, "item": item.index, "key": item.key,
            ID_KEY: item.line.get(ID_KEY), "worker": worker, "label": label,
            "class-name": self.classes[label], "answer-id": answer_id, "time": _iso(),
        }

    # ------------------------------------------------------------ output

    def write_output(self) -> tuple[int, int]:
        """Ground Truth's output manifest (input order) and the raw responses; (labeled, failed)."""
        rng = np.random.default_rng([self.seed, sum(self.name.encode())])
        labeled = failed = 0
        lines, responses = [], []
        for item in self.items:
            line = dict(item.line)
            votes = [a.label for a in item.answers]
            if len(votes) >= self.workers:
                winner, confidence = self.task.consolidate(votes, self.workers, rng)
                line[self.attribute] = winner
                line[f"{self.attribute}-metadata"] = self.task.human_metadata(winner, confidence, self.classes, self.name)
                responses.append({"key": item.key, "answers": votes, "workers": [a.worker for a in item.answers]})
                labeled += 1
            else:
                line[f"{self.attribute}-metadata"] = self.task.failure_metadata(
                    f"ClientError: {len(votes)} of {self.workers} workers answered before the task expired",
                    self.name,
                )
                failed += 1
            lines.append(json.dumps(line) + "\n")
        _atomic_write(self.out_path, "".join(lines))
        _atomic_write(self.root / "annotations" / "worker-response" / "responses.jsonl",
                      "".join(json.dumps(r) + "\n" for r in responses))
        return labeled, failed


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback and ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


class PeopleWorkforce:
    """People answer labeling jobs on a local web page (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        on_ready: Callable[[str], None] | None = None,
        *,
        on_job: Callable[[str, int, str], None] | None = None,
        lease_seconds: float | None = None,
        seed: int = 0,
    ):
        if not _loopback(host):
            raise ValueError(f"the worker page binds to the loopback interface only (127.0.0.1), not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1..65535, got {port!r}")
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,200}", token):
            raise ValueError("token must be 16-200 letters, digits, '-' or '_'")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.token = token or secrets.token_urlsafe(24)
        self.on_ready = on_ready
        self.on_job = on_job
        self.lease_seconds = lease_seconds
        self.seed = seed
        self.answered = 0  # items given a consolidated label, over the whole run
        self.jobs: list[dict[str, Any]] = []  # Describe answers of the finished jobs
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._active: dict[str, _Job] = {}
        self._last_finished: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------ server

    @property
    def url(self) -> str:
        if self._server is None:
            raise WorkforceError("the worker page is not started")
        return f"http://{self.host}:{self._server.server_address[1]}/?token={self.token}"

    def start(self) -> str:
        """Start the HTTP server (once); returns the page URL (also handed to on_ready)."""
        with self._lock:
            if self._closed:
                raise WorkforceError("the worker page was closed")
            if self._server is not None:
                return self.url
            try:
                server = ThreadingHTTPServer((self.host, self.port), _handler(self))
            except OSError as exc:
                raise WorkforceError(f"cannot serve the worker page on {self.host}:{self.port}: {exc.strerror or exc}") from None
            server.daemon_threads = True
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="labelloop-worker-page", daemon=True
            )
            self._thread.start()
            url = self.url
        if self.on_ready:
            self.on_ready(url)
        return url

    def close(self) -> None:
        """Stop the server; a job still waiting for answers ends with WorkforceError."""
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
            self._changed.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "PeopleWorkforce":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ the labeling job

    def run_labeling_job(self, params: dict[str, Any], task_type: str | None = None) -> dict[str, Any]:
        job = _Job(params, self.lease_seconds, self.seed)
        if task_type:
            job.task = tasks.get(task_type)
        url = self.start()
        with self._lock:
            if job.name in self._active:
                raise WorkforceError(f"labeling job {job.name} is already running")
            job.replay_journal()
            self._active[job.name] = job
            self._changed.notify_all()
        if self.on_job:
            self.on_job(job.name, len(job.items), url)
        try:
            with self._lock:
                while not job.all_done():
                    if self._closed:
                        raise WorkforceError(f"labeling job {job.name}: the worker page was closed before the batch was done")
                    if not threading.main_thread().is_alive():  # the program is exiting
                        raise WorkforceError(f"labeling job {job.name}: the program is exiting")
                    if _now() >= job.deadline:
                        job.expired = True
                        break
                    self._changed.wait(timeout=min(0.5, max(0.01, job.deadline - _now())))
                job.finished = True
            labeled, failed = job.write_output()
        finally:
            with self._lock:
                job.finished = True
                self._active.pop(job.name, None)
                self._last_finished = job.name
                self._changed.notify_all()
        describe = describe_labeling_job(params, labeled=labeled, failed=failed, started=job.started, output=job.out_path)
        with self._lock:
            self.answered += labeled
            self.jobs.append(describe)
        return describe

    # ------------------------------------------------------------ API (called by the handler)

    def _job(self, name: Any) -> _Job:
        if name is None:
            raise PageError(400, "missing 'job'")
        job = self._active.get(name)
        if job is None:
            if name == self._last_finished or any(d["LabelingJobName"] == name for d in self.jobs):
                raise PageError(409, f"labeling job {name} is already complete")
            raise PageError(404, f"no labeling job {name!r} is waiting for answers")
        if job.finished:
            raise PageError(409, f"labeling job {name} is already complete")
        return job

    def _current(self) -> _Job | None:
        for job in self._active.values():
            if not job.finished:
                return job
        return None

    def api_next(self, worker: str, token: str) -> dict[str, Any]:
        with self._lock:
            job = self._current()
            if job is None:
                finishing = [j.name for j in self._active.values() if j.finished]  # writing its output now
                last = finishing[-1] if finishing else self._last_finished
                return {
                    "state": "idle",
                    "worker": worker,
                    "last_job": last,
                    "message": (f"Batch {last} is complete, thank you. " if last else "")
                    + "No batch is waiting for labels right now: the model is learning from the answers. "
                    "This page checks again every few seconds.",
                }
            item = job.next_for(worker, _now())
            base = {
                "job": job.name,
                "worker": worker,
                "categories": job.classes,
                "workers_per_object": job.workers,
                "progress": job.progress(worker),
                "can_undo": job.last_answer(worker) is not None,
            }
            if item is None:
                mine = base["progress"]["mine"]
                return {
                    **base,
                    "state": "waiting",
                    "message": f"Nothing left for you in this batch for now ({mine} answered by you); "
                    "the remaining items are with other workers. This page checks again every few seconds.",
                }
            return {**base, "state": "item", "item": self._item_view(job, item, worker, token)}

    def _item_view(self, job: _Job, item: _Item, worker: str, token: str) -> dict[str, Any]:
        view: dict[str, Any] = {
            "index": item.index,
            "key": item.key,
            "guess": job.guess(item),
            "skipped_before": item.index in job.skips.get(worker, {}),
            "lease_seconds": job.lease_seconds,
        }
        if "source-ref" in item.line:
            view["kind"] = "image"
            view["source_ref"] = item.line["source-ref"]
            view["image_url"] = (
                f"/api/image?job={quote(job.name)}&item={item.index}&token={quote(token)}&worker={quote(worker)}"
            )
        else:
            view["kind"] = "text"
            view["text"] = str(item.line.get("source", ""))
        return view

    def api_answer(self, worker: str, body: dict[str, Any]) -> dict[str, Any]:
        answer_id = body.get("answer_id")
        if answer_id is None:
            answer_id = uuid.uuid4().hex
        if not isinstance(answer_id, str) or not ANSWER_ID.match(answer_id):
            raise PageError(400, "answer_id must be 1-100 letters, digits, '-' or '_'")
        with self._lock:
            job = self._job(body.get("job"))
            item = job.item(body.get("item"))
            label = body.get("label")
            job.check_answer(worker, item, label, answer_id, _now())
            job.journal_append(job._answer_record(item, worker, label, answer_id))
            job.apply_answer(worker, item, label, answer_id)
            if job.all_done():
                job.finished = True  # no undo once the batch is complete: the loop takes it now
            self._changed.notify_all()
            return {"ok": True, "answer_id": answer_id, "item": item.index, "complete": job.complete(item),
                    "progress": job.progress(worker)}

    def api_undo(self, worker: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(body.get("job"))
            last = job.last_answer(worker)
            if last is None:
                raise PageError(409, f"worker {worker} has no answer to undo in batch {job.name}")
            answer_id, item = last
            job.journal_append({
                "event": "undo", "job": job.name, "item": item.index, "key": item.key,
                "worker": worker, "answer-id": answer_id, "time": _iso(),
            })
            job.apply_undo(worker, answer_id, _now())
            self._changed.notify_all()
            return {"ok": True, "undone": answer_id, "item": item.index, "progress": job.progress(worker)}

    def api_skip(self, worker: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._job(body.get("job"))
            item = job.item(body.get("item"))
            if item.leases.get(worker, 0.0) <= _now():
                raise PageError(409, f"item {item.index} is not assigned to worker {worker}")
            job.skip(worker, item)
            return {"ok": True, "item": item.index}

    def image_path(self, job_name: str | None, index: str | None) -> Path:
        with self._lock:
            job = self._job(job_name)
            try:
                number = int(index) if index is not None else None
            except ValueError:
                number = None
            item = job.item(number)
            ref = item.line.get("source-ref")
            if not isinstance(ref, str):
                raise PageError(404, f"item {item.index} is text, not an image")
            if ref.startswith("s3://"):
                raise PageError(404, f"item {item.index}'s image is on S3 ({ref}); the local page shows local files only")
            path = Path(ref)
            if not path.is_file():
                raise PageError(404, f"item {item.index}'s image {ref} does not exist")
            return path


# ---------------------------------------------------------------- HTTP


def _handler(workforce: PeopleWorkforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "labelloop-worker-page"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the loop
            pass

        # ---------------------------------------------- plumbing

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: dict[str, Any]) -> None:
            self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

        def _query(self) -> dict[str, str]:
            return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

        def _cookie(self, name: str) -> str | None:
            try:
                jar = SimpleCookie(self.headers.get("Cookie", ""))
            except CookieError:
                return None
            return jar[name].value if name in jar else None

        def _authorize(self, query: dict[str, str]) -> str:
            host = (self.headers.get("Host") or "").lower()
            port = self.server.server_address[1]
            if host not in {f"{workforce.host}:{port}", f"localhost:{port}"}:
                raise PageError(403, f"requests must be addressed to {workforce.host}:{port}")
            given = self.headers.get(TOKEN_HEADER) or query.get("token")
            if not given:
                raise PageError(401, "missing access token: open the page with the link labelloop printed (…/?token=…)")
            if not hmac.compare_digest(given.encode(), workforce.token.encode()):
                raise PageError(403, "wrong access token: open the page with the link labelloop printed")
            return given

        def _worker(self, query: dict[str, str]) -> str:
            worker = query.get("worker") or self._cookie(WORKER_COOKIE)
            if not worker:
                raise PageError(400, "no worker identity: open the page first (it sets a cookie) or add worker=NAME")
            if not WORKER_NAME.match(worker):
                raise PageError(400, "worker must be 1-64 letters, digits, '.', '_', '@' or '-'")
            return worker

        def _body(self) -> dict[str, Any]:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise PageError(400, "bad Content-Length") from None
            if length > MAX_BODY:
                raise PageError(413, f"request body over {MAX_BODY} bytes")
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise PageError(400, "request body is not JSON") from None
            if not isinstance(data, dict):
                raise PageError(400, "request body must be a JSON object")
            return data

        def _handle(self, method: str) -> None:
            path = urlsplit(self.path).path
            try:
                if path == "/favicon.ico":
                    self._send(204, b"", "text/plain")
                    return
                routes = {"/": "GET", "/api/image": "GET", "/api/next": "POST", "/api/answer": "POST",
                          "/api/undo": "POST", "/api/skip": "POST"}
                if path not in routes:
                    raise PageError(404, f"no such page: {path}")
                query = self._query()
                token = self._authorize(query)
                if method != routes[path] and not (method == "HEAD" and routes[path] == "GET"):
                    raise PageError(405, f"{path} takes {routes[path]}, not {method}")
                if path == "/":
                    self._page(query)
                    return
                worker = self._worker(query)
                if path == "/api/image":
                    image = workforce.image_path(query.get("job"), query.get("item"))
                    kind = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
                    if not kind.startswith("image/"):
                        raise PageError(415, f"{image.name} is not an image")
                    self._send(200, image.read_bytes(), kind)
                    return
                body = self._body()
                if path == "/api/next":
                    self._json(200, workforce.api_next(worker, token))
                elif path == "/api/answer":
                    self._json(200, workforce.api_answer(worker, body))
                elif path == "/api/undo":
                    self._json(200, workforce.api_undo(worker, body))
                else:
                    self._json(200, workforce.api_skip(worker, body))
            except PageError as exc:
                self._json(exc.status, {"error": exc.message, "status": exc.status})
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as exc:  # a bug: say so rather than hang the page
                self._json(500, {"error": f"internal error: {type(exc).__name__}: {exc}", "status": 500})

        def _page(self, query: dict[str, str]) -> None:
            nonce = secrets.token_urlsafe(16)
            html = PAGE.replace("{{NONCE}}", nonce).encode()
            extra = {
                "Content-Security-Policy": (
                    f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
                    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                )
            }
            if not query.get("worker") and not self._cookie(WORKER_COOKIE):
                extra["Set-Cookie"] = (
                    f"{WORKER_COOKIE}=w-{secrets.token_hex(4)}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict"
                )
            self._send(200, html, "text/html; charset=utf-8", extra)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

    return Handler


# ---------------------------------------------------------------- the page

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>labelloop · label</title>
<style>
  :root { --fg:#1d2433; --muted:#6b7385; --line:#d8dce5; --accent:#2f6fde; --ok:#1f8a4c; --bad:#c23b3b; --bg:#f6f7fa; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; gap:1rem; align-items:center; padding:.7rem 1.2rem; background:#fff; border-bottom:1px solid var(--line); }
  header h1 { font-size:1.05rem; margin:0; }
  header .job { color:var(--muted); font-size:.85rem; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
  header .who { margin-left:auto; color:var(--muted); font-size:.85rem; white-space:nowrap; }
  main { max-width:920px; margin:1.2rem auto; padding:0 1rem; }
  .bar { height:8px; background:#e4e7ee; border-radius:4px; overflow:hidden; }
  .bar > div { height:100%; background:var(--ok); width:0; transition:width .2s; }
  #progress-text { font-size:.9rem; color:var(--muted); margin:.3rem 0 1rem; }
  .card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:1.2rem; }
  #stage { display:flex; justify-content:center; align-items:center; min-height:300px; }
  #stage.text { min-height:0; }
  #image { width:280px; height:280px; object-fit:contain; image-rendering:pixelated; background:#000; border-radius:6px; }
  #text { white-space:pre-wrap; word-break:break-word; max-height:340px; overflow:auto; width:100%;
          font:14px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; background:#fafbfc; border:1px solid var(--line); border-radius:6px; padding:.8rem; margin:0; }
  #guess { margin:1rem 0 .2rem; padding:.55rem .8rem; border-radius:6px; background:#eef3fd; border:1px solid #cddcf8; }
  #guess kbd, .hint kbd { font-size:.8rem; }
  #skipped-note { color:var(--muted); font-size:.85rem; margin-top:.4rem; }
  #categories { display:flex; flex-wrap:wrap; gap:.5rem; margin-top:1rem; }
  #categories button { min-width:4.2rem; }
  button { font:inherit; padding:.5rem .8rem; border:1px solid var(--line); border-radius:7px; background:#fff; cursor:pointer; }
  button:hover:not(:disabled) { border-color:var(--accent); }
  button:disabled { opacity:.5; cursor:default; }
  button.suggested { border-color:var(--accent); box-shadow:0 0 0 2px #cddcf8; }
  kbd { display:inline-block; min-width:1.2em; padding:0 .3em; margin-right:.35em; border:1px solid var(--line); border-bottom-width:2px;
        border-radius:4px; background:#f3f4f7; font:12px ui-monospace, monospace; text-align:center; color:var(--muted); }
  .actions { display:flex; gap:.5rem; margin-top:1rem; }
  .actions .hint { margin-left:auto; color:var(--muted); font-size:.85rem; align-self:center; }
  #message { padding:2rem 1rem; text-align:center; color:var(--muted); }
  #error { display:none; margin-bottom:1rem; padding:.6rem .8rem; border-radius:6px; background:#fdeeee; border:1px solid #f2c4c4; color:var(--bad); }
  #flash { min-height:1.3em; color:var(--ok); font-size:.9rem; margin-top:.6rem; }
  [hidden] { display:none !important; }
</style>
</head>
<body>
<header>
  <h1>labelloop</h1><span class="job" id="job"></span>
  <span class="who">worker <b id="worker">…</b></span>
</header>
<main>
  <div id="error" role="alert"></div>
  <div class="bar"><div id="bar"></div></div>
  <div id="progress-text"></div>
  <div class="card">
    <div id="message">Connecting…</div>
    <div id="item" hidden>
      <div id="stage"><img id="image" alt="item to label" hidden><pre id="text" hidden></pre></div>
      <div id="guess" hidden></div>
      <div id="skipped-note" hidden>You skipped this one earlier; it is back because nothing else is left for you.</div>
      <div id="categories"></div>
      <div class="actions">
        <button id="skip" type="button"><kbd>→</kbd>Skip</button>
        <button id="undo" type="button"><kbd>⌫</kbd>Undo</button>
        <span class="hint">keys: category number or letter · <kbd>Enter</kbd> confirms the suggestion</span>
      </div>
    </div>
    <div id="undo-only" class="actions" hidden><button id="undo2" type="button"><kbd>⌫</kbd>Undo my last answer</button></div>
    <div id="flash"></div>
  </div>
</main>
<script nonce="{{NONCE}}">
(() => {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const workerParam = params.get("worker");
  const $ = (id) => document.getElementById(id);
  let view = null, busy = false, timer = null, shownKey = null;

  function keyFor(i) {
    if (i < 9) return String(i + 1);
    if (i === 9) return "0";
    if (i < 36) return String.fromCharCode(97 + i - 10);
    return null;
  }
  function apiUrl(path) {
    const q = new URLSearchParams();
    if (workerParam) q.set("worker", workerParam);
    const s = q.toString();
    return path + (s ? "?" + s : "");
  }
  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  async function api(path, body) {
    const res = await fetch(apiUrl(path), {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Labelloop-Token": token},
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { data = {error: "the server answered " + res.status}; }
    if (!res.ok) { const err = new Error(data.error || ("HTTP " + res.status)); err.status = res.status; throw err; }
    return data;
  }
  function showError(text) { const e = $("error"); e.textContent = text || ""; e.style.display = text ? "block" : "none"; }
  function flash(text) { $("flash").textContent = text || ""; }
  function schedule(ms) { clearTimeout(timer); timer = setTimeout(load, ms); }

  function renderProgress(v) {
    const p = v.progress;
    if (!p) { $("bar").style.width = "0"; $("progress-text").textContent = ""; return; }
    $("bar").style.width = (p.total ? (100 * p.done / p.total) : 0) + "%";
    let text = p.done + " / " + p.total + " done";
    if (v.workers_per_object > 1) text += " · " + p.answers + " / " + p.needed + " answers (" + v.workers_per_object + " workers per item)";
    text += " · " + p.mine + " by you";
    $("progress-text").textContent = text;
  }

  function render(v) {
    view = v;
    $("worker").textContent = v.worker || "";
    $("job").textContent = v.job ? "batch " + v.job : "";
    renderProgress(v);
    const hasItem = v.state === "item";
    $("item").hidden = !hasItem;
    $("message").hidden = hasItem;
    $("undo-only").hidden = hasItem || !v.can_undo;
    document.body.dataset.state = v.state;
    if (!hasItem) { $("message").textContent = v.message || ""; shownKey = null; schedule(1500); return; }
    const it = v.item;
    const el = $("item");
    el.dataset.index = it.index; el.dataset.key = it.key; el.dataset.job = v.job;
    if (shownKey !== v.job + "/" + it.index) {
      shownKey = v.job + "/" + it.index;
      $("stage").className = it.kind;
      if (it.kind === "image") {
        $("text").hidden = true;
        const img = $("image");
        img.hidden = false;
        img.src = it.image_url;
        img.alt = it.source_ref || "item to label";
      } else {
        $("image").hidden = true; $("image").removeAttribute("src");
        const t = $("text"); t.hidden = false; t.textContent = it.text; t.scrollTop = 0;
      }
    }
    const g = it.guess;
    const guessEl = $("guess");
    if (g) {
      guessEl.hidden = false;
      const pct = g.confidence == null ? "" : " (" + Math.round(100 * g.confidence) + " %)";
      guessEl.replaceChildren("model suggests: ", Object.assign(document.createElement("b"), {textContent: g.name}), pct,
        " — press ", Object.assign(document.createElement("kbd"), {textContent: "Enter"}), "to confirm, or choose another category");
    } else { guessEl.hidden = true; guessEl.replaceChildren(); }
    $("skipped-note").hidden = !it.skipped_before;
    const box = $("categories");
    box.replaceChildren();
    v.categories.forEach((name, i) => {
      const b = document.createElement("button");
      b.type = "button"; b.dataset.class = i;
      const k = keyFor(i);
      if (k) b.append(Object.assign(document.createElement("kbd"), {textContent: k}));
      b.append(name);
      if (g && g.class === i) b.classList.add("suggested");
      b.addEventListener("click", () => answer(i));
      box.append(b);
    });
    $("undo").disabled = !v.can_undo;
  }

  async function load() {
    clearTimeout(timer);
    try {
      const v = await api("/api/next");
      showError("");
      render(v);
    } catch (e) {
      if (e.status === 401 || e.status === 403) { showError(e.message); return; }
      showError(e.status ? e.message : "Cannot reach the labeling server (the run may have ended). Retrying…");
      schedule(3000);
    }
  }

  async function act(path, body, done) {
    if (busy) return;
    busy = true;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    try { const r = await api(path, body); showError(""); flash(done(r)); }
    catch (e) { showError(e.message); }
    finally { busy = false; }
    await load();
  }
  function answer(label) {
    if (!view || view.state !== "item") return;
    const name = view.categories[label];
    act("/api/answer", {job: view.job, item: view.item.index, label: label, answer_id: newId()}, () => "saved: " + name);
  }
  function skip() {
    if (!view || view.state !== "item") return;
    act("/api/skip", {job: view.job, item: view.item.index}, () => "skipped; it comes back at the end");
  }
  function undo() {
    if (!view || !view.job || !view.can_undo) return;
    act("/api/undo", {job: view.job}, () => "undone: answer it again");
  }
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("undo2").addEventListener("click", undo);

  document.addEventListener("keydown", (e) => {
    if (e.repeat || e.altKey) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
    if (e.ctrlKey || e.metaKey) return;
    if (e.key === "Backspace" || e.key === "ArrowLeft") { e.preventDefault(); undo(); return; }
    if (!view || view.state !== "item") return;
    if (e.key === "ArrowRight") { e.preventDefault(); skip(); return; }
    if (e.key === "Enter") {
      e.preventDefault();
      if (view.item.guess) answer(view.item.guess.class);
      return;
    }
    const k = e.key.toLowerCase();
    for (let i = 0; i < view.categories.length; i++) {
      if (keyFor(i) === k) { e.preventDefault(); answer(i); return; }
    }
  });
  load();
})();
</script>
</body>
</html>
"""
