"""`PeopleWorkforce`: labeling jobs answered by people on the local worker page.

It owns the jobs waiting for answers and the HTTP server (werkzeug's threaded WSGI server on
the loopback interface, see `app.py`), and answers the page's API calls under one lock.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import threading
import uuid
from typing import Any, Callable
from urllib.parse import quote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler

from labelloop.local.worker_page.app import WorkerPageApp
from labelloop.local.worker_page.errors import PageError
from labelloop.local.worker_page.files import Pinned, read_pinned
from labelloop.local.worker_page.job import _Item, _Job, _iso, _now
from labelloop.local.worker_page.server import MAX_CONNECTIONS, CappedServer
from labelloop.local.workforce import WorkforceError, describe_labeling_job

ANSWER_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
SOCKET_TIMEOUT = 30.0  # seconds a connection may stay silent: a slow or stalled client cannot hold a thread


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
        socket_timeout: float = SOCKET_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ):
        if not _loopback(host):
            raise ValueError(f"the worker page binds to the loopback interface only (127.0.0.1), not {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1..65535, got {port!r}")
        if token is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,200}", token):
            raise ValueError("token must be 16-200 letters, digits, '-' or '_'")
        if isinstance(socket_timeout, bool) or not isinstance(socket_timeout, (int, float)) or not socket_timeout > 0:
            raise ValueError(f"socket_timeout must be a positive number of seconds, got {socket_timeout!r}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.token = token or secrets.token_urlsafe(24)
        self.on_ready = on_ready
        self.on_job = on_job
        self.lease_seconds = lease_seconds
        self.seed = seed
        self.socket_timeout = float(socket_timeout)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        self.max_connections = max_connections
        self.answered = 0  # items given a consolidated label, over the whole run
        self.jobs: list[dict[str, Any]] = []  # Describe answers of the finished jobs
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._active: dict[str, _Job] = {}
        self._last_finished: str | None = None
        self._server: BaseWSGIServer | None = None
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
            self._server = server = self._serve()
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="labelloop-worker-page", daemon=True
            )
            self._thread.start()
            url = self.url
        if self.on_ready:
            self.on_ready(url)
        return url

    def _serve(self) -> BaseWSGIServer:
        # The socket is bound here, not by werkzeug, which answers a port in use with sys.exit.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may reuse its port at once
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
        except OSError as exc:
            listener.close()
            raise WorkforceError(f"cannot serve the worker page on {self.host}:{self.port}: {exc.strerror or exc}") from None
        handler = type("Handler", (_QuietHandler,), {"timeout": self.socket_timeout})
        try:
            return CappedServer(self.host, listener.getsockname()[1], WorkerPageApp(self), handler,
                                fd=listener.fileno(), max_connections=self.max_connections)
        finally:
            listener.close()  # the server holds its own duplicate of the socket

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
        job = _Job(params, self.lease_seconds, self.seed, task_type)
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
            "widget": job.widget,
            "widget_options": job.task.widget_options(job.classes),
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
            label, clicks = body.get("label"), body.get("clicks")
            job.check_answer(worker, item, label, answer_id, _now(), clicks)
            job.journal_append(job._answer_record(item, worker, label, answer_id, clicks))
            job.apply_answer(worker, item, label, answer_id, clicks)
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

    def api_propose(self, worker: str, body: dict[str, Any]) -> dict[str, Any]:
        """An object proposed from the person's clicks on the image item they hold: the task type's
        click tool (`TaskType.propose_object`), run outside the lock (it takes a few milliseconds)."""
        with self._lock:
            job = self._job(body.get("job"))
            if not job.task.proposes_objects:
                raise PageError(404, f"task type {job.task.name} has no click tool")
            item = job.item(body.get("item"))
            if item.leases.get(worker, 0.0) <= _now():
                raise PageError(409, f"item {item.index} is not assigned to worker {worker}")
            ref, image = item.line.get("source-ref"), item.image
        if not isinstance(image, Pinned):
            raise PageError(404, f"item {item.index} has no image to click on ({image or 'text'})")
        try:
            return job.task.propose_object(read_pinned(ref, image), body)
        except ValueError as exc:
            raise PageError(400, f"item {item.index}: {exc}") from None

    def image(self, job_name: str | None, index: str | None) -> tuple[str, Pinned]:
        """(the file name the job lists, that file as the job started) for an image item of a waiting job."""
        with self._lock:
            job = self._job(job_name)
            try:
                number = int(index) if index is not None else None
            except ValueError:
                number = None
            item = job.item(number)
            ref, image = item.line.get("source-ref"), item.image
        if image is None:
            raise PageError(404, f"item {item.index} is text, not an image")
        if not isinstance(image, Pinned):
            raise PageError(404, f"item {item.index}'s {image}")
        return ref, image


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler, silent (the terminal shows the loop) and under our name."""

    server_version = "labelloop-worker-page"
    sys_version = ""

    def log(self, type: str, message: str, *args: Any) -> None:
        pass
