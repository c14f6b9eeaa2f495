"""The bound on a mean quality in [0, 1] (IoU of boxes or masks): valid, and as tight as the exact one where they meet."""

import math

import numpy as np
import pytest

from labelloop.bounds import betting_lower, hoeffding_bentkus_lower
from labelloop.calibration import calibrate_threshold, clopper_pearson_lower, read_order, starting_support


def test_all_perfect_labels_give_the_exact_bound():
    # n qualities of 1: no distribution on [0, 1] can be more certain, and the bound is the exact (1 - confidence)^(1/n).
    for n in (1, 10, 59, 200):
        assert hoeffding_bentkus_lower(n, n, 0.95) == pytest.approx(0.05 ** (1 / n), abs=1e-9)
        assert hoeffding_bentkus_lower(n, n, 0.95) == pytest.approx(clopper_pearson_lower(n, n, 0.95), abs=1e-9)


def test_the_bound_rises_with_the_mean_and_with_the_count():
    means = hoeffding_bentkus_lower(np.array([60.0, 70.0, 80.0]), 100, 0.95)
    assert np.all(np.diff(means) > 0) and np.all(means < [0.6, 0.7, 0.8])
    counts = hoeffding_bentkus_lower(np.array([70.0, 700.0, 7000.0]), np.array([100, 1000, 10000]), 0.95)
    assert np.all(np.diff(counts) > 0) and counts[-1] > 0.69
    assert hoeffding_bentkus_lower(0, 0, 0.95) == 0.0


@pytest.mark.parametrize("a,b,n", [(6, 2, 30), (6, 2, 300), (1, 1, 100), (0.3, 0.3, 200), (20, 2, 50)])
def test_the_bound_covers_the_true_mean_at_the_stated_confidence(a, b, n):
    """Beta-distributed qualities, including U-shaped (mostly 0 or 1) ones: the worst case for the bound."""
    rng = np.random.default_rng(n)
    true_mean = a / (a + b)
    sums = rng.beta(a, b, size=(4000, n)).sum(axis=1)
    bounds = hoeffding_bentkus_lower(sums, n, 0.95)
    assert np.mean(bounds > true_mean) <= 0.05
    assert np.mean(bounds) > true_mean - 0.25  # and it says something


def test_pass_fail_qualities_cost_at_most_the_factor_e_over_the_exact_bound():
    # Bentkus' tail is the binomial tail times e: on 0/1 data the bound sits just below Clopper–Pearson.
    n, k = 200, np.arange(150, 201)
    hb, cp = hoeffding_bentkus_lower(k, n, 0.95), clopper_pearson_lower(k, n, 0.95)
    assert np.all(hb <= cp + 1e-9) and np.all(cp - hb < 0.02)


def test_impossible_sums_are_refused():
    with pytest.raises(ValueError, match="between 0 and its count"):
        hoeffding_bentkus_lower(11, 10, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        hoeffding_bentkus_lower(5, 10, 1.0)


@pytest.mark.parametrize("bound", [{}, {"bound": "betting", "read_order": read_order(np.arange(1000))}],
                         ids=["hoeffding-bentkus", "betting"])
def test_a_mean_iou_threshold_meets_its_target_at_the_stated_confidence(bound):
    """A detector whose per-image IoU at confidence c averages c: above threshold t the true mean is (1 + t) / 2."""
    misses = trials = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.2, 1.0, 1000)
        iou = rng.beta(8 * conf + 1e-3, 8 * (1 - conf) + 1e-3)
        cal = calibrate_threshold(conf, iou, target_accuracy=0.8, confidence_level=0.95, bounded_mean=True, **bound)
        if cal.threshold is None:
            continue
        trials += 1
        misses += (1 + cal.threshold) / 2 < 0.8
    assert trials > 250
    assert misses / trials <= 0.05


