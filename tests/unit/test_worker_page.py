"""The local worker page over plain HTTP: answers, bad requests, hardening (several workers, leases
and the journal: test_worker_page_journal.py; widgets: test_worker_page_widgets.py).

Each test serves a small synthesized batch with `PeopleWorkforce` on a random loopback port and
talks to it over HTTP (http.client), as the page's script does.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from labelloop.local.worker_page import PeopleWorkforce
from labelloop.local.workforce import SimulatedWorkforce, WorkforceError
from labelloop.manifest import item_key

import worker_page_helpers
from worker_page_helpers import CLASSES, Job, make_params, texts

workforce = worker_page_helpers.workforce  # the helpers' pytest fixture, bound here for this module's tests


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
