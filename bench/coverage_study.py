"""Coverage study: does the auto-labels' promise hold across seeds?

Runs the default policy through the real local loop on the same dataset (by default the
5,000-item Fashion-MNIST subset) with N seeds (sampling, splits and training all change with the
seed) and reports the share of runs whose auto-labels met the target against the hidden truth
(an accuracy, or for boxes the auto-labels' mean IoU), with an exact (Clopper-Pearson) 95 %
interval. The calibration promises ≥ 95 % of runs. Each seed prints a line as it ends: share
auto-labeled, the auto-labels' accuracy or mean IoU, whether the target held, minutes.

  python bench/coverage_study.py --seeds 20 --jobs 2
  python bench/coverage_study.py --dataset fashion-mnist-detection-5k --seeds 10
  python bench/coverage_study.py --policy labelloop-per-class --seeds 20 --jobs 2
  python bench/coverage_study.py --dataset fashion-mnist-segmentation-3k --batch 500 \
      --setting 'IouBound="betting"' --seeds 10

With `--policy labelloop-per-class` (the per-class promise) a run keeps the target when every
class's auto-labels do; its line names the worst class. `--setting KEY=JSON` (as in
compare_policies) studies the defaults with a setting changed; the records' file name says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare_policies import POLICIES, parse_settings, prepare, run_policy, task_of  # noqa: E402
from promise_study import exact_interval  # noqa: E402

from labelloop.local.sagemaker_jobs import die_with_parent  # noqa: E402

PER_CLASS = "labelloop-per-class"


def study_name(args: argparse.Namespace) -> str:
    """The records' and run folders' name: the dataset, then what the study changed."""
    changed = "".join(f"-{key}-{value}" for key, value in sorted(args.settings.items()))
    return f"coverage-{args.dataset}" + ("-per-class" if args.policy == PER_CLASS else "") + changed


def tie_to_study(study: int) -> None:
    """Pool initializer: a seed's worker dies with the study, as the worker's jobs die with it, so
    a study stopped with `kill` leaves nothing running that writes into its run folders."""
    tie = die_with_parent(study)
    if tie:
        tie()


def seed_pool(jobs: int) -> ProcessPoolExecutor:
    """`jobs` seeds at a time, each in a fresh (spawned) process tied to this one."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                               initializer=tie_to_study, initargs=(os.getpid(),))


def one_seed(args: argparse.Namespace, dataset, seed: int) -> dict:
    run_args = argparse.Namespace(**{**vars(args), "seed": seed})
    work = Path(args.work) / study_name(args) / f"seed-{seed}"
    policy = {**POLICIES[args.policy], **args.settings}
    row = run_policy(args.policy, policy, dataset, run_args, work, resume=args.resume)
    row.pop("curve")
    row["seed"] = seed
    if args.policy == PER_CLASS:
        row["met_overall"] = row["met"]
        row["met"] = all(quality >= row["target"] for quality in row["class_accuracy"].values())
    return row


def worst_class(row: dict) -> str | None:
    """The class whose auto-labels are least often right, as "NAME 93.1 %" (None: no auto-labels)."""
    if not row.get("class_accuracy"):
        return None
    name, quality = min(row["class_accuracy"].items(), key=lambda kv: kv[1])
    return f"{name} {100 * quality:.1f} %"


