"""Compare labeling policies on the same data, in one run, through the real local loop.

Policies (classification):
  all-human   every item goes to humans (no model, no auto-labels)
  sample      the public AWS Step Functions sample: auto-label when top-1 minus top-2 > 0.5,
              random human batches, validation = first 10 % of the first batch, never refreshed
  labelloop   this project's default: lower-bound calibration (job scope), adaptive validation,
              least-confidence routing with a random share and a class-balance guard
  labelloop-cumulative
              the same with the cumulative calibration scope, the default until 2026-11-29
              (docs/promise.md: not covered by the promise); only when asked for by --policies
  labelloop-per-class
              the defaults with the per-class promise (--per-class): every class's auto-labels meet
              the target; only when asked for by --policies
  tbal        labelloop's loop, models and routing with the published TBAL threshold rule
              (Vishwakarma et al., NeurIPS 2023; labelloop.threshold_rules) on the same validation
  oracle      labelloop's loop, models, routing and validation draws, each gate's threshold the
              lowest whose auto-labels meet the target on the hidden truth of the pool: the best
              any calibrator could do with these models (CalibrationMethod "oracle", which runs
              only with a truth file: OracleTruthUri)
  oracle-no-validation
              the same with one validation label (ValidationSize 1, the fewest the settings allow)
Every table shows each policy's human labels as a ratio to the oracle's ("× oracle").

Policies (object detection, the fashion-mnist-detection-* datasets):
  all-human   every image boxed by humans
  fixed-score what a user tries first: auto-label an image when the model's score for it is above
              0.5, no bound. It is the fixed-margin gate (MarginThreshold 0.5) over the task's
              routing probabilities, which for boxes is exactly "image confidence > 0.5", where
              the image confidence is the one labelloop ranks and calibrates by: the mean score of
              the boxes kept (score ≥ 0.2) times one minus the best score dropped (1 for either
              part when there is none; labelloop.tasks.object_detection). That is Ground Truth's
              tutorial signal (the mean box score) made slightly stricter by a dropped near-miss,
              and an image with no box kept and none near counts as sure. Routing and everything
              else as labelloop's defaults; validation is the first batch's 10 % (nothing is
              calibrated on it)
  labelloop   the defaults: mean IoU ≥ 0.6 certified with 95 % confidence (Hoeffding–Bentkus)
Semantic segmentation (the fashion-mnist-segmentation-* datasets): the same policies; the image
confidence is the mask's expected IoU (algorithms/semantic_segmentation/confidence.py), so
fixed-score auto-labels a mask whose expected IoU is above 0.5, and labelloop certifies a mean
IoU of 0.7 (Ground Truth's, background excluded) with the masks' default bound (betting). Simulated annotators click (four extreme
points and corrective clicks, labelloop.tasks.semantic_segmentation.people) unless told to paint.

Each run executes statemachine/active_learning.asl.json with the local engine and simulated
annotators (always right unless --annotator-accuracy says otherwise), then scores the output
manifest against the hidden truth (a box label by its image's mean IoU, as Ground Truth's
tutorial scores it). Writes a Markdown table and a PNG plot.

  python bench/compare_policies.py --dataset fashion-mnist-5k
  python bench/compare_policies.py --dataset fashion-mnist --batch 2000
  python bench/compare_policies.py --dataset spamassassin
  python bench/compare_policies.py --dataset fashion-mnist-detection-5k
  python bench/compare_policies.py --dataset fashion-mnist-detection-small --max-iterations 2   # a quick check
  python bench/compare_policies.py --dataset fashion-mnist-segmentation-3k
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelloop import tasks  # noqa: E402
from labelloop.datasets import PREPARERS, read_label_config  # noqa: E402
from labelloop.evaluation import evaluate  # noqa: E402
from labelloop.local.engine import LocalEngine  # noqa: E402
from labelloop.local.workforce import SimulatedWorkforce  # noqa: E402
from labelloop.manifest import item_key  # noqa: E402
from labelloop.truth import read_truth  # noqa: E402

PRICE = 0.08  # Ground Truth's list price per classification label per worker

DATASETS = {
    # name: (preparer, limit, default human batch)
    "digits": ("digits", None, 150),
    "fashion-mnist-5k": ("fashion-mnist", 5000, 250),
    "fashion-mnist": ("fashion-mnist", None, 2000),
    "spamassassin": ("spamassassin", None, 200),
    "fashion-mnist-detection-5k": ("fashion-mnist-detection", 5000, 500),
    "fashion-mnist-detection-small": ("fashion-mnist-detection", 150, 50),  # code paths only: too few to certify
    "fashion-mnist-segmentation-3k": ("fashion-mnist-segmentation", 3000, 250),
    "fashion-mnist-segmentation-small": ("fashion-mnist-segmentation", 120, 40),  # code paths only: too few to certify
}
TASK_TYPES = {"spamassassin": "text-classification", "fashion-mnist-detection": "object-detection",
              "fashion-mnist-segmentation": "semantic-segmentation"}  # else images
TRUTH_NAMES = ("truth.jsonl", "truth.manifest")  # a prepared dataset's hidden truth: classes, or boxes and masks

# The baselines route full batches to the end, as the public sample does; labelloop's smaller
# batch for the tail is its own (TailBatch).
POLICIES = {
    "all-human": {"CalibrationMethod": "none", "SelectionStrategy": "random", "ValidationPolicy": "frozen-first",
                  "TailBatch": False},
    "fixed-score": {
        "CalibrationMethod": "fixed-margin",  # for boxes: image confidence > 0.5 (see the module's doc)
        "MarginThreshold": 0.5,
        "ValidationPolicy": "frozen-first",
        "ValidationFraction": 0.1,
        "TailBatch": False,
    },
    "sample": {
        "CalibrationMethod": "fixed-margin",
        "MarginThreshold": 0.5,
        "SelectionStrategy": "random",
        "ValidationPolicy": "frozen-first",
        "ValidationFraction": 0.1,
        "ClassBalance": False,
        "RandomFraction": 0.0,
        "TailBatch": False,
    },
    "labelloop": {},
    "labelloop-cumulative": {"CalibrationScope": "cumulative"},
    "labelloop-per-class": {"PerClassPromise": True},
    "tbal": {"CalibrationMethod": "tbal"},
    "oracle": {"CalibrationMethod": "oracle"},
    "oracle-no-validation": {"CalibrationMethod": "oracle", "ValidationSize": 1},
}
LOOP_POLICIES = ("labelloop", "labelloop-cumulative", "labelloop-per-class", "tbal", "oracle", "oracle-no-validation")  # --setting applies
ORACLE = "oracle"  # the row the "× oracle" column divides by
DEFAULT_POLICIES = ("all-human", "sample", "tbal", "oracle", "labelloop")
DETECTION_POLICIES = ("all-human", "fixed-score", "oracle", "labelloop")


def task_of(dataset: str) -> tasks.TaskType:
    return tasks.get(TASK_TYPES.get(DATASETS[dataset][0], "image-classification"))


def prepare(name: str, data_root: Path, seed: int):
    """(manifest, truth file, label config, task type, class names, items), prepared once per data root."""
    preparer, limit, _ = DATASETS[name]
    out = data_root / name
    truth = next((out / t for t in TRUTH_NAMES if (out / t).exists()), None)
    if (out / "manifest.jsonl").exists() and truth is not None and (out / "labels.json").exists():
        classes = read_label_config(out / "labels.json")
        count = sum(1 for _ in open(out / "manifest.jsonl"))
        return out / "manifest.jsonl", truth, out / "labels.json", task_of(name).name, classes, count
    ds = PREPARERS[preparer](out, limit=limit, seed=seed)
    return ds.manifest, ds.truth, ds.label_config, ds.task_type, ds.class_names, ds.count


def scorer(task: tasks.TaskType, truth: dict[str, Any], classes: list[str]) -> Callable[[str, Any], float]:
    """quality(item key, label value): 1/0 for a class, the image's mean IoU for boxes; 0 without a truth."""
    if not task.bounded_mean:
        return lambda key, value: float(truth.get(key) == classes[value])
    references = {key: task.truth_value(true, classes) for key, true in truth.items()}

    def quality(key: str, value: Any) -> float:
        reference = references.get(key)
        return 0.0 if reference is None else task.quality(task.read_value(value, classes), reference)

    return quality


