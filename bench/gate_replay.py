"""Replay the threshold calibration on the gates of finished (or running) local runs.

For each iteration of a run folder that has its validation and pool predictions, reads the
validation images' human labels and the model's answers as CalibrateThreshold does, and prints
what the product's calibration certifies, what a single start would (`--starts`), and how many
pool items the hidden truth allowed at the target (the oracle's threshold). With `--confidences`,
the same for each image confidence the model's answers carry side by side (masks: `confidences`),
as if it had been the one the gate read, and a total over every gate replayed: which candidate
certifies most on the loop's own gates, and how often what it certified fell below the target on
the truth. Used for the betting bound's early start and the masks' confidence
(docs/benchmarks.md); it reads the runs and changes nothing.

  python bench/gate_replay.py bench/results/runs/coverage-*/seed-0/labelloop \\
      --truth data/fashion-mnist-segmentation-3k/truth.manifest --starts 50,100 --confidences
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


def candidates(folder: Path, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Each confidence candidate of a transform output's answers, in the order of `ids` ({} without)."""
    by_id = {}
    for path in folder.glob("*.out"):
        with path.open() as lines:
            for line in lines:
                record = json.loads(line)
                by_id[record["labelloop-id"]] = record["SageMakerOutput"].get("confidences") or {}
    names = sorted(set.intersection(*(set(by_id[i]) for i in ids.tolist()))) if len(ids) else []
    return {name: np.array([by_id[i][name] for i in ids.tolist()], dtype=float) for name in names}


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
    parser.add_argument("--confidences", action="store_true",
                        help="also replay each gate with each confidence candidate the answers carry")
    args = parser.parse_args(argv)
    starts = [int(s) for s in args.starts.split(",") if s]
    totals: dict[str, list[int]] = {}  # candidate: certified, allowed by the truth, gates, gates below the target
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
            if not args.confidences:
                continue
            it = run / "iterations" / name
            val_c, pool_c = candidates(it / "inference/validation", val.ids), candidates(it / "inference/unlabeled", pool.ids)
            for cand in sorted(set(val_c) & set(pool_c)):
                cal = calibrate_threshold(val_c[cand], correct, **kw)
                chosen = pool_c[cand] >= cal.threshold if cal.threshold is not None else np.zeros(len(truth), bool)
                best = oracle_threshold(pool_c[cand], truth, target=target)
                allowed = 0 if best is None else int((pool_c[cand] >= best).sum())
                low = bool(chosen.any() and truth[chosen].mean() < target)
                total = totals.setdefault(cand, [0, 0, 0, 0])
                for k, add in enumerate((int(chosen.sum()), allowed, 1, int(low))):
                    total[k] += add
                quality_text = f"true quality {truth[chosen].mean():.3f}" if chosen.any() else "nothing"
                print(f"  confidence {cand}: {int(chosen.sum())} certified ({quality_text}); the truth allowed {allowed}")
    if totals:
        print("all gates replayed, by confidence: certified / allowed by the truth / gates / gates whose certified "
              "pool fell below the target")
        for cand, (certified, allowed, n, low) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
            print(f"  {cand}: {certified} / {allowed} / {n} / {low}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
