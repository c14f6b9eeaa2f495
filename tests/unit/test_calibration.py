import numpy as np
import pytest

from labelloop.calibration import (
    calibrate_per_class,
    calibrate_threshold,
    class_confidence,
    class_support_needed,
    clopper_pearson_lower,
    smallest_passing_support,
    start_for,
    starting_support,
    worst_case_tail,
)


def test_lower_bound_matches_closed_form_when_all_correct():
    # With k = n, the one-sided bound is (1 - confidence) ** (1 / n).
    for n in (10, 59, 200):
        assert clopper_pearson_lower(n, n, 0.95) == pytest.approx(0.05 ** (1 / n))
    assert clopper_pearson_lower(0, 10, 0.95) == 0.0


def test_smallest_passing_support_is_where_all_correct_first_passes():
    n = smallest_passing_support(0.95, 0.95)
    assert n == 59
    assert clopper_pearson_lower(n, n, 0.95) >= 0.95 > clopper_pearson_lower(n - 1, n - 1, 0.95)


def test_starting_support_tolerates_half_the_allowed_errors():
    n = starting_support(0.95, 0.95)
    assert n == 153  # passes with 3 errors (2 %); 59 items pass only with none
    assert clopper_pearson_lower(n - 3, n, 0.95) >= 0.95


def test_picks_lowest_threshold_whose_bound_meets_target():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 4000)
    # Accuracy rises with confidence: items above 0.8 are right 99 % of the time, below 0.7 only 60 %.
    p_right = np.where(conf > 0.8, 0.99, np.where(conf > 0.7, 0.9, 0.6))
    correct = rng.random(conf.size) < p_right
    cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold is not None
    assert 0.65 < cal.threshold < 0.85
    above = conf >= cal.threshold
    assert cal.support == above.sum()
    assert cal.lower_bound >= 0.95
    assert correct[above].mean() >= 0.95
    assert p_right[above].mean() >= 0.95  # the model's true accuracy there, not only the sample's


def test_nothing_qualifies_when_model_is_poor():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, 500)
    correct = rng.random(500) < 0.7
    cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold is None and cal.support == 0


def test_too_few_validation_items_never_auto_labels():
    cal = calibrate_threshold([0.99] * 58, [True] * 58, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold is None and cal.min_support == 59


def test_a_small_validation_set_certifies_as_soon_as_it_could_pass():
    # 150 validation items (a 400-item job gathers about that many): below the starting support
    # the test starts at the smallest support that could pass, so a good model certifies.
    assert start_for(0.95, 0.95, 150) == 59 and start_for(0.95, 0.95, 153) == 153
    cal = calibrate_threshold([0.99] * 150, [True] * 150, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold == 0.99 and cal.support == 150 and cal.min_support == 59
    # The top 89 of 96 right, errors below: the threshold stops above the first error.
    conf = np.linspace(1.0, 0.5, 96)
    correct = np.r_[np.ones(89, bool), False, np.ones(4, bool), False, False]
    cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert cal.support == 89 and cal.threshold == pytest.approx(conf[88]) and cal.lower_bound >= 0.95
    # One error among the top 59: that first test fails and nothing is certified.
    correct = np.r_[False, np.ones(95, bool)]
    assert calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95).threshold is None
    # A larger MinValidationSupport still wins.
    cal = calibrate_threshold([0.99] * 150, [True] * 150, target_accuracy=0.95, confidence_level=0.95, min_support=151)
    assert cal.threshold is None


def test_a_given_start_moves_the_first_test_but_never_below_min_support():
    # 300 items, the top 100 all right and the rest wrong: the usual start (153 items) already
    # holds errors and fails; starting at 80 certifies the top 100 (and a first error the bound allows).
    conf = np.linspace(1.0, 0.0, 300)
    correct = np.r_[np.ones(100, bool), np.zeros(200, bool)]
    usual = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert usual.threshold is None and usual.min_support == 153
    early = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95, start=80)
    assert early.support >= 100 and early.min_support == 80 and early.lower_bound >= 0.95
    floor = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95, start=80, min_support=120)
    assert floor.threshold is None and floor.min_support == 120