def test_mean_iou_calibration_uses_every_quality_and_refuses_bad_ones():
    conf = np.linspace(1.0, 0.0, 400, endpoint=False)
    good = calibrate_threshold(conf, np.full(400, 0.9), target_accuracy=0.6, confidence_level=0.95, bounded_mean=True)
    assert good.threshold == pytest.approx(conf[-1])  # every image at IoU 0.9 passes a 0.6 target
    assert good.accuracy == pytest.approx(0.9) and 0.6 <= good.lower_bound < 0.9
    assert starting_support(0.6, 0.95, True) <= good.support
    poor = calibrate_threshold(conf, np.full(400, 0.5), target_accuracy=0.6, confidence_level=0.95, bounded_mean=True)
    assert poor.threshold is None
    with pytest.raises(ValueError, match=r"qualities must be numbers in \[0, 1\]"):
        calibrate_threshold([0.9, 0.8], [0.5, 1.2], target_accuracy=0.6, confidence_level=0.95, bounded_mean=True)


def test_the_first_test_of_a_mean_iou_tolerates_right_labels_that_sit_below_iou_1():
    """Right boxes are a few pixels off (IoU ~0.8), and even the most confident images include a
    wrong class now and then: their mean sits well below 1. The first test must not ask for 0.8."""
    rng = np.random.default_rng(3)
    conf = np.sort(rng.uniform(0.2, 1.0, 360))[::-1]
    right = rng.random(360) < np.where(np.arange(360) < 280, 0.85, 0.3)  # the top 280 mostly of the right class
    iou = np.where(right, rng.beta(16, 4, 360), rng.beta(2, 6, 360))  # right ~0.8, wrong ~0.25
    assert iou[:24].mean() < 0.8 and iou[:280].mean() > 0.66
    assert starting_support(0.6, 0.95, True) == 116  # 116 images averaging 0.7 pass; 24 would need 0.8
    cal = calibrate_threshold(conf, iou, target_accuracy=0.6, confidence_level=0.95, bounded_mean=True)
    assert cal.threshold is not None and cal.support >= 200 and cal.lower_bound >= 0.6


@pytest.mark.parametrize("a,b,n", [(6, 2, 30), (6, 2, 300), (1, 1, 100), (0.3, 0.3, 200), (20, 2, 50)])
def test_the_betting_bound_covers_the_true_mean_at_the_stated_confidence(a, b, n):
    rng = np.random.default_rng(n + 1)
    true_mean = a / (a + b)
    bounds = np.array([betting_lower(x, 0.95) for x in rng.beta(a, b, size=(1000, n))])
    assert np.mean(bounds > true_mean) <= 0.05
    assert np.all(bounds >= 0) and np.mean(bounds) > true_mean - 0.25


def test_the_betting_bound_is_tighter_than_hoeffding_bentkus_where_qualities_cluster():
    # Masks and boxes that are right sit near one IoU: the spread Hoeffding-Bentkus must allow for is not there.
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(0.75, 0.05, 173), 0, 1)
    assert betting_lower(x, 0.95) > 0.7 > hoeffding_bentkus_lower(x.sum(), x.size, 0.95)
    assert betting_lower(x, 0.95) < x.mean()
    assert betting_lower(np.array([]), 0.95) == 0.0 and betting_lower(np.zeros(50), 0.95) == 0.0


def test_the_betting_bound_reads_an_order_fixed_by_the_item_ids_and_takes_no_sums():
    keys = read_order(np.arange(2000))
    assert np.array_equal(keys, read_order(np.arange(2000))) and len(np.unique(keys)) == 2000
    assert np.all((keys >= 0) & (keys < 1)) and abs(np.corrcoef(keys, np.arange(2000))[0, 1]) < 0.1  # scrambled
    conf, iou = np.linspace(1, 0, 300), np.full(300, 0.9)
    with pytest.raises(ValueError, match="takes no carried verdicts"):
        calibrate_threshold(conf, iou, target_accuracy=0.6, confidence_level=0.95, bounded_mean=True, bound="betting",
                            read_order=read_order(np.arange(300)), carried_correct=50, carried_total=60)
    with pytest.raises(ValueError, match="one order key per"):
        calibrate_threshold(conf, iou, target_accuracy=0.6, confidence_level=0.95, bounded_mean=True, bound="betting")
    with pytest.raises(ValueError, match="bound must be one of"):
        calibrate_threshold(conf, iou, target_accuracy=0.6, confidence_level=0.95, bounded_mean=True, bound="bentkus")


