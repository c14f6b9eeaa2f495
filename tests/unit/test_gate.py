"""GateAndRoute's routing: what the next human batch is made of (steps called directly)."""

import json
from pathlib import Path

from labelloop import steps

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src.tar.gz"}}}


def roles(batch):
    return [json.loads(l)["labelloop-role"] for l in open(batch["ManifestUri"])]


UNSURE = lambda line: [0.6, 0.4]  # noqa: E731


def one_iteration(tmp_path, probabilities=UNSURE, **settings):
    tmp_path.mkdir(parents=True, exist_ok=True)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(300)))
    job = {
        "ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "gate",
        "TaskType": "text-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
        "HumanBatchSize": 40, **settings,
    }
    boot = steps.bootstrap({"Input": job, "ExecutionName": "g1", "Deployment": DEPLOYMENT})
    config, state = boot["config"], steps.sample_for_humans(boot)
    batch = state["HumanBatch"]
    out = Path(batch["OutputUri"]) / batch["LabelingJobName"] / "manifests" / "output" / "output.manifest"
    out.parent.mkdir(parents=True)
    lines = [json.loads(l) for l in open(batch["ManifestUri"])]
    out.write_text("".join(json.dumps({**l, "label": 0}) + "\n" for l in lines))
    first_roles = roles(batch)
    state = steps.merge_human_labels({"config": config, "state": state, "labeling": {"OutputManifestUri": str(out)}})
    iteration = steps.split_validation({"config": config, "state": state})
    # By default a model too unsure to auto-label anything: the next batch is all routing.
    for kind, src in (("ValidationTransform", "channels/validation/validation.manifest"),
                      ("UnlabeledTransform", "transform-input/unlabeled/unlabeled.manifest")):
        base = tmp_path / "out" / "iterations" / "001"
        dst = Path(iteration[kind]["OutputUri"]) / (Path(src).name + ".out")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("".join(json.dumps({**json.loads(l), "SageMakerOutput": {"probabilities": probabilities(json.loads(l))}}) + "\n"
                               for l in open(base / src)))
    cal = steps.calibrate_threshold({"config": config, "state": state, "iteration": iteration})
    state = steps.gate_and_route({"config": config, "state": state, "iteration": iteration, "calibration": cal})
    return first_roles, roles(state["HumanBatch"]), state


def sure_of_even_ids(line):
    # Every human answered class 0: right and sure on even ids, wrong on odd ones.
    return [0.99, 0.01] if line["labelloop-id"] % 2 == 0 else [0.4, 0.6]


LENIENT = {"TargetAccuracy": 0.8, "ConfidenceLevel": 0.8}  # so 20 validation items can certify


def test_retired_validation_items_keep_their_verdict_in_the_ledger(tmp_path):
    _, _, state = one_iteration(tmp_path, sure_of_even_ids, ValidationSize=25, **LENIENT)
    records = [json.loads(l) for l in open(state["LedgerUri"])]
    retired = [r for r in records if r.get("split") == "retired"]
    assert retired and all(r["id"] % 2 == 0 for r in retired)
    assert all(r["verdict"] == {"iteration": 1, "predicted": 0, "confidence": 0.99, "correct": True} for r in retired)
    assert state["LastMetrics"]["ValidationRetired"] == len(retired)
    # The next iteration's split reports them for the cumulative calibration.
    config = {"Settings": json.load(open(tmp_path / "out" / "config" / "settings.json"))}
    config.update({"ClassNames": ["a", "b"], "RunId": "r", "SourceDirUri": "/src.tar.gz"})
    nxt = steps.split_validation({"config": config, "state": {**state, "Iteration": 2}})
    assert nxt["RetiredValidation"] == {"Count": len(retired), "Correct": len(retired)}


def test_cumulative_scope_counts_retired_items_toward_the_validation_size(tmp_path):
    # 20 validation items, some retired: cumulative still holds all 20 of 25; iteration only the rest.
    _, cumulative, _ = one_iteration(tmp_path / "c", sure_of_even_ids, ValidationSize=25, **LENIENT)
    _, per_iteration, state = one_iteration(
        tmp_path / "i", sure_of_even_ids, ValidationSize=25, CalibrationScope="iteration", **LENIENT
    )
    retired = state["LastMetrics"]["ValidationRetired"]
    assert retired > 0
    assert cumulative.count("validation") == 5
    assert per_iteration.count("validation") == 25 - (20 - retired)


def test_validation_is_topped_up_to_its_size_and_no_further(tmp_path):
    first, nxt, _ = one_iteration(tmp_path, ValidationSize=25)
    assert first.count("validation") == 20  # the first batch: half validates (up to the size)
    assert nxt.count("validation") == 5  # topped up to 25; the rest of the batch trains
    assert len(nxt) == 40


def test_a_full_validation_set_gets_no_more_draws(tmp_path):
    _, nxt, state = one_iteration(tmp_path, ValidationSize=10, RandomFraction=0.25)
    assert nxt.count("validation") == 0
    assert len(nxt) == 40 and state["LastMetrics"]["AutoLabeledThisIteration"] == 0


def test_batches_carry_the_models_guess_for_people(tmp_path):
    _, _, state = one_iteration(tmp_path)
    line = json.loads(open(state["HumanBatch"]["ManifestUri"]).readline())
    assert line["labelloop-guess"] == {"class": 0, "confidence": 0.6}
