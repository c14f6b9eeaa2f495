"""Compare labeling policies on the same data, in one run, through the real local loop.

Policies:
  all-human   every item goes to humans (no model, no auto-labels)
  sample      the public AWS Step Functions sample: auto-label when top-1 minus top-2 > 0.5,
              random human batches, validation = first 10 % of the first batch, never refreshed
  labelloop   this project's default: lower-bound calibration (job scope), adaptive validation,
              least-confidence routing with a random share and a class-balance guard
  labelloop-cumulative
              the same with the cumulative calibration scope, the default until 2026-11-29
              (docs/promise.md: not covered by the promise); only when asked for by --policies

Each run executes statemachine/active_learning.asl.json with the local engine and simulated
annotators (always right unless --annotator-accuracy says otherwise), then scores the output
manifest against the true labels. Writes a Markdown table and a PNG plot.

  python bench/compare_policies.py --dataset fashion-mnist-5k
  python bench/compare_policies.py --dataset fashion-mnist --batch 2000
  python bench/compare_policies.py --dataset spamassassin
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelloop.datasets import PREPARERS, load_truth  # noqa: E402
from labelloop.evaluation import evaluate  # noqa: E402
from labelloop.local.engine import LocalEngine  # noqa: E402
from labelloop.local.workforce import SimulatedWorkforce  # noqa: E402

PRICE = 0.08  # Ground Truth's list price per classification label per worker

DATASETS = {
    # name: (preparer, limit, default human batch)
    "digits": ("digits", None, 150),
    "fashion-mnist-5k": ("fashion-mnist", 5000, 250),
    "fashion-mnist": ("fashion-mnist", None, 2000),
    "spamassassin": ("spamassassin", None, 200),
}

POLICIES = {
    "all-human": {"CalibrationMethod": "none", "SelectionStrategy": "random", "ValidationPolicy": "frozen-first"},
    "sample": {
        "CalibrationMethod": "fixed-margin",
        "MarginThreshold": 0.5,
        "SelectionStrategy": "random",
        "ValidationPolicy": "frozen-first",
        "ValidationFraction": 0.1,
        "ClassBalance": False,
        "RandomFraction": 0.0,
    },
    "labelloop": {},
    "labelloop-cumulative": {"CalibrationScope": "cumulative"},
}
DEFAULT_POLICIES = ("all-human", "sample", "labelloop")


def prepare(name: str, data_root: Path, seed: int):
    preparer, limit, _ = DATASETS[name]
    out = data_root / name
    if (out / "manifest.jsonl").exists() and (out / "truth.jsonl").exists() and (out / "labels.json").exists():
        from labelloop.datasets import read_label_config

        classes = read_label_config(out / "labels.json")
        task = "text-classification" if preparer == "spamassassin" else "image-classification"
        count = sum(1 for _ in open(out / "manifest.jsonl"))
        return out / "manifest.jsonl", out / "truth.jsonl", out / "labels.json", task, classes, count
    ds = PREPARERS[preparer](out, limit=limit, seed=seed)
    return ds.manifest, ds.truth, ds.label_config, ds.task_type, ds.class_names, ds.count


def curve(run_dir: Path, truth: dict[str, str], classes: list[str]) -> list[tuple[int, float]]:
    """(human labels, share of the dataset correctly labeled) after each iteration."""
    from labelloop.manifest import item_key

    points = []
    for folder in sorted(run_dir.glob("iterations/[0-9]*")):
        ledgers = [folder / f"ledger-{stage}.jsonl" for stage in ("auto", "human")]
        ledger_file = next((f for f in ledgers if f.exists()), None)
        if ledger_file is None:
            continue
        human = correct = total = 0
        with open(ledger_file) as f:
            for line in f:
                record = json.loads(line)
                total += 1
                label = record["label"]
                if label:
                    human += label["human"]
                    correct += truth.get(item_key(record["source"])) == classes[label["class"]]
        points.append((human, correct / total))
    return sorted(set(points))


def run_policy(name, policy, dataset, args, workdir: Path):
    manifest, truth_path, label_config, task, classes, count = dataset
    truth = load_truth(truth_path)
    run_dir = workdir / name
    shutil.rmtree(run_dir, ignore_errors=True)
    workforce = SimulatedWorkforce(truth, accuracy=args.annotator_accuracy, seed=args.seed)
    engine = LocalEngine(run_dir / "work", workforce)
    batch = args.batch or DATASETS[args.dataset][2]
    settings = {
        "ManifestUri": str(manifest),
        "OutputUri": str(run_dir),
        "JobName": f"bench-{name}",
        "TaskType": task,
        "LabelAttributeName": "label",
        "LabelCategoryConfigUri": str(label_config),
        "HumanBatchSize": count if name == "all-human" else batch,
        "TargetAccuracy": args.target,
        "Seed": args.seed,
        **policy,
    }
    started = time.monotonic()
    result = engine.run(settings, name=f"{name}-{args.seed}")
    seconds = time.monotonic() - started
    if result.status != "SUCCEEDED":
        raise SystemExit(f"{name}: execution {result.status}: {result.error}: {result.cause}")
    summary = result.summary
    with open(summary["OutputManifestUri"]) as f:
        ev = evaluate(f, "label", truth)
    return {
        "policy": name,
        "items": count,
        "human": summary["HumanLabeled"],
        "auto": summary["AutoLabeled"],
        "unlabeled": summary["Unlabeled"],
        "auto_share": summary["AutoLabeled"] / count,
        "auto_accuracy": ev.auto_accuracy,
        "dataset_accuracy": ev.dataset_accuracy,
        "cost": summary["HumanLabeled"] * PRICE * settings.get("WorkersPerObject", 1),
        "iterations": summary["Iterations"],
        "seconds": seconds,
        "stop": summary["StopReason"],
        "seed": args.seed,
        "curve": curve(run_dir, truth, classes),
    }


def markdown(rows, dataset: str, target: float) -> str:
    pct = lambda x: "—" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    out = [
        f"**{dataset}** ({rows[0]['items']:,} items, target {100 * target:.0f} %)",
        "",
        "| policy | human labels | % auto-labeled | auto-label accuracy | dataset accuracy | human cost | iterations | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        flag = "" if r["auto_accuracy"] is None or r["auto_accuracy"] >= target else " ⚠ below target"
        out.append(
            f"| {r['policy']} | {r['human']:,} ({pct(r['human'] / r['items'])}) | {pct(r['auto_share'])} | "
            f"{pct(r['auto_accuracy'])}{flag} | {pct(r['dataset_accuracy'])} | ${r['cost']:,.2f} | {r['iterations']} | "
            f"{r['seconds'] / 60:.1f} min |"
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
    ax.set_xlabel("human labels")
    ax.set_ylabel("dataset correctly labeled (share of all items)")
    ax.set_title(f"{dataset}: human labels vs. dataset accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES),
                        help="comma-separated subset of " + ", ".join(POLICIES))
    parser.add_argument("--batch", type=int, default=None, help="human batch size (default per dataset)")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotator-accuracy", type=float, default=1.0)
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

    overrides = {}
    for item in args.setting:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--setting {item!r}: expected KEY=JSON")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    for name in ("labelloop", "labelloop-cumulative"):
        POLICIES[name] = {**POLICIES[name], **overrides}
    dataset = prepare(args.dataset, Path(args.data), args.seed)
    workdir = Path(args.work) / args.dataset
    rows = []
    for name in args.policies.split(","):
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
    table = markdown(rows, args.dataset, args.target)
    (out / f"{args.dataset}.md").write_text(table)
    (out / f"{args.dataset}.json").write_text(json.dumps(rows, indent=1))
    plot(rows, out / f"{args.dataset}.png", args.dataset)
    print()
    print(table)
    print(f"plot: {out / f'{args.dataset}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
