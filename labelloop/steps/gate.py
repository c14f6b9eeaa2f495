"""GateAndRoute: auto-label the confident items, route the most uncertain of the rest to humans.

The gate, read as the policy it implements:
1. the items above the calibrated threshold are auto-labeled (plus, when the bound's slack pays
   for all of them, the worst-case tail that is left);
2. validation items the model would auto-label retire into training (the calibration scope says
   whether their verdicts stay behind for later bounds);
3. unless a stop rule holds, or the retired items call for a retrain first, the most uncertain
   of the rest, plus random draws that top the validation set up, go to humans.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labelloop import layout, ledger, storage, tasks
from labelloop.config import JobSettings
from labelloop.contracts import LoopState
from labelloop.manifest import creation_date
from labelloop.steps.auto_labels import AutoLabels, confident_mask, plain, retire_confident_validation, worst_case_tail_mask
from labelloop.steps.human_batch import gate_batch_limit, top_up_limit, write_human_batch
from labelloop.steps.ledger_files import rewrite_ledger
from labelloop.steps.oracle import oracle_quality, still_meeting
from labelloop.steps.predictions import predictions
from labelloop.threshold_rules import oracle_threshold


def _limit_reached(settings: JobSettings, it: int, progress: int, labeled_share: float) -> str | None:
    """The stop rule, other than a spent human budget, that sends no more items to humans."""
    if progress == 0:
        return "no-progress"
    if it >= settings.max_iterations:
        return "max-iterations"
    if settings.max_percentage_labeled is not None and labeled_share >= settings.max_percentage_labeled:
        return "max-percentage-labeled"
    return None


def gate_and_route(event: dict[str, Any]) -> dict[str, Any]:
    """Auto-label the confident items, route the most uncertain of the rest to humans."""
    config, state, iteration, cal = event["config"], event["state"], event["iteration"], event["calibration"]
    settings = JobSettings.parse(config["Settings"])
    scope, routing = settings.scope, settings.routing(state["Iteration"])
    it = state["Iteration"]
    n_classes, task = len(config["ClassNames"]), tasks.get(settings.task_type)
    draws_validation = settings.validation.draws_validation and iteration["ValidationCount"] > 0
    pool, _ = predictions(iteration["UnlabeledTransform"]["OutputUri"], task, n_classes, iteration["UnlabeledCount"])
    ids, p, pred, conf = pool.ids, pool.probs, pool.values, pool.confidence
    oracle = cal["Method"] == "oracle"  # benchmarks only: the threshold is chosen on this pool's hidden truth
    if oracle:
        truth_quality = oracle_quality(settings, task, config["ClassNames"], iteration["UnlabeledTransform"]["OutputUri"], pool)
        cal = {**cal, "Threshold": oracle_threshold(conf, truth_quality, target=cal["WorkingTarget"])}
    confident = confident_mask(p, conf, cal)
    if draws_validation:
        val, _ = predictions(iteration["ValidationTransform"]["OutputUri"], task, n_classes, iteration["ValidationCount"])
        val_ids, val_p = val.ids, val.probs
        val_confident = confident_mask(val_p, val.confidence, cal)
    tail, pool_bound = worst_case_tail_mask(settings, state, cal, confident)
    confident |= tail

    # The transform judged every item still open (job scope: provisional auto-labels too), so
    # what is left after this gate is what the model is unsure of.
    remaining = len(ids) - int(confident.sum())
    auto_after = int(confident.sum()) + (0 if scope.provisional else state["AutoLabeled"])
    progress = state.get("HumanLabeledThisIteration", 0) + max(0, auto_after - state["AutoLabeled"])
    labeled_share = 100.0 * (state["Total"] - remaining) / max(1, state["Total"])
    rest = np.nonzero(~confident)[0]
    # An iteration that retrained on retired validation items asked no humans: it has nothing to
    # show for them, and its gate routes the batch its predecessor held back. (A resumed run that
    # trains first on a batch merged before it stopped did ask humans: that batch is its progress.)
    retrained_on_retired = bool(state.get("RetrainFirst")) and not state.get("HumanLabeledThisIteration")
    limit = _limit_reached(settings, it, progress if not retrained_on_retired else 1, labeled_share)
    retired: dict[int, str] = {}
    verdicts: dict[int, dict] = {}
    if draws_validation and not scope.provisional:
        retired, verdicts = retire_confident_validation(settings, it, val_ids, val_p, val_confident,
                                                        predicted=(val.values, val.confidence))
    retrain_first = not limit and remaining > 0 and settings.retrains_before_routing(len(retired), iteration["TrainCount"])
    want = 0 if (limit or retrain_first) else gate_batch_limit(settings, state, len(ids), len(rest))

    # Adaptive validation: random draws top the validation set up to its size, never past it.
    n_validation = 0
    if settings.validation.draws_validation:
        active = iteration["ValidationCount"] - len(retired)
        retired_total = (iteration.get("RetiredValidation") or {}).get("Count", 0) + len(retired)
        n_validation = min(settings.validation_target(state["Total"], active, retired_total, n_classes), top_up_limit(want))
    validation_pick = np.zeros(0, dtype=np.int64)
    if scope.provisional and n_validation:
        # Job scope: validation stands for every item no human has labeled, auto-labeled or not,
        # so its top-ups are drawn from all of them (a provisional auto-label gives way).
        draw = np.random.default_rng([settings.seed, it, 2]).choice(len(ids), size=min(n_validation, len(ids)), replace=False)
        validation_pick = np.sort(draw)
        confident[validation_pick] = False  # humans will label these; no auto-label meanwhile
        if oracle:
            confident = still_meeting(conf, truth_quality, confident, cal["WorkingTarget"])
        rest = np.setdiff1d(rest, validation_pick)
        want, n_validation = min(want - len(validation_pick), len(rest)), 0
    n_random = routing.random_count(want, n_validation)
    uncertain, random_pick = routing.select(p[rest], want, n_random)
    if scope.provisional and draws_validation:
        # Routing just took the uncertain items out of the pool; the validation items that stand
        # for such items leave the validation set the same way (and train from now on), so it
        # stays a uniform sample of the items no human has labeled.
        below = np.nonzero(~val_confident)[0]
        routed = routing.shadow(p[rest], uncertain, len(random_pick), val_p[below])
        retired = {int(i): ledger.RETIRED for i in val_ids[below[routed]]}

    now = creation_date()
    auto_job = layout.job_name(settings.job_name, config["RunId"], it, "auto")
    auto = AutoLabels(ids[confident], pred[confident], conf[confident], tail[confident], cal, pool_bound, auto_job, now, it)
    new_uri = layout.ledger_uri(settings.output_uri, it, "auto")
    counts = rewrite_ledger(state["LedgerUri"], new_uri, auto, retired, regate=scope.provisional, verdicts=verdicts,
                            judge=task.quality)
    remaining = counts["remaining"]

    # Positions into `ids`: the routed items train; of the random draws, a random n_validation validate.
    shuffled = rest[np.random.default_rng([settings.seed, it, 1]).permutation(random_pick)]
    roles = [(rest[uncertain], ledger.TRAIN), (validation_pick, ledger.VALIDATION),
             (shuffled[:n_validation], ledger.VALIDATION), (shuffled[n_validation:], ledger.TRAIN)]
    chosen = {int(ids[k]): role for positions, role in roles for k in positions}
    # Only the routed (uncertain) items carry the model's guess: random draws, validation or not,
    # reach people blind and alike, so nobody can tell a validation item from the others.
    guesses = {int(ids[k]): {"class": plain(pred[k]), "confidence": round(float(conf[k]), 4)} for k in rest[uncertain]}
    batch = write_human_batch(config, it + 1, new_uri, chosen, guesses)

    stop = None
    if remaining == 0:
        stop = "all-labeled"
    elif batch["Count"] == 0 and not retrain_first:
        stop = limit or "human-budget-spent"
    metrics = {
        "Iteration": it,
        "HumanLabeled": state["HumanLabeled"],
        "HumanLabeledThisIteration": state.get("HumanLabeledThisIteration", 0),
        "HumanFailed": state.get("HumanFailed") or 0,
        "HumanFailedThisIteration": state.get("HumanFailedThisIteration") or 0,
        "HumanAdjusted": state.get("HumanAdjusted") or 0,
        "HumanClicks": state.get("HumanClicks"),  # None: no answer said what it cost in clicks
        "HumanClicksThisIteration": state.get("HumanClicksThisIteration"),
        "HumanCost": settings.human_cost(state["HumanLabeled"], state.get("HumanAdjusted") or 0),
        "AutoLabeled": counts["auto"],  # this job's auto-labels, as of this gate
        "AutoLabeledThisIteration": counts["new_auto"],
        "AutoLabelsWithdrawn": counts["withdrawn"],
        "AutoLabelsRelabeled": counts["relabeled"],
        "Remaining": remaining,
        "Threshold": cal["Threshold"],
        "CalibrationMethod": cal["Method"],
        "LowerBound": cal["LowerBound"],
        "Support": cal["Support"],
        "ValidationAccuracy": cal["ValidationAccuracy"],
        "ValidationCount": cal["ValidationCount"],
        "ValidationRetired": len(retired),
        "WorkingTarget": cal.get("WorkingTarget"),
        "CarriedSupport": cal.get("CarriedSupport", 0),
        "WorstCaseTail": int(tail.sum()),
        "PoolLowerBound": pool_bound,  # vouches for all of the job's auto-labels after this gate
        "TrainCount": iteration["TrainCount"],
        "NextHumanBatch": batch["Count"],
        "RetrainedOnRetired": retrained_on_retired,
        "RetrainFirst": retrain_first,  # the next iteration trains on this gate's retired items before routing
        "StopReason": stop,
    }
    storage.write_json(layout.metrics_uri(settings.output_uri, it), metrics)
    return LoopState.model_validate({
        **state,
        "Iteration": it + 1,
        "LedgerUri": new_uri,
        "AutoLabeled": metrics["AutoLabeled"],
        "Remaining": remaining,
        "HumanLabeledThisIteration": 0,
        "HumanFailedThisIteration": 0,
        "HumanClicksThisIteration": None if state.get("HumanClicks") is None else 0,
        "HumanBatch": batch,
        "RetrainFirst": retrain_first,
        "ModelArtifacts": (event.get("training") or {}).get("ModelArtifacts"),
        "StopReason": stop,
        "LastMetrics": metrics,
    }).dump()