def _betting(conf, iou, target, **kw):
    ids = np.arange(len(conf))
    return calibrate_threshold(conf, iou, target_accuracy=target, confidence_level=0.95, bounded_mean=True,
                               bound="betting", read_order=read_order(ids), **kw)


def test_the_betting_bound_certifies_a_few_excellent_masks_from_its_early_start():
    # 300 validation masks: the 70 most confident near IoU 0.9, the rest near 0.4. The top 173 (the
    # usual start at a 0.7 target) average about 0.58 and fail; the early start (58) does not.
    rng = np.random.default_rng(3)
    conf = np.linspace(1.0, 0.0, 300, endpoint=False)
    iou = np.clip(np.r_[rng.normal(0.9, 0.05, 70), rng.normal(0.4, 0.1, 230)], 0, 1)
    usual = starting_support(0.7, 0.95, True)
    assert _betting(conf, iou, 0.7, start=usual).threshold is None
    cal = _betting(conf, iou, 0.7)
    assert cal.min_support == math.ceil(usual / 3) and 70 <= cal.support < usual
    assert cal.lower_bound >= 0.7 and cal.accuracy > 0.75
    # A larger MinValidationSupport moves the early start too.
    assert _betting(conf, iou, 0.7, min_support=120).threshold is None


def test_a_validation_set_smaller_than_the_usual_start_certifies_from_the_early_start():
    # 120 validation masks (a small job) cannot reach the usual start (173 at 0.7); the early start
    # then has the whole error rate, and good masks are certified.
    rng = np.random.default_rng(5)
    conf = np.linspace(1.0, 0.0, 120, endpoint=False)
    iou = np.clip(rng.normal(0.85, 0.06, 120), 0, 1)
    assert _betting(conf, iou, 0.7, start=starting_support(0.7, 0.95, True)).threshold is None
    cal = _betting(conf, iou, 0.7)
    assert cal.support == 120 and cal.lower_bound >= 0.7


def test_the_betting_bound_still_certifies_from_the_usual_start_when_the_top_is_no_better():
    # Boxes: the most confident sit near 0.7 like the rest, so the early tests fail; the usual start
    # keeps nine tenths of the error rate and vouches for the whole set.
    rng = np.random.default_rng(4)
    conf = np.linspace(1.0, 0.0, 400, endpoint=False)
    iou = np.clip(rng.normal(0.7, 0.08, 400), 0, 1)
    cal = _betting(conf, iou, 0.6)
    assert cal.threshold is not None and cal.support >= 350 and cal.lower_bound >= 0.6


def test_the_early_start_keeps_the_promise_where_the_best_masks_are_the_most_confident():
    """A segmenter whose mean IoU at confidence c is c²: above threshold t the true mean is
    (1 + t + t²) / 3, so only the top of the pool meets a 0.7 target (t above about 0.53)."""
    misses = trials = early = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.0, 1.0, 300)
        mean = conf**2
        iou = rng.beta(6 * mean + 1e-3, 6 * (1 - mean) + 1e-3)
        cal = _betting(conf, iou, 0.7)
        if cal.threshold is None:
            continue
        trials += 1
        early += cal.support < starting_support(0.7, 0.95, True)
        t = cal.threshold
        misses += (1 + t + t * t) / 3 < 0.7
    assert trials > 150 and early > 50
    assert misses / trials <= 0.05
