"""GateAndRoute's routing: what the next human batch is made of (steps called directly)."""

import hashlib
import json
from pathlib import Path

import pytest

from labelloop import steps
from labelloop.calibration import worst_case_tail
from labelloop import tasks
from labelloop.manifest import Label

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src.tar.gz"}}}


def roles(batch):
    return [json.loads(l)["labelloop-role"] for l in open(batch["ManifestUri"])]


UNSURE = lambda line: [0.6, 0.4]  # noqa: E731


def start_job(tmp_path, **settings):
    tmp_path.mkdir(parents=True, exist_ok=True)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(300)))
    job = {
        "ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "gate",
        "TaskType": "text-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
        "HumanBatchSize": 40, **settings,
    }
    boot = steps.bootstrap({"Input": job, "ExecutionName": "g1", "Deployment": DEPLOYMENT})
    return boot["config"], steps.sample_for_humans(boot)


def humans_answer(config, state, answer=None):
    """Every item of the routed batch gets class 0 from the humans (or the fields of `answer`)."""
    batch = state["HumanBatch"]
    out = Path(batch["OutputUri"]) / batch["LabelingJobName"] / "manifests" / "output" / "output.manifest"
    out.parent.mkdir(parents=True)
    lines = [json.loads(l) for l in open(batch["ManifestUri"])]
    out.write_text("".join(json.dumps({**l, **(answer or {"label": 0})}) + "\n" for l in lines))
    return steps.merge_human_labels({"config": config, "state": state, "labeling": {"OutputManifestUri": str(out)}})


def model_judges(config, state, probabilities=None, *, output=None):
    """One iteration after the humans answered: split, a model that says `probabilities` (or
    answers `output(line)`, a whole SageMakerOutput), calibrate, gate."""
    output = output or (lambda line: {"probabilities": probabilities(line)})
    iteration = steps.split_validation({"config": config, "state": state})
    base = Path(config["Settings"]["OutputUri"]) / "iterations" / f"{state['Iteration']:03d}"
    for kind, src in (("ValidationTransform", "channels/validation/validation.manifest"),
                      ("UnlabeledTransform", "transform-input/unlabeled/unlabeled.manifest")):
        dst = Path(iteration[kind]["OutputUri"]) / (Path(src).name + ".out")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("".join(
            json.dumps({**json.loads(l), "SageMakerOutput": output(json.loads(l))}) + "\n"
            for l in open(base / src)
        ))
    cal = steps.calibrate_threshold({"config": config, "state": state, "iteration": iteration})
    return steps.gate_and_route({"config": config, "state": state, "iteration": iteration, "calibration": cal})


def one_iteration(tmp_path, probabilities=UNSURE, **settings):
    # By default a model too unsure to auto-label anything: the next batch is all routing.
    config, state = start_job(tmp_path, **settings)
    first_roles = roles(state["HumanBatch"])
    state = model_judges(config, humans_answer(config, state), probabilities)
    return first_roles, roles(state["HumanBatch"]), state


def sure_of_even_ids(line):
    # Every human answered class 0: right and sure on even ids, wrong on odd ones.
    return [0.99, 0.01] if line["labelloop-id"] % 2 == 0 else [0.4, 0.6]


# So 20 validation items can certify; no worst-case tail, which such a lax target makes large.
LENIENT = {"TargetAccuracy": 0.8, "ConfidenceLevel": 0.8, "WorstCaseTail": False}
CUMULATIVE = {"CalibrationScope": "cumulative"}  # verdicts, retrain before routing, the tail: its features alone


def ledger_records(state):
    return [json.loads(l) for l in open(state["LedgerUri"])]


