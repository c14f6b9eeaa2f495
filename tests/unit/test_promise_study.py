"""The promise study's core on a tiny setting: its rows are well-formed, and it catches a calibrator
that breaks the promise (so a study that passes means something)."""

import sys
from pathlib import Path

import pytest

from labelloop.calibration import calibrate_threshold

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from promise_study import DEFAULT_SETTINGS, SETTINGS, exact_interval, plan, study, summary, table  # noqa: E402

TINY = plan(24, seed=0, profiles=["flat-at-target", "easy-first-hard-tail", "easy"], sizes=[5000])


@pytest.fixture(scope="module")
def results():
    return study(["job", "point-estimate"], TINY)


def test_rows_are_well_formed_and_settings_share_their_runs(results):
    for rows in results.values():
        assert [(r["profile"], r["items"], r["seed"]) for r in rows] == TINY
        for r in rows:
            assert 0 < r["human"] <= r["items"] and r["human"] + r["auto"] <= r["items"]
            assert r["stop"] in {"all-labeled", "max-iterations", "no-progress", "human-budget-spent"}
            if r["auto"]:
                assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 < r["expected"] <= 1.0
                assert r["missed"] == (r["accuracy"] < 0.95)
            else:
                assert r["accuracy"] is None and not r["missed"]
    s = summary(results["job"])
    assert s["runs"] == len(TINY) and s["low"] <= s["miss_rate"] <= s["high"]
    text = table(results, 1.0, 1)
    assert "| job | 24 |" in text and "| point-estimate | 24 |" in text


def test_a_calibrator_without_a_bound_is_caught_missing(results):
    invalid = summary(results["point-estimate"])
    valid = summary(results["job"])  # the default, the same scope without the bound
    # The point estimate picks thresholds whose observed accuracy just meets the target: a quarter
    # or more of its runs fall short. The study must see that, far above the 5 % the promise allows.
    assert invalid["low"] > 0.05
    assert invalid["miss_rate"] > 0.2
    assert invalid["miss_rate"] > valid["miss_rate"] + 0.2
    assert invalid["human"] < valid["human"]  # what it buys: fewer human labels


def test_exact_interval_is_clopper_pearson():
    assert exact_interval(0, 20) == (0.0, pytest.approx(0.1684, abs=1e-4))
    low, high = exact_interval(19, 20)
    assert low == pytest.approx(0.7513, abs=1e-4) and high == pytest.approx(0.9987, abs=1e-4)


def test_every_product_scope_is_a_setting():
    from labelloop.policies import CALIBRATION_SCOPES

    scopes = {options["CalibrationScope"] for options, _, _ in SETTINGS.values()}
    assert set(CALIBRATION_SCOPES) <= scopes


def test_the_study_measures_the_products_default():
    from labelloop.config import JobSettings

    assert DEFAULT_SETTINGS.split(",")[0] == "job" == JobSettings.calibration_scope
    options, calibrator, split = SETTINGS["job"]
    assert options == {"CalibrationScope": "job"} and calibrator is calibrate_threshold and not split


def test_the_per_class_setting_judges_each_class_where_the_default_hides_a_hard_one():
    runs = plan(6, seed=0, profiles=["uneven-classes"], sizes=[5000])
    results = study(["job", "job-per-class"], runs)
    for r in results["job"]:  # the union meets the target while a hard class's auto-labels do not
        assert r["accuracy"] >= 0.95 > r["worst_class_accuracy"] and not r["missed"]
    for r in results["job-per-class"]:
        assert r["missed"] == (r["worst_class_accuracy"] < 0.95)
        assert r["worst_class_accuracy"] >= 0.95
    assert summary(results["job-per-class"])["human"] > summary(results["job"])["human"]  # what it costs
