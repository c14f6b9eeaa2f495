"""One labeling job on the worker page: its batch, who holds and answered what, its journal, its output.

A `_Job` is guarded by the workforce's lock. Every change people make (an answer, an undo) is
appended to the job's journal and fsync'd before it is applied, so a closed tab or a crashed
process loses nothing: a new process replays the journal (`replay_journal`) and continues.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labelloop import ledger, tasks
from labelloop.config import parse_label_category_config
from labelloop.local.worker_page.errors import PageError
from labelloop.local.worker_page.files import Pinned, pin, read_pinned
from labelloop.local.worker_page.widgets import widget_for
from labelloop.local.workforce import (
    WorkforceError,
    _local,
    task_of,
)
from labelloop.manifest import CLICKS_KEY, ID_KEY, ManifestError, item_key
from labelloop.storage import atomic_file

GUESS_KEY = "labelloop-guess"  # optional on input lines: {"class": int, "confidence": float}
ROLE_KEY = "labelloop-role"  # why the loop picked the item (steps writes it); validation items go out blind
JOURNAL_NAME = "answers.jsonl"
MAX_CLICKS = 100_000  # an answer's clicks (the page's count): more is not what a person clicked on one item


def _now() -> float:
    return time.monotonic()


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class _Answer:
    worker: str
    label: Any  # the task type's label value (a class index, a set of boxes)
    answer_id: str
    clicks: int | None = None  # the click tool's clicks the answer took, where the page counted them


@dataclass
class _Item:
    index: int
    line: dict[str, Any]
    key: str
    answers: list[_Answer] = field(default_factory=list)
    leases: dict[str, float] = field(default_factory=dict)  # worker -> monotonic expiry
    image: Pinned | str | None = None  # an image item's file as the job started, or why it cannot be shown
    size: tuple[int, int] | None = None  # the image's (width, height), once an answer needed it

    def answered_by(self, worker: str) -> bool:
        return any(a.worker == worker for a in self.answers)

    def live_leases(self, now: float, exclude: str | None = None) -> list[str]:
        return [w for w, until in self.leases.items() if until > now and w != exclude and not self.answered_by(w)]


class _Job:
    """One labeling job's batch and the state of its answers (guarded by the workforce lock)."""

    def __init__(self, params: dict[str, Any], lease_seconds: float | None, seed: int, task_type: str | None = None):
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
        name = task_type or task_of(params).name
        self.widget = widget_for(name)  # before anything is served: a task type without a widget is refused here
        self.task = tasks.get(name)  # before anything is served: an unknown task type is refused here
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
            item = _Item(len(self.items), line, key)
            if "source-ref" in line:
                item.image = pin(line["source-ref"])
            self.items.append(item)
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
        """The model's guess to show with the item; never for a validation item (its answer must be unanchored)."""
        if item.line.get(ROLE_KEY) == ledger.VALIDATION:
            return None
        raw = item.line.get(GUESS_KEY)
        if not isinstance(raw, dict):
            return None
        value, conf = raw.get("class"), raw.get("confidence")
        try:
            value = self.task.read_value(value, self.classes)
        except ValueError:
            return None
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0.0 <= float(conf) <= 1.0:
            conf = None
        name = self.task.label_metadata(value, self.classes).get("class-name")
        return {"class": self.task.write_value(value, self.classes), "name": name,
                "confidence": None if conf is None else float(conf)}

    def image_size(self, item: _Item) -> tuple[int, int]:
        """(width, height) of the item's image as the job started (read once, from its header)."""
        if item.size is None:
            if not isinstance(item.image, Pinned):
                raise PageError(400, f"item {item.index} has no image to size an answer by ({item.image or 'text'})")
            from PIL import Image

            data = read_pinned(item.line["source-ref"], item.image)  # 404 when it changed since the start
            try:
                with Image.open(io.BytesIO(data)) as image:
                    item.size = image.size
            except Exception:  # PIL raises several kinds for bytes that are no image
                raise PageError(400, f"item {item.index}'s image cannot be read to check the answer's size") from None
        return item.size

    def progress(self, worker: str) -> dict[str, int]:
        return {
            "done": self.done(),
            "total": len(self.items),
            "answers": sum(len(i.answers) for i in self.items),
            "needed": len(self.items) * self.workers,
            "mine": sum(i.answered_by(worker) for i in self.items),
        }

    # ------------------------------------------------------------ changes (each journaled first)

    def check_answer(self, worker: str, item: _Item, label: Any, answer_id: str, now: float,
                     clicks: Any = None) -> None:
        if clicks is not None and (isinstance(clicks, bool) or not isinstance(clicks, int) or not 0 <= clicks <= MAX_CLICKS):
            raise PageError(400, f"clicks must be a count of clicks (0 to {MAX_CLICKS}), got {str(clicks)[:40]!r}")
        try:
            value = self.task.read_value(label, self.classes)
        except ValueError as exc:
            raise PageError(400, f"label: {exc}") from None
        size = self.task.value_size(value)
        if size is not None and size != (expected := self.image_size(item)):
            raise PageError(400, f"label: the answer is {size[0]} x {size[1]} pixels, but item {item.index}'s image is "
                                 f"{expected[0]} x {expected[1]}")
        if answer_id in self.answer_ids:
            raise PageError(409, f"answer {answer_id} was already recorded (replayed request); nothing changed")
        if item.answered_by(worker):
            raise PageError(409, f"worker {worker} already answered item {item.index}; use undo to change it")
        if self.complete(item):
            raise PageError(409, f"item {item.index} already has its {self.workers} answer(s)")
        if not self.can_take(item, worker, now):
            raise PageError(409, f"item {item.index} is assigned to another worker; ask for the next item")

    def apply_answer(self, worker: str, item: _Item, label: Any, answer_id: str, clicks: int | None = None) -> None:
        item.answers.append(_Answer(worker, label, answer_id, clicks))
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
                    record = self._answer_record(item, answer.worker, answer.label, answer.answer_id, answer.clicks)
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
                try:
                    label = self.task.read_value(label, self.classes)
                except ValueError:
                    continue
                clicks = record.get("clicks")
                if item.answered_by(worker) or self.complete(item):
                    continue
                self.apply_answer(worker, item, label, answer_id, clicks if isinstance(clicks, int) else None)
                applied.append(answer_id)
            elif record.get("event") == "undo":
                self.apply_undo(worker, answer_id, now)
        return applied

    def _answer_record(self, item: _Item, worker: str, label: Any, answer_id: str,
                       clicks: int | None = None) -> dict[str, Any]:
        return {
            "event": "answer", "job": self.name, "item": item.index, "key": item.key,
            ID_KEY: item.line.get(ID_KEY), "worker": worker, "label": label,
            **self.task.label_metadata(label, self.classes), "answer-id": answer_id, "time": _iso(),
            **({"clicks": clicks} if clicks is not None else {}),
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
                files = str(self.root / "annotations" / "consolidated-annotation" / "output")  # as Ground Truth's
                line[self.attribute] = self.task.line_value(winner, self.classes, folder=files,
                                                            name=str(line.get(ID_KEY, item.index)))
                line[f"{self.attribute}-metadata"] = self.task.human_metadata(winner, confidence, self.classes, self.name)
                clicks = [a.clicks for a in item.answers if a.clicks is not None]
                if clicks:  # what the answers cost in clicks, where the page counted them
                    line[f"{self.attribute}-metadata"][CLICKS_KEY] = sum(clicks)
                responses.append({"key": item.key, "answers": votes, "workers": [a.worker for a in item.answers],
                                  **({"clicks": clicks} if clicks else {})})
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
    with atomic_file(path, "w") as handle:
        handle.write(text)