def seed_line(row: dict, boxes: bool) -> str:
    """One seed's result as it ends."""
    quality = "—" if row["auto_accuracy"] is None else (
        f"{row['auto_accuracy']:.3f}" if boxes else f"{100 * row['auto_accuracy']:.2f} %")
    return (f"seed {row['seed']}: {100 * row['auto_share']:.1f} % auto-labeled, auto-labels' "
            f"{'mean IoU' if boxes else 'accuracy'} {quality} vs truth, target kept: {'yes' if row['met'] else 'no'}"
            f"{' (nothing auto-labeled)' if row['auto_accuracy'] is None else ''}"
            f"{f', worst class {worst_class(row)}' if row['policy'] == PER_CLASS and worst_class(row) else ''}, "
            f"{row['seconds'] / 60:.1f} min{' (resumed: the last part only)' if row.get('resumed') else ''}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist-5k")
    parser.add_argument("--policy", default="labelloop", choices=("labelloop", PER_CLASS),
                        help="the defaults, or the defaults with the per-class promise")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each run's jobs share the cores)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds an earlier study already wrote, and go on with a seed it left unfinished")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                        help="change one of the policy's settings for every seed, e.g. 'IouBound=\"betting\"' (repeatable)")
    parser.add_argument("--target", type=float, default=None, help="default: the task type's (accuracy 0.95, mean IoU 0.6)")
    parser.add_argument("--max-iterations", type=int, default=None, help="stop each run after this many (quick checks)")
    parser.add_argument("--annotator-accuracy", type=float, default=1.0)
    parser.add_argument("--data", default=str(REPO / "data"))
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "runs"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    try:
        args.settings = parse_settings(args.setting)  # parsed once; the seeds' workers get it with args
    except ValueError as e:
        parser.error(str(e))

    boxes = task_of(args.dataset).bounded_mean
    args.target = args.target or task_of(args.dataset).default_target
    dataset = prepare(args.dataset, Path(args.data), 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = study_name(args)
    results = out / f"{name}.json"
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = [r for r in json.loads(results.read_text()) if r["seed"] in seeds] if args.resume and results.exists() else []
    todo = [s for s in seeds if s not in {r["seed"] for r in rows}]
    started = time.monotonic()

    def done(row: dict) -> None:
        rows.append(row)
        print(seed_line(row, boxes), flush=True)
        results.write_text(json.dumps(sorted(rows, key=lambda r: r["seed"]), indent=1))

    if args.jobs <= 1:  # in this process: stopping the study stops its run (no pool worker left behind)
        for seed in todo:
            done(one_seed(args, dataset, seed))
    else:
        with seed_pool(args.jobs) as pool:
            for future in as_completed([pool.submit(one_seed, args, dataset, seed) for seed in todo]):
                done(future.result())
    rows.sort(key=lambda r: r["seed"])

    met = sum(r["met"] for r in rows)
    low, high = exact_interval(met, len(rows))
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    show = (lambda x: f"{x:.3f}") if boxes else pct  # a mean IoU reads as a number, an accuracy as a share
    word = "auto-labels' mean IoU" if boxes else "auto-label accuracy"
    per_class = args.policy == PER_CLASS
    lines = [
        f"**Coverage, {args.dataset}{', per-class promise' if per_class else ''}"
        f"{''.join(f', {key} {json.dumps(value)}' for key, value in args.settings.items())}** "
        f"({len(rows)} seeds, target {word} ≥ {show(args.target)}{' for every class' if per_class else ''}, "
        f"{(time.monotonic() - started) / 60:.0f} min with {args.jobs} at a time)",
        "",
        f"| seed | human labels | % auto-labeled | {word} |{' worst class |' if per_class else ''} met | minutes |",
        "|---:|---:|---:|---:|" + ("---|" if per_class else "") + ":---:|---:|",
    ]
    for r in rows:
        acc = "—" if r["auto_accuracy"] is None else show(r["auto_accuracy"])
        human = f"{r['human']:,} ({pct(r['human'] / r['items'])})"
        worst = f" {worst_class(r) or '—'} |" if per_class else ""
        lines.append(f"| {r['seed']} | {human} | {pct(r['auto_share'])} | {acc} |{worst} {'yes' if r['met'] else 'no'} | "
                     f"{r['seconds'] / 60:.1f}{' (resumed)' if r.get('resumed') else ''} |")
    judged = [r["auto_accuracy"] for r in rows if r["auto_accuracy"] is not None]
    lines += [
        "",
        f"Target met in **{met} of {len(rows)}** runs ({pct(met / len(rows))}; exact 95 % interval "
        f"{pct(low)} – {pct(high)}). Over the runs that auto-labeled, the {word} averages "
        f"{show(sum(judged) / len(judged)) if judged else '—'}; mean share auto-labeled "
        f"{pct(sum(r['auto_share'] for r in rows) / len(rows))}, mean human share "
        f"{pct(sum(r['human'] / r['items'] for r in rows) / len(rows))}; lowest {word} "
        f"{show(min(judged)) if judged else '—'}.",
    ]
    table = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(table)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
