"""Faults through the local engine: each ends SUCCEEDED (transient) or FAILED with every label
collected so far in the partial output manifest (permanent). Nothing a human labeled is lost.

Faults are injected with `labelloop.local.faults` (a FaultPlan wired into one LocalEngine). The
runs use a small two-class text set (the scikit-learn algorithm: an iteration takes seconds);
the fault paths are the same for images. A training job that fails for real (undecodable
images) is in tests/e2e/test_local_loop.py; the killed-process fault is in test_kill.py.
"""

import json
from pathlib import Path

from fault_helpers import text_dataset

from labelloop.local import outcome
from labelloop.local.engine import LocalEngine
from labelloop.local.faults import FaultPlan, install, labels_lost
from labelloop.local.workforce import SimulatedWorkforce

ATTRIBUTE = "category"


def run(tmp_path: Path, plan: FaultPlan, n: int = 40, name: str = "fault-1", **settings):
    manifest, truth = text_dataset(tmp_path / "data", n)
    out = tmp_path / "out"
    workforce = SimulatedWorkforce(truth, seed=0)
    engine = LocalEngine(out / "work", workforce, poll_seconds=0.05)
    install(engine, plan)
    result = engine.run(
        {
            "ManifestUri": str(manifest), "OutputUri": str(out), "JobName": "faults",
            "TaskType": "text-classification", "LabelAttributeName": ATTRIBUTE,
            "LabelCategories": ["ham", "spam"], "HumanBatchSize": 20, "ValidationSize": 5,
            "MaxIterations": 2, **settings,
        },
        name=name,
    )
    return result, workforce, out


def output_lines(out: Path) -> list[dict]:
    return [json.loads(l) for l in (out / "output" / "output.manifest").read_text().splitlines() if l.strip()]


def human_lines(out: Path) -> list[dict]:
    return [l for l in output_lines(out) if (l.get(f"{ATTRIBUTE}-metadata") or {}).get("human-annotated") == "yes"]


def assert_nothing_lost(out: Path, workforce, n: int, recorder, plan: FaultPlan) -> None:
    lines = output_lines(out)
    assert len(lines) == n, "every input item is in the (partial) output manifest once"
    loss = labels_lost(out, ATTRIBUTE)
    assert loss["lost"] == 0, loss
    assert loss["given"] == workforce.answered == len(human_lines(out))
    recorder("fault", len(plan.injected), output_dir=out, attribute=ATTRIBUTE, injected=[f["kind"] for f in plan.injected])


def assert_failed_with_partial_output(result, out: Path, error_text: str) -> dict:
    assert result.status == "FAILED"
    assert result.error == "LabelingLoopFailed"
    assert error_text in result.cause, result.cause
    assert f"labels so far: {out / 'output' / 'output.manifest'}" in result.cause
    summary = json.loads((out / "output" / "summary.json").read_text())
    assert summary["StopReason"].startswith("failed: ")
    return summary


def assert_one_line(result, line: str) -> None:
    """What `labelloop run` prints for this failure: the state and the sentence, exit status 3."""
    failure = outcome.failure_of(result.history, result.error, result.cause)
    assert failure.line() == line
    assert failure.exit_code == outcome.EXIT_FAILED


def test_training_job_failure_keeps_the_labels_so_far(tmp_path, recorder):
    plan = FaultPlan(fail_training="-001-train")
    result, workforce, out = run(tmp_path, plan)
    assert_failed_with_partial_output(result, out, '"TrainingJobStatus": "Failed"')
    assert_one_line(result, "labelloop: TrainModel failed: AlgorithmError: injected fault (labelloop.local.faults)")
    assert len(human_lines(out)) == 20
    assert_nothing_lost(out, workforce, 40, recorder, plan)


def test_transform_job_failure_keeps_the_labels_so_far(tmp_path, recorder):
    plan = FaultPlan(fail_transform="-001-infer-val")
    result, workforce, out = run(tmp_path, plan)
    summary = assert_failed_with_partial_output(result, out, '"TransformJobStatus": "Failed"')
    assert summary["StopReason"] == "failed: States.TaskFailed"
    assert "injected fault" in result.cause
    assert_one_line(result, "labelloop: InferValidation failed: ClientError: injected fault (labelloop.local.faults)")
    assert len(human_lines(out)) == 20
    assert_nothing_lost(out, workforce, 40, recorder, plan)


def test_malformed_algorithm_output_fails_with_the_labels_so_far(tmp_path, recorder):
    plan = FaultPlan(malformed_transform="-001-infer-val")
    result, workforce, out = run(tmp_path, plan)
    summary = assert_failed_with_partial_output(result, out, "AlgorithmOutputError: ")
    assert "expected 2 class probabilities" in result.cause
    assert summary["StopReason"] == "failed: AlgorithmOutputError"
    failure = outcome.failure_of(result.history, result.error, result.cause)
    assert failure.error == "AlgorithmOutputError" and "expected 2 class probabilities" in failure.cause
    assert "\n" not in failure.line() and "stackTrace" not in failure.line() and "Traceback" in failure.detail
    assert len(human_lines(out)) == 20
    assert_nothing_lost(out, workforce, 40, recorder, plan)


