"""The benchmark's threshold rules: the oracle (hidden truth) and TBAL (Vishwakarma et al., 2023)."""

import numpy as np
import pytest

from labelloop.config import ConfigurationError, JobSettings
from labelloop import tasks
from labelloop.steps.auto_labels import confident_mask
from labelloop.threshold_rules import oracle_threshold, tbal_class_thresholds, tbal_threshold

# 100 items, confidences 0.99 down to 0.00 in steps of 0.01.
CONF = np.round(np.linspace(0.99, 0.0, 100), 2)


def right_but(*ranks):
    """Right everywhere but at these ranks (0: the most confident item)."""
    ok = np.ones(100)
    ok[list(ranks)] = 0
    return ok


# ---------------------------------------------------------------- oracle


def test_oracle_takes_the_lowest_threshold_whose_items_meet_the_target():
    # Wrong at ranks 10..14: the top 100 hold 5 errors (95 %) and meet a 95 % target exactly.
    assert oracle_threshold(CONF, right_but(10, 11, 12, 13, 14), target=0.95) == pytest.approx(0.0)
    # Six errors (ranks 10..15) would need 120 items to be 5 %: the last threshold to pass is above them.
    assert oracle_threshold(CONF, right_but(10, 11, 12, 13, 14, 15), target=0.95) == pytest.approx(CONF[9])

def test_oracle_looks_past_a_dip_to_a_lower_threshold_that_meets_the_target_again():
    # An error at rank 1 puts the top 2 at 50 %; from the top 20 to the top 30 it is 95 % or more
    # again, and six more errors below keep every lower threshold under 95 %.
    assert oracle_threshold(CONF, right_but(1, 30, 31, 32, 33, 34, 35), target=0.95) == pytest.approx(CONF[29])


def test_oracle_auto_labels_nothing_when_no_threshold_meets_the_target():
    assert oracle_threshold(CONF, np.zeros(100), target=0.95) is None
    assert oracle_threshold([], [], target=0.95) is None


def test_oracle_reads_mean_quality_for_boxes():
    iou = np.array([0.9, 0.8, 0.5, 0.1])
    # Means from the top: 0.9, 0.85, 0.733, 0.575; the target 0.7 holds down to the third.
    assert oracle_threshold([0.9, 0.8, 0.7, 0.6], iou, target=0.7) == pytest.approx(0.7)


def test_tied_confidences_are_auto_labeled_together():
    # Two items at 0.5, one of them wrong: taking one without the other is not a threshold.
    assert oracle_threshold([0.9, 0.8, 0.5, 0.5], [1, 1, 1, 0], target=0.75) == pytest.approx(0.5)
    assert oracle_threshold([0.9, 0.8, 0.5, 0.5], [1, 1, 1, 0], target=0.8) == pytest.approx(0.8)


# ---------------------------------------------------------------- TBAL


def test_tbal_needs_more_than_25_validation_items_above_its_threshold():
    # All right: ê = 0 passes wherever there are enough items, so the lowest threshold wins ...
    assert tbal_threshold(CONF, np.ones(100), target=0.95) == pytest.approx(0.0)
    # ... but 25 items at or above are too few, 26 enough.
    assert tbal_threshold(CONF[:25], np.ones(25), target=0.95) is None
    assert tbal_threshold(CONF[:26], np.ones(26), target=0.95) == pytest.approx(CONF[25])


def test_tbal_adds_a_quarter_of_the_error_spread_to_the_error():
    # One error, at rank 0: at n items ê = 1/n and ê + 0.25·sqrt(ê(1 - ê)) <= 0.05 first holds at
    # n = 58 (0.0498; n = 57 gives 0.0504), and a second error at rank 69 never lets it hold again
    # within 100 items (2/n needs n >= 116). The raw error 1/n would pass from n = 20.
    assert tbal_threshold(CONF, right_but(0, 69), target=0.95) == pytest.approx(CONF[68])
    assert tbal_threshold(CONF[:57], right_but(0)[:57], target=0.95) is None
    assert tbal_threshold(CONF[:58], right_but(0)[:58], target=0.95) == pytest.approx(CONF[57])
    # Without the spread term (C1 = 0) the rule is the raw validation error's.
    assert tbal_threshold(CONF, right_but(0, 69), target=0.95, c1=0.0) == pytest.approx(0.0)


