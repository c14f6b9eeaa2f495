"""bench/gate_replay.py --confidences reads each answer's confidence candidates in the order of the
gate's predictions, whatever order the transform's output files hold them in."""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from gate_replay import candidates  # noqa: E402


def write_answers(folder: Path, name: str, answers: dict[int, dict[str, float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w") as f:
        for item_id, conf in answers.items():
            f.write(json.dumps({"labelloop-id": item_id, "SageMakerOutput": {"mask": "", "confidence": 0.5,
                                                                           "confidences": conf}}) + "\n")


def test_candidates_follow_the_prediction_order_across_output_files(tmp_path):
    write_answers(tmp_path, "b.out", {7: {"expected-iou": 0.7, "flip-agreement": 0.1},
                                      3: {"expected-iou": 0.3, "flip-agreement": 0.9}})
    write_answers(tmp_path, "a.out", {5: {"expected-iou": 0.5, "flip-agreement": 0.4, "extra": 1.0}})
    got = candidates(tmp_path, np.array([3, 5, 7]))
    assert set(got) == {"expected-iou", "flip-agreement"}  # one answer lacks "extra": not comparable
    assert got["expected-iou"].tolist() == [0.3, 0.5, 0.7]
    assert got["flip-agreement"].tolist() == [0.9, 0.4, 0.1]


def test_answers_without_candidates_give_none(tmp_path):
    write_answers(tmp_path, "a.out", {1: {}, 2: {}})
    assert candidates(tmp_path, np.array([1, 2])) == {}
