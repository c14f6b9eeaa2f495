"""The promise study's core: one labeling job, its decisions made by the product's code, its model simulated.

What is the product's here: every decision a gate makes. `calibrate_threshold` picks the threshold
(with the carried verdicts; under the per-class promise `per_class_calibration`, one per class),
`working_target` sets its target, `confident_mask` and `worst_case_tail_mask` say what is
auto-labeled, `retire_confident_validation` which validation items retire,
`retrains_before_routing` whether the next model trains first, `_limit_reached`,
`human_batch_limit` and `gate_batch_limit` when and how much to route, `validation_target` and
`top_up_limit` how many draws validate, `Routing.select` / `Routing.shadow` which items go to
humans, `first_batch_validation` the first batch's split; the random draws use the product's seeds.

What is simulated: what a real run gets from outside. The model (each item has a fixed
difficulty; a model trained on T human labels is right on it with probability
sigmoid(skill(T) + difficulty), and reports a noisy, monotone confidence), and the people (they
answer with the truth). The ledger is arrays instead of files; the gate's order of steps is
gate.py's, restated in `_gate` below.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from labelloop.calibration import Calibration, calibrate_threshold
from labelloop.config import JobSettings
from labelloop.steps.auto_labels import confident_mask, retire_confident_validation, worst_case_tail_mask
from labelloop.steps.calibrate import per_class_calibration
from labelloop.steps.gate import _limit_reached
from labelloop.steps.human_batch import gate_batch_limit, human_batch_limit, top_up_limit

OPEN, TRAIN, VALIDATION, RETIRED, AUTO = range(5)


@dataclass(frozen=True)
class Profile:
    """A synthetic dataset and the model that learns it.

    strata: (share, mean, sd) of the items' difficulty on the logit scale (higher: easier).
    rate: how fast the model improves, skill(T) = rate * log(1 + T / 50).
    overconfidence: added to the confidence logit of the stratum it names (index), so the model is
    sure where it is often wrong.
    """

    name: str
    classes: int
    strata: tuple[tuple[float, float, float], ...]
    rate: float
    noise: float = 0.7  # per-item confidence noise (fixed), logit scale
    jitter: float = 0.3  # per-iteration confidence noise, logit scale
    overconfidence: tuple[int, float] | None = None
    class_ease: tuple[float, ...] | None = None  # added to the difficulty of each true class's items


PROFILES = {
    p.name: p
    for p in (
        Profile("easy", 10, ((1.0, 1.0, 1.5),), rate=0.8),
        Profile("hard", 10, ((1.0, -2.0, 1.5),), rate=0.7),
        Profile("binary", 2, ((1.0, 0.0, 2.0),), rate=0.6),
        Profile("five-class", 5, ((0.7, 1.5, 1.0), (0.3, -1.0, 1.0)), rate=0.5),
        # Adversarial for carried verdicts: a first stratum the first model already gets right, whose
        # verdicts then vouch for a hard tail the model is sure of and often wrong on.
        Profile("easy-first-hard-tail", 10, ((0.6, 4.0, 0.5), (0.4, -1.5, 1.0)), rate=0.4, overconfidence=(1, 3.0)),
        # Adversarial for threshold selection: accuracy sits at the target whatever the confidence,
        # so every threshold passes or fails by luck and the model barely improves.
        Profile("flat-at-target", 10, ((1.0, 2.9, 0.3),), rate=0.02, noise=1.5),
        # For the per-class promise: a few classes far harder than the rest (Fashion-MNIST's shirts
        # and coats), so the union meets the target while a hard class alone would not.
        Profile("uneven-classes", 10, ((1.0, 1.5, 1.0),), rate=0.6,
                class_ease=(0.0, 1.5, -2.5, 1.5, -2.0, 1.5, -3.0, 1.5, 1.5, 1.5)),
    )
}
# The cycle the recorded studies ran (docs/promise.md); uneven-classes is asked for by name.
STUDY_PROFILES = ("easy", "hard", "binary", "five-class", "easy-first-hard-tail", "flat-at-target")
POOL_SIZES = (1000, 5000, 20000, 70000)

# A user labeling 70,000 items asks for bigger batches than one labeling 1,000.
def batch_size_for(total: int) -> int:
    return max(100, total // 70)


def job_settings(setting: dict, total: int, seed: int) -> JobSettings:
    base = {"ManifestUri": "s3://sim/in.manifest", "OutputUri": "s3://sim/out", "JobName": "promise",
            "TaskType": "image-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
            "HumanBatchSize": batch_size_for(total), "Seed": seed}
    return JobSettings.parse({**base, **setting})


class SimulatedModel:
    """Fixed item difficulties; the model of the day depends only on how many labels it trained on."""

    def __init__(self, profile: Profile, total: int, rng: np.random.Generator):
        shares = np.array([s[0] for s in profile.strata])
        stratum = rng.choice(len(shares), size=total, p=shares / shares.sum())
        means, sds = np.array([s[1] for s in profile.strata]), np.array([s[2] for s in profile.strata])
        self.profile, self.rng = profile, rng
        self.ease = means[stratum] + sds[stratum] * rng.standard_normal(total)
        self.bias = profile.noise * rng.standard_normal(total)
        if profile.overconfidence:
            k, lift = profile.overconfidence
            self.bias += lift * (stratum == k)
        self.luck = rng.random(total)  # coupling: a better model fixes errors, never makes new ones
        self.truth = rng.integers(profile.classes, size=total)
        if profile.class_ease:  # after every draw, so the other profiles' items stay as they were
            self.ease += np.asarray(profile.class_ease)[self.truth]
        self.wrong_class = (self.truth + rng.integers(1, profile.classes, size=total)) % profile.classes
        self.witness = rng.random(total) < 0.5  # split-verdicts proposal: the half that never chooses a threshold

    def predict(self, train_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(confidence, correct, predicted class) of every item for a model trained on `train_count` labels."""
        skill = self.profile.rate * np.log1p(train_count / 50.0)
        logit = skill + self.ease
        self.p_right = 1.0 / (1.0 + np.exp(-logit))  # what the bound is about: the model's accuracy, not its luck
        correct = self.luck < self.p_right
        k = self.profile.classes
        noise = self.bias + self.profile.jitter * self.rng.standard_normal(len(logit))
        conf = 1.0 / k + (1.0 - 1.0 / k) / (1.0 + np.exp(-(logit + noise)))
        return conf, correct, np.where(correct, self.truth, self.wrong_class)

    def probabilities(self, idx: np.ndarray, conf: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Class probabilities of items `idx` under the last prediction (what routing ranks)."""
        return probabilities(conf[idx], predicted[idx], self.profile.classes)


def probabilities(conf: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Class probabilities with the given top class and confidence (the rest shared evenly)."""
    p = np.repeat(((1.0 - conf) / (classes - 1))[:, None], classes, axis=1)
    p[np.arange(len(conf)), predicted] = conf
    return p


Calibrator = Callable[..., Calibration]


def point_estimate_threshold(confidences, correct, *, target_accuracy, confidence_level, min_support=0,
                             carried_correct=0, carried_total=0) -> Calibration:
    """A deliberately invalid calibrator: the lowest threshold whose observed accuracy meets the target.

    No bound, no fixed sequence: the study must catch it missing the target far more often than
    1 - confidence, or the study cannot fail.
    """
    conf, ok = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    support = np.arange(1, conf.size + 1) + carried_total
    accuracy = (np.cumsum(ok[order]) + carried_correct) / support
    passing = np.nonzero((accuracy >= target_accuracy) & (support >= 30))[0]
    if passing.size == 0:
        return Calibration(None, None, 0, None, conf.size, None, 30, carried_total, carried_correct)
    j = passing[-1]
    return Calibration(float(conf[order][j]), float(accuracy[j]), int(support[j]), float(accuracy[j]), conf.size,
                       float(ok.mean()), 30, carried_total, carried_correct, pool_bound=float(accuracy[j]))


def run_job(setting: dict, profile: Profile, total: int, seed: int, calibrator: Calibrator = calibrate_threshold,
            split_verdicts: bool = False, model=None) -> dict:
    """One labeling job from the first human batch to its stop; what its auto-labels turned out to be.

    split_verdicts (a proposal, not the product's): half the validation items choose the threshold,
    only the other half's retired verdicts are carried, so no carried verdict chose the threshold
    it vouches for. model: anything with SimulatedModel's predict, probabilities, p_right, witness
    and profile (bench/promise_replay.py's stored predictions of real models); default: simulated.
    """
    if model is None:
        rng = np.random.default_rng([seed, total, zlib.crc32(profile.name.encode())])
        model = SimulatedModel(profile, total, rng)
    settings = job_settings(setting, total, seed)
    status = np.full(total, OPEN, dtype=np.int8)
    auto_right = np.zeros(total, dtype=bool)  # whether an item's auto-label is right, when it has one
    auto_p = np.zeros(total)  # ... and the chance that it was
    auto_class = np.zeros(total, dtype=np.int64)  # ... and the class it gives
    verdict = np.zeros(total, dtype=bool)  # a retired validation item's carried verdict
    carries = np.zeros(total, dtype=bool)
    state = {"Iteration": 1, "Total": total, "HumanLabeled": 0, "AutoLabeled": 0, "Remaining": total,
             "HumanLabeledThisIteration": 0, "RetrainFirst": False}

    # SampleForHumans: a seeded random first batch, part of it validation.
    want = human_batch_limit(settings, state, total)
    picks = np.random.default_rng([settings.seed, 1]).choice(total, size=want, replace=False)
    n_val = settings.validation.first_batch_validation(settings, total, want, model.profile.classes)
    _answer(state, status, picks[n_val:], picks[:n_val])

    while True:
        batch, stop = _gate(settings, state, model, status, (auto_right, auto_p, auto_class), verdict, carries,
                            calibrator, split_verdicts)
        if stop:
            break
        train, val = batch
        _answer(state, status, train, val)
    auto = status == AUTO
    n_auto = int(auto.sum())
    accuracy = float(auto_right[auto].mean()) if n_auto else None
    expected = float(auto_p[auto].mean()) if n_auto else None
    # Per class given: its auto-labels' accuracy, and the chance they were right (the per-class promise).
    given = [auto & (auto_class == c) for c in range(model.profile.classes)]
    worst = min((float(auto_right[g].mean()) for g in given if g.any()), default=None)
    worst_expected = min((float(auto_p[g].mean()) for g in given if g.any()), default=None)
    missed = accuracy is not None and accuracy < settings.target_accuracy
    model_missed = expected is not None and expected < settings.target_accuracy
    if settings.per_class:
        missed = worst is not None and worst < settings.target_accuracy
        model_missed = worst_expected is not None and worst_expected < settings.target_accuracy
    return {"profile": profile.name, "items": total, "seed": seed, "human": state["HumanLabeled"],
            "auto": n_auto, "accuracy": accuracy, "iterations": state["Iteration"] - 1, "stop": stop,
            "expected": expected, "carried": int(carries.sum()),
            "carried_accuracy": float(verdict[carries].mean()) if carries.any() else None,
            "worst_class_accuracy": worst, "missed": missed, "model_missed": model_missed}


def _answer(state: dict, status: np.ndarray, train: np.ndarray, val: np.ndarray) -> None:
    """The people answer the batch (MergeHumanLabels): the truth, so only the counts change."""
    status[train], status[val] = TRAIN, VALIDATION
    n = len(train) + len(val)
    state["HumanLabeled"] += n
    state["HumanLabeledThisIteration"] = n
    state["Remaining"] = int((status == OPEN).sum())


def _gate(settings, state, model, status, auto, verdict, carries, calibrator, split_verdicts):
    """SplitValidation, the model's predictions, CalibrateThreshold and GateAndRoute for one iteration."""
    scope, it = settings.scope, state["Iteration"]
    routing = settings.routing(it)
    train_count = int(((status == TRAIN) | (status == RETIRED)).sum())
    carried_total = int(carries.sum()) if scope.carries_verdicts else 0
    carried_correct = int(verdict[carries].sum()) if scope.carries_verdicts else 0
    conf, correct, predicted = model.predict(train_count)

    val_ids = np.nonzero(status == VALIDATION)[0]
    target = settings.working_target(state["Remaining"] / max(1, state["Total"]))
    choosers = val_ids[~model.witness[val_ids]] if split_verdicts else val_ids
    result = calibrator(conf[choosers], correct[choosers], target_accuracy=target,
                        confidence_level=settings.confidence_level, min_support=settings.min_validation_support,
                        carried_correct=carried_correct, carried_total=carried_total)
    k = model.profile.classes
    class_thresholds = None
    if settings.per_class:
        result, classes = per_class_calibration(settings, result, conf[choosers], correct[choosers],
                                                predicted[choosers], k, target)
        class_thresholds = [c.threshold for c in classes]
    cal = {"Method": "lower-bound", "Threshold": result.threshold, "LowerBound": result.lower_bound,
           "WorkingTarget": target, "PoolLowerBound": result.pool_bound, "ClassThresholds": class_thresholds}

    ids = np.nonzero((status == OPEN) | ((status == AUTO) if scope.provisional else False))[0]
    draws_validation = settings.validation.draws_validation and len(val_ids) > 0
    if settings.per_class:  # the class each item is given picks its threshold
        confident = confident_mask(model.probabilities(ids, conf, predicted), conf[ids], cal)
        val_confident = confident_mask(model.probabilities(val_ids, conf, predicted), conf[val_ids], cal)
    else:  # one column of "probabilities": the confidence
        confident = confident_mask(conf[ids, None], conf[ids], cal)
        val_confident = confident_mask(conf[val_ids, None], conf[val_ids], cal)
    tail, pool_bound = worst_case_tail_mask(settings, state, cal, confident)
    confident |= tail

    remaining = len(ids) - int(confident.sum())
    auto_after = int(confident.sum()) + (0 if scope.provisional else state["AutoLabeled"])
    progress = state["HumanLabeledThisIteration"] + max(0, auto_after - state["AutoLabeled"])
    labeled_share = 100.0 * (state["Total"] - remaining) / max(1, state["Total"])
    rest = np.nonzero(~confident)[0]
    retrained_on_retired = state["RetrainFirst"]
    limit = _limit_reached(settings, it, progress if not retrained_on_retired else 1, labeled_share)
    retired: dict[int, str] = {}
    if draws_validation and not scope.provisional:
        retired, _ = retire_confident_validation(settings, it, val_ids, conf[val_ids, None], val_confident)
    retrain_first = not limit and remaining > 0 and settings.retrains_before_routing(len(retired), train_count)
    want = 0 if (limit or retrain_first) else gate_batch_limit(settings, state, len(ids), len(rest))

    n_validation = 0
    if settings.validation.draws_validation:
        active = len(val_ids) - len(retired)
        n_validation = min(settings.validation_target(state["Total"], active, carried_total + len(retired),
                                                      k), top_up_limit(want))
    validation_pick = np.zeros(0, dtype=np.int64)
    if scope.provisional and n_validation:
        draw = np.random.default_rng([settings.seed, it, 2]).choice(len(ids), size=min(n_validation, len(ids)), replace=False)
        validation_pick = np.sort(draw)
        confident[validation_pick] = False
        rest = np.setdiff1d(rest, validation_pick)
        want, n_validation = min(want - len(validation_pick), len(rest)), 0
    n_random = routing.random_count(want, n_validation)
    probs = model.probabilities(ids[rest], conf, predicted)
    uncertain, random_pick = routing.select(probs, want, n_random)
    if scope.provisional and draws_validation:
        below = np.nonzero(~val_confident)[0]
        val_probs = model.probabilities(val_ids[below], conf, predicted)
        routed = routing.shadow(probs, uncertain, len(random_pick), val_probs)
        retired = {int(i): "retired" for i in val_ids[below[routed]]}

    # The ledger: auto-labels (job scope: the provisional ones are judged again), retired validation.
    if scope.provisional:
        status[ids] = OPEN
    status[ids[confident]] = AUTO
    auto[0][ids[confident]], auto[1][ids[confident]] = correct[ids[confident]], model.p_right[ids[confident]]
    auto[2][ids[confident]] = predicted[ids[confident]]
    gone = np.fromiter(retired, dtype=np.int64, count=len(retired))
    status[gone] = RETIRED
    if scope.carries_verdicts and not scope.provisional:
        gone = gone[model.witness[gone]] if split_verdicts else gone
        carries[gone], verdict[gone] = True, correct[gone]
    state["AutoLabeled"] = int((status == AUTO).sum())
    state["Remaining"] = int((status == OPEN).sum())

    shuffled = rest[np.random.default_rng([settings.seed, it, 1]).permutation(random_pick)]
    validation = np.r_[ids[validation_pick], ids[shuffled[:n_validation]]].astype(np.int64)
    training = np.r_[ids[rest[uncertain]], ids[shuffled[n_validation:]]].astype(np.int64)
    n_batch = len(validation) + len(training)
    state["Iteration"] = it + 1
    state["HumanLabeledThisIteration"] = 0
    state["RetrainFirst"] = retrain_first
    stop = None
    if state["Remaining"] == 0:
        stop = "all-labeled"
    elif n_batch == 0 and not retrain_first:
        stop = limit or "human-budget-spent"
    return (training, validation), stop