@pytest.mark.parametrize("n", [59, 80, 120, 152])
def test_coverage_of_the_guarantee_at_small_validation_sets(n):
    """Below the starting support the promise still holds: over models near the target, a
    threshold whose true accuracy misses the target is chosen in at most 5 % of draws."""
    for slope in (0.12, 0.2, 0.3):  # accuracy at confidence c is 1 - slope (1 - c); c uniform on [0, 1]
        misses = certified = 0
        for seed in range(400):
            rng = np.random.default_rng([n, seed])
            conf = rng.uniform(0.0, 1.0, n)
            correct = rng.random(n) < 1.0 - slope * (1.0 - conf)
            cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
            if cal.threshold is not None:
                certified += 1
                misses += 1.0 - slope * (1.0 - cal.threshold) / 2.0 < 0.95  # true accuracy above it
        assert misses / 400 <= 0.05, (n, slope, misses, certified)


def test_stops_at_first_failure_from_the_top():
    # The top 100 are perfect, then a block of 100 wrong ones, then 10,000 perfect ones below.
    # Continuing past the failure would pick a low threshold; fixed-sequence testing must not.
    conf = np.r_[np.linspace(0.99, 0.95, 300), np.linspace(0.949, 0.90, 100), np.linspace(0.899, 0.5, 10000)]
    correct = np.r_[np.ones(300, bool), np.zeros(100, bool), np.ones(10000, bool)]
    cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold is not None and cal.threshold > 0.9


def test_ties_are_one_candidate():
    conf = [1.0] * 200 + [0.9] * 200
    correct = [True] * 200 + [False] * 200
    cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert cal.threshold == 1.0 and cal.support == 200


@pytest.mark.parametrize("kwargs", [{"target_accuracy": 1.0}, {"target_accuracy": 0.0}, {"confidence_level": 1.5}])
def test_rejects_out_of_range_settings(kwargs):
    args = {"target_accuracy": 0.95, "confidence_level": 0.95, **kwargs}
    with pytest.raises(ValueError, match="must be in"):
        calibrate_threshold([0.9], [True], **args)


def test_coverage_of_the_guarantee_on_simulated_models():
    """Over many draws, the true accuracy above the chosen threshold meets the target ≥ 95 % of the time."""
    misses = trials = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.5, 1.0, 2000)
        correct = rng.random(conf.size) < np.sqrt(conf)  # a model whose accuracy at c is sqrt(c)
        cal = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
        if cal.threshold is None:
            continue
        trials += 1
        t = cal.threshold
        true_accuracy = (2 / 3) * (1 - t**1.5) / (1 - t)  # mean of sqrt(c) for c uniform on [t, 1]
        misses += true_accuracy < 0.95
    assert trials > 250
    assert misses / trials <= 0.05


def test_carried_verdicts_let_easy_auto_labels_carry_a_harder_stratum():
    # Earlier iterations auto-labeled an easy stratum: 300 retired verdicts, 299 right. What is
    # left is hard: even its most confident items are right only 92 % of the time.
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.5, 1.0, 300)
    correct = rng.random(300) < np.where(conf > 0.75, 0.92, 0.5)
    alone = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    pooled = calibrate_threshold(
        conf, correct, target_accuracy=0.95, confidence_level=0.95, carried_correct=299, carried_total=300
    )
    assert alone.threshold is None  # on its own the hard stratum never certifies
    assert pooled.threshold is not None
    above = conf >= pooled.threshold
    assert pooled.support == 300 + above.sum()
    assert pooled.accuracy == pytest.approx((299 + correct[above].sum()) / pooled.support)
    assert pooled.lower_bound >= 0.95
    assert (pooled.carried_support, pooled.carried_correct) == (300, 299)


def test_carried_verdicts_that_already_fail_stop_all_new_auto_labels():
    # The earlier auto-labels alone no longer meet the target: nothing new may join them, even
    # items the model is sure of and right about.
    conf = np.full(200, 0.999)
    correct = np.ones(200, dtype=bool)
    cal = calibrate_threshold(
        conf, correct, target_accuracy=0.95, confidence_level=0.95, carried_correct=180, carried_total=200
    )
    assert cal.threshold is None and cal.pool_bound is None