def curve(run_dir: Path, quality: Callable[[str, Any], float]) -> list[tuple[int, float]]:
    """(human labels, the dataset's mean quality) after each iteration: the share of items labeled
    right, or for boxes the mean IoU over all images; an unlabeled item counts 0."""
    points = []
    for folder in sorted(run_dir.glob("iterations/[0-9]*")):
        ledgers = [folder / f"ledger-{stage}.jsonl" for stage in ("auto", "human")]
        ledger_file = next((f for f in ledgers if f.exists()), None)
        if ledger_file is None:
            continue
        human = total = 0
        summed = 0.0
        with open(ledger_file) as f:
            for line in f:
                record = json.loads(line)
                total += 1
                label = record["label"]
                if label:
                    human += label["human"]
                    summed += quality(item_key(record["source"]), label["class"])
        points.append((human, summed / total))
    return sorted(set(points))


def parse_settings(items: list[str]) -> dict:
    """`--setting KEY=JSON` overrides as a dict (a value that is not JSON is taken as a string)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--setting {item!r}: expected KEY=JSON")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def run_policy(name, policy, dataset, args, workdir: Path, resume: bool = False):
    """Run one policy through the local loop and score its output manifest against the truth.

    With `resume`, a run folder an interrupted run left goes on where it stopped (the loop
    resumes from its ledger, every label kept); `seconds` is then this part's time only."""
    manifest, truth_path, label_config, task_type, classes, count = dataset
    task = tasks.get(task_type)
    truth = read_truth(truth_path).labels
    target = args.target or task.default_target
    run_dir = workdir / name
    resumed = resume and (run_dir / "iterations").is_dir()
    if not resumed:
        shutil.rmtree(run_dir, ignore_errors=True)
    workforce = SimulatedWorkforce(truth, accuracy=args.annotator_accuracy, seed=args.seed,
                                   annotator=getattr(args, "simulated_annotator", None))
    engine = LocalEngine(run_dir / "work", workforce)
    batch = args.batch or DATASETS[args.dataset][2]
    attribute = "label-ref" if task.label_in_file else "label"  # Ground Truth: a label in a file ends in -ref
    settings = {
        "ManifestUri": str(manifest),
        "OutputUri": str(run_dir),
        "JobName": f"bench-{name}",
        "TaskType": task_type,
        "LabelAttributeName": attribute,
        "LabelCategoryConfigUri": str(label_config),
        "HumanBatchSize": count if name == "all-human" else batch,
        "TargetAccuracy": target,
        "PricePerLabel": PRICE,
        "Seed": args.seed,
        **({"MaxIterations": args.max_iterations} if getattr(args, "max_iterations", None) else {}),
        **policy,
    }
    if settings.get("CalibrationMethod") == "oracle":
        settings["OracleTruthUri"] = str(truth_path)
    started = time.monotonic()
    result = engine.run(settings, name=f"{name}-{args.seed}")
    seconds = time.monotonic() - started
    if result.status != "SUCCEEDED":
        raise SystemExit(f"{name}: execution {result.status}: {result.error}: {result.cause}")
    summary = result.summary
    with open(summary["OutputManifestUri"]) as f:
        ev = evaluate(f, attribute, truth, task, classes)
    return {
        "policy": name,
        "task": task_type,
        "items": count,
        "human": summary["HumanLabeled"],
        "auto": summary["AutoLabeled"],
        "unlabeled": summary["Unlabeled"],
        "auto_share": summary["AutoLabeled"] / count,
        # Accuracies, or for boxes mean IoUs (the keys stay for the earlier results they merge with).
        "auto_accuracy": ev.auto_accuracy,
        "dataset_accuracy": ev.dataset_accuracy,
        "target": target,
        "met": ev.auto_accuracy is None or ev.auto_accuracy >= target,
        # Each class's auto-labels: how often a label of that class is right (boxes: its mean IoU).
        "class_accuracy": {name: c["auto_correct"] / c["auto"] for name, c in ev.per_class.items() if c["auto"]},
        "cost": summary["HumanCost"],
        "adjusted": summary.get("HumanAdjusted", 0),
        "clicks": summary.get("HumanClicks"),  # masks clicked by the simulated annotators; None: not counted
        "iterations": summary["Iterations"],
        "seconds": seconds,
        "resumed": resumed,
        "stop": summary["StopReason"],
        "seed": args.seed,
        "curve": curve(run_dir, scorer(task, truth, classes)),
    }