def test_tbal_is_class_wise():
    # Class 0: 40 items all right; class 1: 20 items, too few for any threshold.
    conf = np.r_[CONF[:40], CONF[:20]]
    ok = np.ones(60)
    predicted = np.r_[np.zeros(40, int), np.ones(20, int)]
    assert tbal_class_thresholds(conf, ok, predicted, 3, target=0.95) == [pytest.approx(CONF[39]), None, None]


def test_class_thresholds_gate_each_item_by_the_class_the_model_gives_it():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9]])
    cal = {"Method": "tbal", "Threshold": 0.65, "ClassThresholds": [0.65, None]}
    assert confident_mask(probs, probs.max(axis=1), cal).tolist() == [True, True, False, False]


@pytest.mark.parametrize("task_type", ["object-detection", "semantic-segmentation"])
def test_a_box_or_mask_threshold_gates_the_confidence_it_was_calibrated_on(task_type):
    # Routing ranks (1 + c) / 2 against (1 - c) / 2; the bound's threshold is on c itself. Gating
    # that distribution's maximum would auto-label every image whose c is above 2t - 1.
    confidence = np.array([0.9, 0.6, 0.5, 0.3, 0.1])
    probs = tasks.get(task_type).routing_probs(np.empty(5, dtype=object), confidence)
    for method in ("lower-bound", "tbal", "oracle"):
        cal = {"Method": method, "Threshold": 0.55}
        assert confident_mask(probs, confidence, cal).tolist() == [True, True, False, False, False], method
    margin = {"Method": "fixed-margin", "Threshold": 0.5}  # the fixed-score policy: c above 0.5
    assert confident_mask(probs, confidence, margin).tolist() == [True, True, False, False, False]


# ---------------------------------------------------------------- the oracle stays out of real runs

JOB = {"ManifestUri": "s3://b/m", "OutputUri": "s3://b/o", "JobName": "j", "TaskType": "image-classification",
       "LabelAttributeName": "label", "LabelCategories": ["a", "b"]}


def test_the_oracle_refuses_to_run_without_a_truth_file():
    with pytest.raises(ConfigurationError, match="CalibrationMethod 'oracle' .* benchmarks only: it needs OracleTruthUri"):
        JobSettings.parse({**JOB, "CalibrationMethod": "oracle"})
    with pytest.raises(ConfigurationError, match="OracleTruthUri is read only by CalibrationMethod 'oracle'"):
        JobSettings.parse({**JOB, "OracleTruthUri": "/truth.jsonl"})
    assert JobSettings.parse({**JOB, "CalibrationMethod": "oracle", "OracleTruthUri": "/t.jsonl"}).calibration_method == "oracle"


def test_the_cli_does_not_offer_the_benchmark_rules():
    from labelloop.cli import build_parser

    run = ["run", "--manifest", "m.jsonl", "--output", "out", "--task-type", "image-classification",
           "--label-attribute", "label", "--label-config", "labels.json", "--calibration"]
    assert build_parser().parse_args(run + ["lower-bound"]).calibration == "lower-bound"
    for method in ("oracle", "tbal"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(run + [method])



def test_what_the_validation_draws_leave_of_an_oracle_gate_still_meets_the_target():
    from labelloop.steps.oracle import still_meeting

    # 20 items meet 95 % with their one error (rank 19); the draws take two right ones (ranks 3, 4),
    # leaving 17 of 18: the least confident item goes back to the pool, the rest are all right.
    quality = right_but(19)[:20]
    confident = np.ones(20, bool)
    confident[[3, 4]] = False
    kept = still_meeting(CONF[:20], quality, confident, 0.95)
    assert kept.tolist() == [i not in (3, 4, 19) for i in range(20)]
    assert quality[kept].mean() >= 0.95
