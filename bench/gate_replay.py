"""Replay the threshold calibration on the gates of finished (or running) local runs.

For each iteration of a run folder that has its validation and pool predictions, reads the
validation images' human labels and the model's answers as CalibrateThreshold does, and prints
what the product's calibration certifies, what a single start would (`--starts`), and how many
pool items the hidden truth allowed at the target (the oracle's threshold). Used for the betting
bound's early start (docs/benchmarks.md); it reads the runs and changes nothing.

  python bench/gate_replay.py bench/results/runs/coverage-*/seed-0/labelloop \\
      --truth data/fashion-mnist-segmentation-3k/truth.manifest --starts 50,100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelloop import tasks  # noqa: E402
from labelloop.calibration import calibrate_threshold, read_order, start_for  # noqa: E402
from labelloop.config import JobSettings, parse_label_category_config  # noqa: E402
from labelloop.steps.oracle import oracle_quality  # noqa: E402
from labelloop.steps.predictions import predictions  # noqa: E402
from labelloop.threshold_rules import oracle_threshold  # noqa: E402


def _count(folder: Path) -> int:
    return sum(sum(1 for _ in open(f)) for f in folder.glob("*.out"))


def gates(run: Path, truth: str):
    """(iteration, target, validation predictions, their qualities, pool predictions, pool's true qualities)."""
    settings = JobSettings.parse(json.loads((run / "config/settings.json").read_text()))
    settings = dataclasses.replace(settings, oracle_truth_uri=truth)  # read by oracle_quality only
    task = tasks.get(settings.task_type)
    names = parse_label_category_config(json.loads((run / "config/label-categories.json").read_text()), "categories")
    for it in sorted((run / "iterations").iterdir()):
        val_dir, pool_dir = it / "inference/validation", it / "inference/unlabeled"
        n_val, n_pool = _count(val_dir), _count(pool_dir)
        if not ((it / "calibration.json").exists() and n_val and n_pool):
            continue
        target = json.loads((it / "calibration.json").read_text())["WorkingTarget"]
        val, human = predictions(f"{val_dir}/", task, len(names), n_val, truth_attribute=settings.label_attribute)
        quality = np.array([task.quality(p, h) for p, h in zip(val.values.tolist(), human)], dtype=float)
        pool, _ = predictions(f"{pool_dir}/", task, len(names), n_pool)
        yield it.name, settings, target, val, quality, pool, oracle_quality(settings, task, names, f"{pool_dir}/", pool)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (each holds config/ and iterations/)")
    parser.add_argument("--truth", required=True, help="the dataset's truth manifest (scores the pool)")
    parser.add_argument("--starts", default="", help="comma-separated single starts to compare (items)")
    args = parser.parse_args(argv)
    starts = [int(s) for s in args.starts.split(",") if s]
    for run in map(Path, args.runs):
        for name, settings, target, val, quality, pool, truth in gates(run, args.truth):
            task = tasks.get(settings.task_type)
            kw = dict(target_accuracy=target, confidence_level=settings.confidence_level, bounded_mean=task.bounded_mean,
                      bound=settings.iou_bound, read_order=read_order(val.ids))
            correct = quality if task.bounded_mean else quality >= 1.0
            usual = start_for(target, settings.confidence_level, len(quality), task.bounded_mean)
            rules = {"product": {}, f"start {usual}": {"start": usual}, **{f"start {s}": {"start": s} for s in starts}}
            ranked = quality[np.argsort(-val.confidence, kind="stable")]
            tops = " / ".join(f"{ranked[:k].mean():.3f}" for k in (50, 100, usual) if k <= len(ranked))
            best = oracle_threshold(pool.confidence, truth, target=target)
            print(f"{run} gate {name}: {len(quality)} validation (mean {quality.mean():.3f}; most confident "
                  f"50 / 100 / {usual}: {tops}); the truth allowed "
                  f"{0 if best is None else int((pool.confidence >= best).sum())} of {len(truth)}")
            for label, extra in rules.items():
                cal = calibrate_threshold(val.confidence, correct, **kw, **extra)
                if cal.threshold is None:
                    print(f"  {label}: nothing")
                    continue
                chosen = pool.confidence >= cal.threshold
                print(f"  {label}: {cal.support} validation items, {int(chosen.sum())} of {len(truth)} certified "
                      f"(true quality {truth[chosen].mean():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