def times_oracle(row, rows) -> str:
    """The row's human labels as a ratio to the oracle's on the same seed ("—" without an oracle row)."""
    oracle = next((r for r in rows if r["policy"] == ORACLE and r.get("seed") == row.get("seed")), None)
    if oracle is None or not oracle["human"]:
        return "—"
    return f"{row['human'] / oracle['human']:.2f}×"


def markdown(rows, dataset: str, target: float) -> str:
    pct = lambda x: "—" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    if task_of(dataset).bounded_mean:
        return detection_markdown(rows, dataset, target)
    out = [
        f"**{dataset}** ({rows[0]['items']:,} items, target {100 * target:.0f} %)",
        "",
        "| policy | human labels | × oracle | % auto-labeled | auto-label accuracy | dataset accuracy | human cost | iterations | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        flag = "" if r["auto_accuracy"] is None or r["auto_accuracy"] >= target else " ⚠ below target"
        out.append(
            f"| {r['policy']} | {r['human']:,} ({pct(r['human'] / r['items'])}) | {times_oracle(r, rows)} | {pct(r['auto_share'])} | "
            f"{pct(r['auto_accuracy'])}{flag} | {pct(r['dataset_accuracy'])} | ${r['cost']:,.2f} | {r['iterations']} | "
            f"{r['seconds'] / 60:.1f} min |"
        )
    return "\n".join(out) + "\n"


def detection_markdown(rows, dataset: str, target: float) -> str:
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    out = [
        f"**{dataset}** ({rows[0]['items']:,} images, target: mean IoU of the auto-labels ≥ {target:g}, 95 % confidence)",
        "",
        "| policy | human labels (adjusted: shown the model's label) | × oracle | % auto-labeled | auto-labels' mean IoU "
        "| target holds | human cost | iterations | wall time |",
        "|---|---:|---:|---:|---:|:---:|---:|---:|---:|",
    ]
    for r in rows:
        iou = "—" if r["auto_accuracy"] is None else f"{r['auto_accuracy']:.3f}"
        holds = "—" if r["auto_accuracy"] is None else ("yes" if r["auto_accuracy"] >= target else "**no**")
        out.append(
            f"| {r['policy']} | {r['human']:,} ({pct(r['human'] / r['items'])}; {r.get('adjusted', 0):,} adjusted"
            + (f"; {r['clicks']:,} clicks" if r.get("clicks") is not None else "") + ") | "
            f"{times_oracle(r, rows)} | "
            f"{pct(r['auto_share'])} | {iou} | {holds} | "
            f"${r['cost']:,.2f} | {r['iterations']} | {r['seconds'] / 60:.1f} min |"
        )
    return "\n".join(out) + "\n"


def plot(rows, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        xs, ys = zip(*r["curve"]) if r["curve"] else ([r["human"]], [r["dataset_accuracy"]])
        ax.plot(xs, ys, marker="o", label=r["policy"])
    boxes = task_of(dataset).bounded_mean
    ax.set_xlabel("human labels")
    ax.set_ylabel("mean IoU over all images (unlabeled: 0)" if boxes else "dataset correctly labeled (share of all items)")
    ax.set_title(f"{dataset}: human labels vs. dataset {'mean IoU' if boxes else 'accuracy'}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--policies", default=None,
                        help="comma-separated subset of " + ", ".join(POLICIES) + " (default: "
                        + ", ".join(DEFAULT_POLICIES) + "; for boxes and masks " + ", ".join(DETECTION_POLICIES) + ")")
    parser.add_argument("--batch", type=int, default=None, help="human batch size (default per dataset)")
    parser.add_argument("--target", type=float, default=None,
                        help="the auto-labels' target (default: the task type's, accuracy 0.95, or mean IoU 0.6 for boxes and 0.7 for masks)")
    parser.add_argument("--max-iterations", type=int, default=None, help="stop each run after this many (quick checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotator-accuracy", type=float, default=1.0)
    parser.add_argument("--simulated-annotator", default=None,
                        help="masks: clicks (default) or painter (the kind the numbers before 2026-11-29 used)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of policies not run now from the dataset's earlier results (same seed)")
    parser.add_argument(
        "--setting", action="append", default=[], metavar="KEY=JSON",
        help="override one of labelloop's settings for an ablation, e.g. ValidationSize=600 (repeatable)",
    )
    parser.add_argument("--data", default=str(REPO / "data"), help="where prepared datasets live")
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "runs"), help="run folders")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"), help="table and plot folder")
    args = parser.parse_args(argv)

    try:
        overrides = parse_settings(args.setting)
    except ValueError as e:
        parser.error(str(e))
    for name in LOOP_POLICIES:
        POLICIES[name] = {**POLICIES[name], **overrides}
    dataset = prepare(args.dataset, Path(args.data), args.seed)
    workdir = Path(args.work) / args.dataset
    task = task_of(args.dataset)
    target = args.target or task.default_target
    policies = args.policies or ",".join(DETECTION_POLICIES if task.bounded_mean else DEFAULT_POLICIES)
    rows = []
    for name in policies.split(","):
        row = run_policy(name, POLICIES[name], dataset, args, workdir)
        rows.append(row)
        print(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'curve'})}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    earlier = out / f"{args.dataset}.json"
    if args.merge and earlier.exists():
        # Rows of policies this invocation did not run, from an earlier one on the same data and seed.
        ran = {r["policy"] for r in rows}
        rows += [r for r in json.loads(earlier.read_text()) if r["policy"] not in ran and r.get("seed", args.seed) == args.seed]
        rows.sort(key=lambda r: list(POLICIES).index(r["policy"]))
    table = markdown(rows, args.dataset, target)
    (out / f"{args.dataset}.md").write_text(table)
    (out / f"{args.dataset}.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / f"{args.dataset}.png", args.dataset)
    print()
    print(table)
    print(f"plot: {out / f'{args.dataset}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
