"""`--truth` in the forms people have it, checked against the run before anyone is paid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelloop.cli import main
from labelloop.manifest import item_key
from labelloop.truth import MANIFEST_FORMAT, PREPARE_FORMAT, TruthError, check_truth, read_truth, truth_for_run

CLASSES = ["billing", "outage", "other"]
TICKETS = [("My invoice is wrong", "billing"), ("The site is down", "outage"), ("Hello there", "other"),
           ("Charged twice this month", "billing")]


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def job(tmp_path) -> dict:
    manifest = write_lines(tmp_path / "manifest.jsonl", [{"source": text} for text, _ in TICKETS])
    return {"ManifestUri": str(manifest), "LabelCategories": CLASSES, "LabelAttributeName": "category"}


def prepare_file(tmp_path: Path, rows=TICKETS) -> Path:
    return write_lines(tmp_path / "truth.jsonl", [{"key": item_key({"source": t}), "label": c} for t, c in rows])


def ground_truth_manifest(tmp_path: Path, rows=TICKETS, attribute="ticket-type") -> Path:
    lines = [{"source": t, attribute: CLASSES.index(c) if c in CLASSES else 0,
              f"{attribute}-metadata": {"class-name": c, "confidence": 0.9, "type": "groundtruth/text-classification",
                                        "human-annotated": "yes", "job-name": "labeling-job/tickets"}} for t, c in rows]
    return write_lines(tmp_path / "output.manifest", lines)


def test_a_prepare_truth_file_is_read_and_covers_the_manifest(tmp_path, job):
    labels, line = truth_for_run(prepare_file(tmp_path), job)
    assert labels[item_key({"source": "The site is down"})] == "outage"
    assert "4 of the manifest's 4 items (100.0 %)" in line and PREPARE_FORMAT in line


def test_a_ground_truth_output_manifest_is_detected_and_read(tmp_path, job):
    path = ground_truth_manifest(tmp_path)
    truth = read_truth(path, "category")
    assert truth.format == MANIFEST_FORMAT and truth.attribute == "ticket-type"
    labels, line = truth_for_run(path, job)
    assert labels == {item_key({"source": t}): c for t, c in TICKETS}
    assert MANIFEST_FORMAT in line and "4 of the manifest's 4 items" in line


def test_objects_ground_truth_failed_to_label_are_skipped_and_the_coverage_says_so(tmp_path, job):
    path = ground_truth_manifest(tmp_path, TICKETS[:3])
    with path.open("a") as f:  # Ground Truth writes a failed object without the label attribute
        f.write(json.dumps({"source": TICKETS[3][0], "ticket-type-metadata": {"failure-reason": "timeout"}}) + "\n")
    truth = read_truth(path)
    assert len(truth.labels) == 3 and truth.skipped == 1
    _, line = truth_for_run(path, job)
    assert "3 of the manifest's 4 items (75.0 %)" in line and "fail the 1 items without one" in line


@pytest.mark.parametrize("make", [prepare_file, ground_truth_manifest])
def test_a_label_in_the_wrong_case_names_the_line_and_suggests_the_category(tmp_path, job, make):
    rows = [*TICKETS[:2], ("Hello there", "Billing"), TICKETS[3]]
    with pytest.raises(TruthError) as err:
        truth_for_run(make(tmp_path, rows), job)
    assert "line 3: 'Billing' (did you mean 'billing'?)" in str(err.value)


def test_a_label_that_is_no_category_is_an_error(tmp_path, job):
    with pytest.raises(TruthError, match=r"\(billing, outage, other\): line 2: .network.$"):
        truth_for_run(prepare_file(tmp_path, [TICKETS[0], ("The site is down", "network")]), job)


def test_keys_that_match_no_item_are_counted_with_the_first_examples(tmp_path, job):
    # Keyed the natural way, by the text itself: none of them is an item key.
    path = write_lines(tmp_path / "truth.jsonl", [{"key": t, "label": c} for t, c in TICKETS])
    with pytest.raises(TruthError) as err:
        truth_for_run(path, job)
    message = str(err.value)
    assert "4 of its 4 keys match no item of the manifest" in message
    assert "line 1: 'My invoice is wrong'" in message and "sha256:<hex digest of the text>" in message


@pytest.mark.parametrize("text, expected", [
    ('{"key": "a", "label": "billing"}\n{"key": "b", "label": \n', "line 2: not valid JSON"),
    ('\n\n[1, 2]\n', "line 3: expected a JSON object"),
    ('{"id": 1}\n', "line 1: neither a truth line"),
    ('{"key": "", "label": "billing"}\n', "line 1: 'key' must be a non-empty string"),
    ('{"key": "a", "label": "billing"}\n{"key": "a", "label": "other"}\n', "line 2: item 'a' already has a label (line 1)"),
    ('', "the file is empty"),
])
def test_unparseable_lines_are_named(tmp_path, text, expected):
    path = tmp_path / "truth.jsonl"
    path.write_text(text)
    with pytest.raises(TruthError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_truth(path)


def test_a_missing_truth_file_is_a_clear_error(tmp_path):
    with pytest.raises(TruthError, match="no such file"):
        read_truth(tmp_path / "nope.jsonl")


def test_lines_the_run_rejects_are_left_to_it(tmp_path):
    truth = read_truth(prepare_file(tmp_path, TICKETS[:1]))
    check = check_truth(truth, "t", ["not json", json.dumps({"source": TICKETS[0][0]}), "{}"], CLASSES)
    assert (check.covered, check.items) == (1, 1)


def test_labelloop_run_stops_before_anything_starts(tmp_path, job, capsys):
    truth = prepare_file(tmp_path, [*TICKETS[:3], ("Charged twice this month", "Billing")])
    out = tmp_path / "run"
    code = main(["run", "--manifest", job["ManifestUri"], "--output", str(out), "--task-type", "text-classification",
                 "--label-attribute", "category", "--labels", ",".join(CLASSES), "--truth", str(truth)])
    assert code != 0
    err = capsys.readouterr().err
    assert "line 4: 'Billing' (did you mean 'billing'?)" in err
    assert not (out / "iterations").exists(), "nothing ran, nobody was asked"