def test_earlier_auto_labels_that_still_pass_keep_their_bound_for_the_tail():
    # Nothing new passes (the new model is wrong on every validation item), but the earlier
    # auto-labels alone still do: their bound is reported, so their slack can pay for a tail.
    cal = calibrate_threshold(
        np.full(50, 0.9), np.zeros(50, dtype=bool), target_accuracy=0.95, confidence_level=0.95,
        carried_correct=200, carried_total=200,
    )
    assert cal.threshold is None and cal.lower_bound is None
    assert cal.pool_bound == pytest.approx(float(clopper_pearson_lower(200, 200, 0.95)))


def test_the_worst_case_tail_keeps_the_pool_at_the_target_even_if_every_tail_item_is_wrong():
    n, bound, target = 5000, 0.97, 0.95
    m = worst_case_tail(bound, n, target)
    assert m == 105  # 5000 * (0.97 / 0.95 - 1) = 105.26
    assert bound * n / (n + m) >= target > bound * n / (n + m + 1)
    assert worst_case_tail(0.95, n, target) == 0 and worst_case_tail(None, n, target) == 0
    assert worst_case_tail(0.99, 0, target) == 0


def test_impossible_carried_counts_are_refused():
    with pytest.raises(ValueError, match="impossible"):
        calibrate_threshold([0.9], [True], target_accuracy=0.95, confidence_level=0.95, carried_correct=5, carried_total=3)


def test_per_class_thresholds_find_the_class_a_good_whole_hides():
    # Three classes; class 2's confident items are right only 80 % of the time, the whole 95 %.
    rng = np.random.default_rng(3)
    pred = np.repeat([0, 1, 2], [2000, 2000, 500])
    conf = rng.uniform(0.5, 1.0, pred.size)
    correct = rng.random(pred.size) < np.where(pred == 2, 0.8, 0.99)
    whole = calibrate_threshold(conf, correct, target_accuracy=0.95, confidence_level=0.95)
    assert whole.threshold is not None and correct[conf >= whole.threshold][pred[conf >= whole.threshold] == 2].mean() < 0.9
    classes = calibrate_per_class(conf, correct, pred, 3, target_accuracy=0.95, confidence_level=0.95)
    assert [c.threshold is not None for c in classes] == [True, True, False]
    for c in classes[:2]:
        assert c.lower_bound >= 0.95 and c.min_support == 271  # the starting support at 1 - 0.05 / 3 confidence
    assert class_support_needed(0.95, 0.95, 3) == 80  # fewer validation items: 80, all right
    assert class_confidence(0.95, 10) == pytest.approx(0.995) and class_support_needed(0.95, 0.95, 10) == 104


def test_per_class_coverage_every_class_meets_the_target_jointly():
    """Over many draws, some class's auto-labels miss the target in at most 5 % of them (jointly).

    Classes near the target: testing each at the whole confidence (no split) misses in 25 of these
    300 draws, 8 %; the Bonferroni split keeps the joint promise."""
    slopes = np.array([0.12, 0.2, 0.3, 0.4])  # class c's accuracy at confidence x: 1 - slope_c (1 - x)
    misses = any_certified = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        pred = rng.integers(0, 4, 2000)
        conf = rng.uniform(0.0, 1.0, pred.size)
        correct = rng.random(pred.size) < 1.0 - slopes[pred] * (1.0 - conf)
        classes = calibrate_per_class(conf, correct, pred, 4, target_accuracy=0.95, confidence_level=0.95)
        thresholds = [(c, cal.threshold) for c, cal in enumerate(classes) if cal.threshold is not None]
        any_certified += bool(thresholds)
        misses += any(1.0 - slopes[c] * (1.0 - t) / 2.0 < 0.95 for c, t in thresholds)  # true accuracy above t
    assert any_certified > 20
    assert misses / 300 <= 0.05
