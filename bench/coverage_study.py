"""Coverage study: does the auto-label accuracy promise hold across seeds?

Runs the default policy through the real local loop on the same 5,000-item Fashion-MNIST subset
with N seeds (sampling, splits and training all change with the seed) and reports the share of
runs whose auto-labels met the target accuracy against the true labels, with an exact
(Clopper-Pearson) 95 % interval. The calibration promises ≥ 95 % of runs.

  python bench/coverage_study.py --seeds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scipy.stats import beta

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare_policies import POLICIES, prepare, run_policy  # noqa: E402


def exact_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist-5k")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--annotator-accuracy", type=float, default=1.0)
    parser.add_argument("--data", default=str(REPO / "data"))
    parser.add_argument("--work", default=str(REPO / "bench" / "results" / "runs"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)

    dataset = prepare(args.dataset, Path(args.data), 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run_args = argparse.Namespace(**{**vars(args), "seed": seed})
        run_args.dataset = args.dataset
        row = run_policy("labelloop", POLICIES["labelloop"], dataset, run_args, Path(args.work) / f"coverage-{args.dataset}" / f"seed-{seed}")
        row.pop("curve")
        row["seed"] = seed
        row["met"] = row["auto_accuracy"] is None or row["auto_accuracy"] >= args.target
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / f"coverage-{args.dataset}.json").write_text(json.dumps(rows, indent=1))

    met = sum(r["met"] for r in rows)
    low, high = exact_interval(met, len(rows))
    pct = lambda x: f"{100 * x:.1f} %"  # noqa: E731
    lines = [
        f"**Coverage, {args.dataset}** ({len(rows)} seeds, target {pct(args.target)}, "
        f"{(time.monotonic() - started) / 60:.0f} min)",
        "",
        "| seed | human labels | % auto-labeled | auto-label accuracy | met |",
        "|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        acc = "—" if r["auto_accuracy"] is None else pct(r["auto_accuracy"])
        lines.append(f"| {r['seed']} | {r['human']:,} | {pct(r['auto_share'])} | {acc} | {'yes' if r['met'] else 'no'} |")
    lines += [
        "",
        f"Target met in **{met} of {len(rows)}** runs ({pct(met / len(rows))}; exact 95 % interval "
        f"{pct(low)} – {pct(high)}). Mean auto-label accuracy "
        f"{pct(sum(r['auto_accuracy'] or 0 for r in rows) / len(rows))}, mean share auto-labeled "
        f"{pct(sum(r['auto_share'] for r in rows) / len(rows))}.",
    ]
    table = "\n".join(lines) + "\n"
    (out / f"coverage-{args.dataset}.md").write_text(table)
    print()
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
