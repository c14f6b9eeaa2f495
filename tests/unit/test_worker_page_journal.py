"""The worker page over HTTP: several workers and leases, skip and undo, the journal a restart resumes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from labelloop import tasks
from labelloop.local.worker_page import PeopleWorkforce
from labelloop.local.workforce import WorkforceError

import worker_page_helpers
from worker_page_helpers import Job, make_params, texts

workforce = worker_page_helpers.workforce  # the helpers' pytest fixture, bound here for this module's tests


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