def test_failed_labeling_job_keeps_the_labels_of_earlier_jobs(tmp_path, recorder):
    plan = FaultPlan(fail_labeling_job=2)
    result, workforce, out = run(tmp_path, plan, n=60, MaxIterations=3)
    assert_failed_with_partial_output(result, out, '"LabelingJobStatus": "Failed"')
    assert [f["kind"] for f in plan.injected] == ["labeling-job-failed"]
    assert len(human_lines(out)) == 20 == workforce.answered  # the first job's labels, all of them
    assert_nothing_lost(out, workforce, 60, recorder, plan)


def test_labeling_job_answering_part_of_its_items_reroutes_the_rest(tmp_path, recorder):
    # 30 items, full batches of 20: the second batch holds every item still unlabeled, so the ten
    # the first job left unanswered must be in it.
    plan = FaultPlan(labeling_answer_share=0.5)
    result, workforce, out = run(tmp_path, plan, n=30, TailBatch=False)
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    batches = {
        p.parent.name: [json.loads(l)["labelloop-id"] for l in p.read_text().splitlines() if l.strip()]
        for p in sorted((out / "iterations").glob("*/human-input.manifest"))
    }
    first, second = batches["001"], batches["002"]
    answered_first = set(_answered_ids(out, "-001-label"))
    unanswered = set(first) - answered_first
    assert len(answered_first) == 10 and len(unanswered) == 10
    assert unanswered <= set(second), "unanswered items are sent to humans again"
    assert not answered_first & set(second), "an answered item is never sent to humans twice"
    assert result.summary["HumanLabeled"] == workforce.answered == 20
    assert_nothing_lost(out, workforce, 30, recorder, plan)


def test_throttled_lambda_is_retried_and_the_run_succeeds(tmp_path, recorder):
    # 12 items in one human batch: labeled at once, no model needed; MergeHumanLabels is
    # throttled once and the ASL's Retry (2 s, backoff) runs it again.
    plan = FaultPlan(throttle={"MergeHumanLabels": 1})
    result, workforce, out = run(tmp_path, plan, n=12, HumanBatchSize=12)
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert [f["kind"] for f in plan.injected] == ["lambda-throttled"]
    failed = [e for e in result.history if e["type"] == "LambdaFunctionFailed"]
    assert len(failed) == 1 and failed[0]["lambdaFunctionFailedEventDetails"]["error"] == "ThrottlingException"
    assert result.summary["HumanLabeled"] == 12 and result.summary["StopReason"] == "all-labeled"
    assert_nothing_lost(out, workforce, 12, recorder, plan)


def _answered_ids(out: Path, suffix: str) -> list[int]:
    ids = []
    for path in out.glob(f"labeling/*{suffix}/manifests/output/output.manifest"):
        for text in path.read_text().splitlines():
            line = json.loads(text)
            if ATTRIBUTE in line:
                ids.append(line["labelloop-id"])
    return ids


def test_a_lost_create_answer_is_tried_again_and_the_existing_job_is_used(tmp_path, recorder):
    # SageMaker created the first training job, but its answer was lost (a 500): the next try
    # finds the name taken; the loop looks the job up and goes on with its model, with no second
    # training job of that name and nothing paid twice.
    plan = FaultPlan(lose_response="-001-train")
    result, workforce, out = run(tmp_path, plan)
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert [f["kind"] for f in plan.injected] == ["create-response-lost"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in result.history if "stateEnteredEventDetails" in e]
    for state in ("TrainModelRefused", "SageMakerRefused?", "WaitAfterThrottling", "DescribeTrainingJob", "UseExistingTrainingJob"):
        assert state in entered, state
    trained = [j["describe"]["TrainingJobName"] for j in result_jobs(tmp_path)]
    assert trained[0].endswith("-001-train") and len(trained) == len(set(trained))
    assert entered.count("TrainModel") == len(trained) + 1  # iteration 1 twice: the lost answer, then "already exists"
    assert result.summary["HumanLabeled"] == workforce.answered
    assert_nothing_lost(out, workforce, 40, recorder, plan)


def test_a_refused_create_is_not_tried_again(tmp_path, recorder):
    plan = FaultPlan(refuse_create="-001-infer-val")
    result, workforce, out = run(tmp_path, plan)
    assert_failed_with_partial_output(result, out, "ValidationException")
    entered = [e["stateEnteredEventDetails"]["name"] for e in result.history if "stateEnteredEventDetails" in e]
    assert entered.count("InferValidation") == 1 and "WaitAfterThrottling" not in entered
    assert_nothing_lost(out, workforce, 40, recorder, plan)


def result_jobs(tmp_path: Path) -> list[dict]:
    return [
        {"describe": {"TrainingJobName": p.name}}
        for p in sorted((tmp_path / "out" / "work" / "jobs" / "training").iterdir())
    ]
