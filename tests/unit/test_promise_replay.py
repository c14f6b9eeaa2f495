"""Replays of real runs (bench/promise_replay.py) on a toy table of stored predictions: the job's model
is the snapshot nearest its training size, and its auto-labels are scored against the truth."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from promise_replay import ReplayModel  # noqa: E402
from promise_sim import run_job  # noqa: E402


def stored(n=3000, k=3, seed=0):
    """Three snapshots, 70 %, 90 % and 99 % right, sure where right and unsure where wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(k, size=n)
    probs = np.zeros((3, n, k))
    for s, accuracy in enumerate((0.7, 0.9, 0.99)):
        right = rng.random(n) < accuracy
        predicted = np.where(right, truth, (truth + 1) % k)
        conf = np.where(right, rng.uniform(0.6, 1.0, n), rng.uniform(0.34, 0.7, n))
        probs[s] = ((1.0 - conf) / (k - 1))[:, None]
        probs[s, np.arange(n), predicted] = conf
    return {"probs": probs, "truth": truth, "sizes": np.array([100, 400, 1600])}


def test_the_model_of_an_iteration_is_the_snapshot_nearest_its_training_size():
    table = stored()
    model = ReplayModel("toy", table, np.random.default_rng(0))
    assert [model.snapshot(t) for t in (1, 150, 250, 700, 900, 5000)] == [0, 0, 1, 1, 2, 2]
    conf, correct, predicted = model.predict(900)
    assert np.array_equal(predicted, table["probs"][2].argmax(1)) and np.allclose(conf, table["probs"][2].max(1))
    assert np.array_equal(correct, predicted == table["truth"]) and 0.98 < correct.mean() < 1.0
    idx = np.array([5, 2])
    assert np.allclose(model.probabilities(idx, conf, predicted), table["probs"][2][idx])


def test_a_replay_scores_its_auto_labels_against_the_truth():
    table = stored()
    rows = []
    for seed in range(3):
        model = ReplayModel("toy", table, np.random.default_rng(seed))
        rows.append(run_job({"CalibrationScope": "job", "HumanBatchSize": 200}, model.profile, len(table["truth"]),
                            seed, model=model))
    for row in rows:
        assert row["auto"] > 0 and row["human"] + row["auto"] <= len(table["truth"])
        assert row["missed"] == (row["accuracy"] < 0.95) == row["model_missed"]  # a real model: its outcome counts
    # The validation draws are re-seeded: the runs differ in what they paid for.
    assert len({row["human"] for row in rows}) > 1 or len({row["auto"] for row in rows}) > 1
