"""What the promise needs, said at the start of a run and again when nothing was auto-labeled."""

from labelloop.calibration import calibrate_threshold
from labelloop.config import JobSettings
from labelloop.promise import labels_needed, start_line, why_nothing_auto_labeled

JOB = {"ManifestUri": "m", "OutputUri": "o", "JobName": "j", "TaskType": "text-classification",
       "LabelAttributeName": "a", "LabelCategories": ["billing", "outage"]}


def test_the_first_certificate_needs_what_the_calibration_needs():
    for target, confidence in ((0.95, 0.95), (0.9, 0.95), (0.9, 0.9)):
        need = labels_needed(JobSettings.parse({**JOB, "TargetAccuracy": target, "ConfidenceLevel": confidence}))
        def passes(n):  # n validation items, all right, all at one confidence
            return calibrate_threshold([0.99] * n, [True] * n, target_accuracy=target, confidence_level=confidence).threshold
        assert passes(need) is not None and passes(need - 1) is None, (target, confidence, need)


def test_a_small_dataset_is_told_at_the_start_that_it_cannot_auto_label_and_what_would():
    line = start_line(JOB, 100)
    assert line.startswith("promise: 95 % accurate with 95 % confidence needs 59 validation labels for a first "
                           "certificate (all right; from 153 on, 3 may be wrong)")
    assert "the adaptive validation policy gathers up to 50 of these 100 items" in line
    assert "too few: nothing can be auto-labeled" in line
    assert "at --target-accuracy 0.9 the first certificate needs 29 validation labels" in line
    assert "at --target-accuracy 0.9 --confidence 0.9 the first certificate needs 22" in line
    assert "about 118 items" in line


def test_a_large_enough_dataset_gets_one_line_without_a_warning():
    assert "too few" not in start_line(JOB, 300)  # 150 validation labels: a good model certifies
    line = start_line(JOB, 5000)
    assert "needs 59" in line and "gathers up to 400" in line and "too few" not in line
    assert start_line({**JOB, "CalibrationMethod": "none"}, 5000) is None


def test_why_nothing_was_auto_labeled_too_few_validation_labels():
    metrics = [{"Iteration": 1, "AutoLabeled": 0, "ValidationCount": 30}, {"Iteration": 2, "AutoLabeled": 0, "ValidationCount": 50}]
    why = why_nothing_auto_labeled(JOB, metrics, 100)
    assert "needs 59 validation labels; this job held at most 50" in why[0]
    assert why[1].startswith("what would change it: at --target-accuracy 0.9 the first certificate needs 29")


def test_why_nothing_was_auto_labeled_a_model_not_good_enough():
    metrics = [{"Iteration": 1, "AutoLabeled": 0, "ValidationCount": 400, "ValidationAccuracy": 0.81}]
    why = why_nothing_auto_labeled(JOB, metrics, 5000)
    assert "held 400 validation labels, enough for a certificate" in why[0] and "81.0 %" in why[0]


def test_a_run_that_auto_labeled_says_nothing():
    assert why_nothing_auto_labeled(JOB, [{"AutoLabeled": 3, "ValidationCount": 400}], 5000) == []


BOXES = {**JOB, "TaskType": "object-detection"}


def test_a_box_job_is_promised_a_mean_iou_and_told_what_would_change_it_in_those_terms():
    need = labels_needed(JobSettings.parse(BOXES))
    line = start_line(BOXES, 2 * need - 2)
    assert line.startswith(f"promise: mean IoU of the auto-labels ≥ 0.6 with 95 % confidence needs {need} validation labels")
    assert "accurate" not in line and "--target-accuracy" not in line
    lower = labels_needed(JobSettings.parse({**BOXES, "TargetAccuracy": 0.55}))
    assert lower < need and f"at --target-iou 0.55 the first certificate needs {lower} validation labels" in line
    why = why_nothing_auto_labeled(BOXES, [{"Iteration": 1, "AutoLabeled": 0, "ValidationCount": need,
                                            "ValidationAccuracy": 0.41}], 5000)
    assert "bound on their mean IoU to reach 0.6 (best validation mean IoU 0.410)" in why[0]


def test_the_betting_bound_tells_a_box_job_its_early_start():
    usual = labels_needed(JobSettings.parse(BOXES))
    betting = {**BOXES, "IouBound": "betting"}
    need = labels_needed(JobSettings.parse(betting))
    assert need == -(-usual // 3)  # a third of the usual start, rounded up
    assert f"needs {need} validation labels for a first certificate" in start_line(betting, 5000)


def test_a_per_class_job_is_told_what_every_class_needs():
    per_class = {**JOB, "LabelCategories": [str(d) for d in range(10)], "PerClassPromise": True}
    line = start_line(per_class, 1797)
    assert line.startswith("promise: every class's auto-labels 95 % accurate with 95 % confidence needs 104 "
                           "validation labels of a class for a first certificate (all right; each of the 10 classes "
                           "tested at 99.5 % confidence); the adaptive validation policy gathers up to 899")
    assert "fewer than all 10 classes need (10 x 104 = 1040): with classes of about equal size none may be" in line
    assert "gathers up to 1040 of these 5000 items" in start_line(per_class, 5000)
    why = why_nothing_auto_labeled(per_class, [{"Iteration": 1, "AutoLabeled": 0, "ValidationCount": 453,
                                                "ValidationAccuracy": 1.0}], 1797)
    assert why[0] == ("nothing was auto-labeled: under --per-class a class's first certificate needs 104 validation "
                      "labels that the model gives that class, all right (10 x 104 = 1040 for 10 classes); this job "
                      "held at most 453 in all, about 45 a class")
