"""A resumed run refuses inputs that changed under its paid labels; no input may live where the run writes.

Steps are called directly (as in tests/unit/test_resume.py): Bootstrap, the first human batch
answered by a labeling job, then the same command again with one input changed.
"""

import json
import os

import pytest

from labelloop import steps
from labelloop.config import ConfigurationError

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/s.tar.gz"}}}


@pytest.fixture()
def job(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(40)))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"document-version": "2018-11-28", "labels": [{"label": "ham"}, {"label": "spam"}]}))
    return {
        "ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "changed",
        "TaskType": "text-classification", "LabelAttributeName": "label",
        "LabelCategoryConfigUri": str(labels), "HumanBatchSize": 20,
    }


def boot(job, name):
    return steps.bootstrap({"Input": job, "ExecutionName": name, "Deployment": DEPLOYMENT})


def paid_batch(job):
    """Bootstrap and a labeling job that answered its batch (people were paid for 20 labels)."""
    state = steps.sample_for_humans(boot(job, "run-1"))
    batch = state["HumanBatch"]
    out = os.path.join(batch["OutputUri"], batch["LabelingJobName"], "manifests", "output", "output.manifest")
    os.makedirs(os.path.dirname(out))
    with open(out, "w") as f:
        for text in open(batch["ManifestUri"]):
            line = json.loads(text)
            f.write(json.dumps({**line, "label": 1, "label-metadata": {"class-name": "spam", "human-annotated": "yes"}}) + "\n")


def test_reordered_label_config_is_refused(job, tmp_path, recorder):
    # The check compared nothing with --label-config: reordering the file renamed 20 paid labels.
    paid_batch(job)
    (tmp_path / "labels.json").write_text(json.dumps({"labels": [{"label": "spam"}, {"label": "ham"}]}))
    with pytest.raises(ConfigurationError, match=r"label categories \['ham', 'spam'\]; this job gives \['spam', 'ham'\] "
                                                 r"\(the same categories in another order\)"):
        boot(job, "run-2")
    (tmp_path / "labels.json").write_text(json.dumps({"labels": [{"label": "ham"}, {"label": "spam"}, {"label": "x"}]}))
    with pytest.raises(ConfigurationError, match=r"\(other categories\)"):
        boot(job, "run-3")
    with pytest.raises(ConfigurationError, match=r"label categories \['ham', 'spam'\]; this job gives \['spam', 'ham'\]"):
        boot({**{k: v for k, v in job.items() if k != "LabelCategoryConfigUri"}, "LabelCategories": ["spam", "ham"]}, "run-4")
    recorder("bad-input", 3)


def test_the_same_label_config_resumes(job):
    paid_batch(job)
    assert boot(job, "run-2")["state"]["HumanLabeled"] == 20


def test_appended_manifest_lines_are_refused_naming_the_difference(job, recorder):
    # They were never labeled, and the run said "all-labeled".
    paid_batch(job)
    with open(job["ManifestUri"], "a") as f:
        f.write(json.dumps({"source": "a new item"}) + "\n")
    with pytest.raises(ConfigurationError, match=r"changed since the run .* bytes were appended after its 40 lines "
                                                 r"\(now 41 lines\)"):
        boot(job, "run-2")
    recorder("bad-input", 1)


def test_edited_manifest_is_refused(job, recorder):
    paid_batch(job)
    text = open(job["ManifestUri"]).read()
    open(job["ManifestUri"], "w").write(text.replace("text 7", "text 8"))  # same size, other content
    with pytest.raises(ConfigurationError, match=r"its content was edited \(\d+ bytes, 40 lines, sha256"):
        boot(job, "run-2")
    recorder("bad-input", 1)


def test_a_manifest_fixed_before_anything_was_labeled_is_taken(job, tmp_path):
    # The first Bootstrap refused the manifest (too many bad lines): fixing it and running again works.
    good = open(job["ManifestUri"]).read()
    open(job["ManifestUri"], "w").write(good + "not json\n" * 10)
    with pytest.raises(steps.InputManifestError, match="10 of 50 lines"):
        boot(job, "run-1")
    assert (tmp_path / "out" / "input" / "rejected.manifest").exists(), "the rejected lines are there to fix"
    assert not list((tmp_path / "out").rglob("ledger-*")), "a refused manifest leaves no ledger to resume from"
    # The ten lines fixed: the run takes all 50 items (it resumed the refused manifest's 40 before).
    open(job["ManifestUri"], "w").write(good + "".join(json.dumps({"source": f"fixed {i}"}) + "\n" for i in range(10)))
    assert boot(job, "run-2")["state"]["Total"] == 50


@pytest.mark.parametrize("where", ["output/output.manifest", "input/rejected.manifest", "config/m.jsonl",
                                   "iterations/001/m.jsonl"])
def test_an_input_inside_the_runs_own_paths_is_refused(job, tmp_path, recorder, where):
    # A manifest at OUT/output/output.manifest was replaced by the output (once by an empty file).
    target = tmp_path / "out" / where
    target.parent.mkdir(parents=True)
    target.write_text(open(job["ManifestUri"]).read())
    with pytest.raises(ConfigurationError, match=f"input manifest {target} is inside .* which this run writes to"):
        boot({**job, "ManifestUri": str(target)}, "run-1")
    assert target.read_text() == open(job["ManifestUri"]).read()
    link = tmp_path / "link.jsonl"  # a link to it is the same file
    link.symlink_to(target)
    with pytest.raises(ConfigurationError, match="which this run writes to"):
        boot({**job, "ManifestUri": str(link)}, "run-1")
    recorder("bad-input", 2)


def test_a_manifest_beside_the_runs_paths_is_fine(job, tmp_path):
    mine = tmp_path / "out" / "manifest.jsonl"
    mine.parent.mkdir()
    mine.write_text(open(job["ManifestUri"]).read())
    assert boot({**job, "ManifestUri": str(mine)}, "run-1")["state"]["Total"] == 40


def test_the_fault_suite_counts_a_label_renamed_by_reordered_categories(tmp_path):
    # labels_lost compares class numbers: a reordering keeps them and changes every name.
    from labelloop.local.faults import labels_corrupted, labels_lost

    answers = tmp_path / "labeling" / "job-001-label" / "manifests" / "output" / "output.manifest"
    answers.parent.mkdir(parents=True)
    answers.write_text("".join(json.dumps({"labelloop-id": i, "source": f"t{i}", "c": 1, "c-metadata": {
        "class-name": "spam", "human-annotated": "yes"}}) + "\n" for i in range(2)))
    output = tmp_path / "output" / "output.manifest"
    output.parent.mkdir()
    output.write_text(json.dumps({"source": "t0", "c": 1, "c-metadata": {"class-name": "spam", "human-annotated": "yes"}})
                      + "\n" + json.dumps({"source": "t1", "c": 1, "c-metadata": {"class-name": "ham", "human-annotated": "yes"}})
                      + "\n")
    assert labels_lost(tmp_path, "c")["lost"] == 0
    assert labels_corrupted(tmp_path, "c")["corrupted"] == 1