def test_job_scope_rejudges_auto_labels_and_never_touches_human_ones(tmp_path):
    config, state = start_job(tmp_path, CalibrationScope="job", **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    first = {r["id"]: r["label"] for r in ledger_records(state)}
    auto = {i for i, l in first.items() if l and not l["human"]}
    assert auto and all(i % 2 == 0 for i in auto)
    assert state["LastMetrics"]["AutoLabeled"] == len(auto) == state["LastMetrics"]["AutoLabeledThisIteration"]
    # The next model is sure of every validation item, and of the pool but for ids 2 mod 4:
    # the threshold lands at its sure level, and those auto-labels are withdrawn.
    state = humans_answer(config, state)
    records = ledger_records(state)
    human = {r["id"]: r["label"] for r in records if r["label"] and r["label"]["human"]}
    validation = {r["id"] for r in records if r.get("split") == "validation"}
    unsure_of = lambda i: i % 4 == 2 and i not in validation  # noqa: E731
    state = model_judges(config, state, lambda l: [0.55, 0.45] if unsure_of(l["labelloop-id"]) else [0.99, 0.01])
    second = {r["id"]: r["label"] for r in ledger_records(state)}
    assert {i: l for i, l in second.items() if l and l["human"]} == human  # verbatim
    kept = {i for i, l in second.items() if l and not l["human"]}
    assert kept and all(i % 4 != 2 for i in kept) and any(i % 2 for i in kept)
    assert all(second[i]["iteration"] == 2 for i in kept)  # vouched for by the newest model
    withdrawn = {i for i in auto if i % 4 == 2}
    assert withdrawn and all(second[i] is None for i in withdrawn)
    # Withdrawn too: provisional items drawn as validation top-ups (humans will label them).
    dropped = {i for i in auto if second[i] is None}
    assert state["LastMetrics"]["AutoLabelsWithdrawn"] == len(dropped) >= len(withdrawn)
    assert dropped - withdrawn <= {json.loads(l)["labelloop-id"] for l in open(state["HumanBatch"]["ManifestUri"])}
    assert state["LastMetrics"]["AutoLabeled"] == len(kept)
    # Validation items keep judging, but for those standing for items routed to humans: the
    # first model's unsure ones (odd ids), routed in their shadow, train from then on.
    shadowed = {r["id"] for r in ledger_records(state) if r.get("split") == "retired"}
    assert shadowed and all(i % 2 for i in shadowed)


def test_iteration_scope_keeps_auto_labels_and_retires_validation(tmp_path):
    config, state = start_job(tmp_path, CalibrationScope="iteration", **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    records = ledger_records(state)
    auto = {r["id"] for r in records if r["label"] and not r["label"]["human"]}
    retired = [r for r in records if r.get("split") == "retired"]
    assert auto and retired and all(r["id"] % 2 == 0 for r in retired)
    assert state["LastMetrics"]["ValidationRetired"] == len(retired)
    # A model that would label those items differently (class 1, unsure) changes none of them.
    state = model_judges(config, humans_answer(config, state), lambda l: [0.45, 0.55])
    after = {r["id"]: r["label"] for r in ledger_records(state)}
    assert all(after[i]["iteration"] == 1 and after[i]["class"] == 0 for i in auto)  # final when made


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


def test_cumulative_scope_records_verdicts_and_counts_retired_items_toward_the_validation_size(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, ValidationSize=25, SlackReserve=0.0, RetrainBeforeRoutingGrowth=None, **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    retired = [r for r in ledger_records(state) if r.get("split") == "retired"]
    assert retired and all(r["id"] % 2 == 0 for r in retired)
    assert all(r["verdict"] == {"iteration": 1, "predicted": 0, "confidence": 0.99, "correct": True} for r in retired)
    # All 20 validation labels still judge (retired ones by their verdicts): 5 more to reach 25.
    assert roles(state["HumanBatch"]).count("validation") == 5
    # The next split reports the verdicts for the bound.
    nxt = steps.split_validation({"config": config, "state": humans_answer(config, state)})
    assert nxt["RetiredValidation"] == {"Count": len(retired), "Correct": len(retired)}


def test_retired_items_train_a_model_before_anyone_is_routed(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, RetrainBeforeRoutingGrowth=0.2, **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    retired = [r["id"] for r in ledger_records(state) if r.get("split") == "retired"]
    assert len(retired) >= 0.2 * 20  # the first model trained on 20 items
    # The batch is held back, and the loop is not over: the next model trains first.
    assert state["RetrainFirst"] and state["HumanBatch"] == {"Count": 0} and state["StopReason"] is None
    paid = state["HumanLabeled"]
    # That model (wrong on every active validation item) auto-labels nothing new. Its iteration
    # asked no humans, so that is no "no progress": it routes the batch, picked by it, and its
    # training set held the retired items.
    state = model_judges(config, state, lambda line: [0.45, 0.55])
    m = state["LastMetrics"]
    assert m["RetrainedOnRetired"] and not m["RetrainFirst"] and m["AutoLabeledThisIteration"] == 0
    assert m["TrainCount"] == 20 + len(retired) and m["HumanLabeledThisIteration"] == 0
    assert state["StopReason"] is None and state["HumanBatch"]["Count"] == 40 and state["HumanLabeled"] == paid


def test_without_retrain_before_routing_the_gate_routes_at_once(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, RetrainBeforeRoutingGrowth=None, **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    assert not state["RetrainFirst"] and state["HumanBatch"]["Count"] == 40


def test_a_resumed_run_trains_first_when_the_last_gate_held_its_batch_back(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, RetrainBeforeRoutingGrowth=0.2, **LENIENT)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    assert state["RetrainFirst"]
    job = {k: v for k, v in config["Settings"].items() if v is not None}
    boot = steps.bootstrap({"Input": job, "ExecutionName": "g1", "Deployment": DEPLOYMENT})
    resumed = steps.sample_for_humans(boot)
    assert resumed["RetrainFirst"] and resumed["HumanBatch"] == {"Count": 0}  # no random batch drawn
    assert resumed["Iteration"] == state["Iteration"] and resumed["LedgerUri"] == state["LedgerUri"]


def test_when_the_bounds_slack_covers_every_item_left_they_are_auto_labeled_and_say_so(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, TargetAccuracy=0.9, ConfidenceLevel=0.8)
    few = lambda i: i % 100 == 1  # noqa: E731 - the only items the model is unsure of (and wrong about)
    state = model_judges(config, humans_answer(config, state),
                         lambda line: [0.4, 0.6] if few(line["labelloop-id"]) else [0.99, 0.01])
    auto = [r for r in ledger_records(state) if r["label"] and not r["label"]["human"]]
    certified = [r for r in auto if r["label"]["threshold"] is not None]
    tail = [r for r in auto if r["label"]["threshold"] is None]
    assert tail and all(few(r["id"]) for r in tail) and not any(few(r["id"]) for r in certified)
    # Even if every one of them is wrong, the pool still meets the target: the job is done.
    bound = certified[0]["label"]["lower-bound"]
    assert worst_case_tail(bound, len(certified), 0.9) >= len(tail)
    pool_bound = bound * len(certified) / (len(certified) + len(tail))
    m = state["LastMetrics"]
    assert m["WorstCaseTail"] == len(tail) and m["PoolLowerBound"] == pytest.approx(pool_bound) and pool_bound >= 0.9
    assert all(r["label"]["lower-bound"] == pytest.approx(pool_bound) for r in tail)
    assert state["Remaining"] == 0 and state["StopReason"] == "all-labeled"
    line = tasks.get("text-classification").output_line(
        tail[0]["source"], Label.from_json(tail[0]["label"]), attribute="label", class_names=["a", "b"])
    assert line["label-metadata"]["labelloop-calibration"]["basis"] == "worst-case tail"


def test_a_spent_budget_leaves_the_tail_unlabeled(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, TargetAccuracy=0.9, ConfidenceLevel=0.8, MaxHumanLabeledObjectCount=40,
                              RetrainBeforeRoutingGrowth=None)
    state = model_judges(config, humans_answer(config, state),
                         lambda line: [0.4, 0.6] if line["labelloop-id"] % 100 == 1 else [0.99, 0.01])
    assert state["LastMetrics"]["WorstCaseTail"] == 0 and state["StopReason"] == "human-budget-spent"
    left = [r["id"] for r in ledger_records(state) if r["label"] is None]
    assert left and all(i % 100 == 1 for i in left)


def test_a_tail_the_slack_cannot_cover_whole_goes_to_humans(tmp_path):
    config, state = start_job(tmp_path, **CUMULATIVE, **{**LENIENT, "WorstCaseTail": True}, RetrainBeforeRoutingGrowth=None)
    state = model_judges(config, humans_answer(config, state), sure_of_even_ids)
    auto = [r for r in ledger_records(state) if r["label"] and not r["label"]["human"]]
    assert auto and all(r["label"]["threshold"] is not None for r in auto)
    assert state["LastMetrics"]["WorstCaseTail"] == 0 and state["HumanBatch"]["Count"] == 40


PRICED_APART = {"PricePerLabel": 0.1, "PricePerAdjustedLabel": 0.04}


def guessed_and_blind(batch):
    lines = [json.loads(text) for text in open(batch["ManifestUri"])]
    guessed = [line for line in lines if "labelloop-guess" in line]
    return guessed, [line for line in lines if "labelloop-guess" not in line]


def test_items_shown_the_models_guess_are_counted_and_priced_as_adjustments(tmp_path):
    config, state = start_job(tmp_path, **PRICED_APART)
    state = model_judges(config, humans_answer(config, state), UNSURE)  # the first batch went out blind
    assert state["LastMetrics"]["HumanAdjusted"] == 0 and state["LastMetrics"]["HumanCost"] == 4.0
    guessed, blind = guessed_and_blind(state["HumanBatch"])
    assert guessed and blind and all(line["labelloop-role"] != "validation" for line in guessed), "validation goes out blind"
    merged = humans_answer(config, state)
    assert merged["HumanAdjusted"] == len(guessed) and merged["HumanLabeled"] == 80
    state = model_judges(config, merged, UNSURE)
    assert state["LastMetrics"]["HumanCost"] == round(4.0 + len(blind) * 0.1 + len(guessed) * 0.04, 2)
    # The same run resumed from its files knows which of its paid labels were adjustments.
    again = steps.bootstrap({"Input": config["Settings"], "ExecutionName": "g2", "Deployment": DEPLOYMENT})
    assert again["state"]["Resumed"] and again["state"]["HumanAdjusted"] == len(guessed)


def test_without_a_price_for_adjustments_every_label_costs_the_same(tmp_path):
    config, state = start_job(tmp_path, PricePerLabel=0.1)
    state = model_judges(config, humans_answer(config, state), UNSURE)
    merged = humans_answer(config, state)
    assert merged["HumanAdjusted"] > 0
    assert model_judges(config, merged, UNSURE)["LastMetrics"]["HumanCost"] == 8.0


def test_a_money_budget_sizes_batches_at_the_dearer_price_and_is_never_overrun(tmp_path):
    config, state = start_job(tmp_path, **PRICED_APART, MaxHumanCost=6.2)
    state = model_judges(config, humans_answer(config, state), UNSURE)
    # $4 spent on the blind first batch; $2.20 left buys 22 labels at the dearer price, whatever their mix.
    assert state["HumanBatch"]["Count"] == 22
    guessed, _ = guessed_and_blind(state["HumanBatch"])
    state = model_judges(config, humans_answer(config, state), UNSURE)
    spent = state["LastMetrics"]["HumanCost"]
    assert spent == round(4.0 + (22 - len(guessed)) * 0.1 + len(guessed) * 0.04, 2) <= 6.2
    # What the adjustments saved buys more labels later, never past the budget.
    assert state["HumanBatch"]["Count"] == int(round((6.2 - spent) / 0.1, 6))


def test_an_oracle_gate_auto_labels_down_to_the_lowest_threshold_the_truth_allows(tmp_path):
    # The model says "a" for every item, surer the higher its id; the truth says "b" below id 100.
    truth = tmp_path / "truth.jsonl"
    keys = {i: "sha256:" + hashlib.sha256(f"text {i}".encode()).hexdigest() for i in range(300)}
    truth.write_text("".join(json.dumps({"key": keys[i], "label": "a" if i >= 100 else "b"}) + "\n" for i in range(300)))
    config, state = start_job(tmp_path / "job", CalibrationMethod="oracle", OracleTruthUri=str(truth))
    by_id = lambda line: [0.5 + 0.49 * line["labelloop-id"] / 300, 0.5 - 0.49 * line["labelloop-id"] / 300]  # noqa: E731
    state = model_judges(config, humans_answer(config, state), by_id)
    records = ledger_records(state)
    # The gate judged every item no human labeled (job scope); some of them it then drew for validation.
    judged = sorted(r["id"] for r in records if not (r["label"] and r["label"]["human"]))
    threshold = state["LastMetrics"]["Threshold"]
    above = [i for i in judged if by_id({"labelloop-id": i})[0] >= threshold]
    right = lambda ids: sum(i >= 100 for i in ids) / len(ids)  # noqa: E731
    assert right(above) >= 0.95  # the target holds on the truth ...
    assert right(above + [max(i for i in judged if i < above[0])]) < 0.95  # ... and one more item would break it
    assert any(i < 100 for i in above)  # so wrong labels come in, as far as the target allows
    auto = {r["id"] for r in records if r["label"] and not r["label"]["human"]}
    assert auto and auto <= set(above)


def sure_of_even_and_wrongly_sure_of_some(line):
    # Humans answer class 0. Even ids: class 0, sure (right); ids 1 mod 20: class 1, sure (wrong);
    # the rest: class 1, unsure (wrong). The whole of the sure items is about 91 % right.
    i = line["labelloop-id"]
    return [0.99, 0.01] if i % 2 == 0 else [0.02, 0.98] if i % 20 == 1 else [0.45, 0.55]


def test_the_per_class_promise_keeps_a_bad_class_out_that_the_whole_lets_in(tmp_path):
    whole = {"CalibrationScope": "job", "HumanBatchSize": 200, **LENIENT}
    config, state = start_job(tmp_path / "whole", **whole)
    state = model_judges(config, humans_answer(config, state), sure_of_even_and_wrongly_sure_of_some)
    auto = [r["label"] for r in ledger_records(state) if r["label"] and not r["label"]["human"]]
    assert {a["class"] for a in auto} == {0, 1}  # the sure, wrong class-1 items pass with the whole

    config, state = start_job(tmp_path / "per-class", PerClassPromise=True, **whole)
    state = model_judges(config, humans_answer(config, state), sure_of_even_and_wrongly_sure_of_some)
    cal = json.loads((tmp_path / "per-class" / "out" / "iterations" / "001" / "calibration.json").read_text())
    assert cal["ClassThresholds"] == [0.99, None] and cal["ClassLowerBounds"][1] is None
    assert cal["Threshold"] == 0.99 and cal["LowerBound"] == cal["ClassLowerBounds"][0] >= 0.8
    auto = [r["label"] for r in ledger_records(state) if r["label"] and not r["label"]["human"]]
    assert auto and all(a["class"] == 0 for a in auto)
    assert all((a["threshold"], a["lower-bound"], a["support"], a["class-bound"]) ==
               (0.99, cal["ClassLowerBounds"][0], cal["ClassSupports"][0], True) for a in auto)
    # The output manifest names the class whose threshold vouched for the auto-label.
    line = tasks.get("text-classification").output_line(
        {"source": "x"}, Label.from_json(auto[0]), attribute="label", class_names=["a", "b"])
    assert line["label-metadata"]["labelloop-calibration"] == {
        "threshold": 0.99, "accuracy-lower-bound": cal["ClassLowerBounds"][0], "support": cal["ClassSupports"][0],
        "class-name": "a"}


def test_only_boxes_and_masks_continue_and_only_from_a_model_the_loop_trained():
    from labelloop.steps.split import model_to_continue

    previous, given = "s3://b/out/models/j-001-train/output/model.tar.gz", "s3://b/models/mine/model.tar.gz"
    assert model_to_continue("semantic-segmentation", previous, None) == previous
    assert model_to_continue("object-detection", previous, given) == previous
    assert model_to_continue("object-detection", given, given) is None  # iteration 2 after pre-labeling
    assert model_to_continue("object-detection", None, None) is None  # iteration 1, or a resumed run
    assert model_to_continue("image-classification", previous, None) is None
    assert model_to_continue("text-classification", previous, None) is None


def test_a_short_tail_gets_a_smaller_batch_and_full_tail_batch_restores_it(tmp_path):
    # The model is unsure (and wrong) only of ids 1 mod 10: a gate leaves about 26 items open.
    unsure_few = lambda line: [0.4, 0.6] if line["labelloop-id"] % 10 == 1 else [0.99, 0.01]  # noqa: E731
    sizes = {}
    for tail_batch in (True, False):
        config, state = start_job(tmp_path / str(tail_batch), CalibrationScope="iteration", **LENIENT, TailBatch=tail_batch)
        state = model_judges(config, humans_answer(config, state), unsure_few)
        open_ids = [r["id"] for r in ledger_records(state) if r["label"] is None and r.get("split") is None]
        routed = [json.loads(line)["labelloop-id"] for line in open(state["HumanBatch"]["ManifestUri"])]
        assert set(routed) <= set(open_ids) and all(i % 10 == 1 for i in routed)
        sizes[tail_batch] = (len(routed), len(open_ids))
    (smaller, left), (full, left_too) = sizes[True], sizes[False]
    assert left == left_too and 20 < left < 40  # fewer than a batch (40) is left either way
    assert full == left  # without the rule: every one of them
    assert smaller == -(-left // 2)  # with it: half of them, rounded up (more than a quarter batch, 10)


@pytest.mark.parametrize("scope", ["iteration", "job"])
def test_a_tail_of_at_most_half_a_batch_is_routed_whole(tmp_path, scope):
    # Unsure (and wrong) only of ids 1 mod 20: a gate leaves about 13 items, at most half a batch
    # of 40. Halving them would leave a few to yet another gate; the batch takes every one, and
    # under the job scope still has room for the validation top-up drawn beside them.
    unsure_fewer = lambda line: [0.4, 0.6] if line["labelloop-id"] % 20 == 1 else [0.99, 0.01]  # noqa: E731
    config, state = start_job(tmp_path, CalibrationScope=scope, **LENIENT)
    state = model_judges(config, humans_answer(config, state), unsure_fewer)
    unsure_open = {r["id"] for r in ledger_records(state) if r["label"] is None and r.get("split") is None and r["id"] % 20 == 1}
    routed = {json.loads(line)["labelloop-id"] for line in open(state["HumanBatch"]["ManifestUri"])}
    assert 10 < len(unsure_open) <= 20  # more than a quarter batch, at most half of one
    assert unsure_open <= routed
