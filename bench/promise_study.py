"""The promise study: how often do a job's final auto-labels miss the target, per calibration setting?

Each run is one synthetic labeling job (bench/promise_sim.py: the product's gate decisions, a
simulated model and truthful people), over a cycle of difficulty profiles and pool sizes; each
setting runs the same seeds. Prints, per setting, the share of runs whose auto-labels (all of
them, at the end of the job) are less accurate than the target, with its exact (Clopper-Pearson)
95 % interval, and the mean human labels; then the misses per profile.

  python bench/promise_study.py --runs 1000 --jobs 2
  python bench/promise_study.py --runs 48 --settings job,point-estimate
  python bench/promise_study.py --runs 700 --settings job-per-class --profiles uneven-classes,easy,hard,binary,five-class,easy-first-hard-tail,flat-at-target

Under `job-per-class` a run misses when any class's auto-labels (by the class they give) miss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

from scipy.stats import beta

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from promise_sim import POOL_SIZES, PROFILES, STUDY_PROFILES, point_estimate_threshold, run_job  # noqa: E402

from labelloop.calibration import calibrate_threshold  # noqa: E402


def _spent_over_iterations(confidences, correct, *, confidence_level, **kw):
    """Proposed, not in the product: each gate tests at 1 - (1 - confidence) / MaxIterations (Bonferroni
    over the job's gates), so that a job that tests 50 times still errs at most 1 - confidence in all."""
    return calibrate_threshold(confidences, correct, confidence_level=1.0 - (1.0 - confidence_level) / 50, **kw)


# name: (execution-input settings, calibrator, split verdicts). point-estimate is no product setting:
# a control that must miss, so a study that cannot fail would show; the last ones are proposed fixes.
# Every setting names its scope, so a change of the product's default changes no row.
CUMULATIVE = {"CalibrationScope": "cumulative"}
SETTINGS = {
    "job": ({"CalibrationScope": "job"}, calibrate_threshold, False),
    "job-full-batches": ({"CalibrationScope": "job", "TailBatch": False}, calibrate_threshold, False),
    # The per-class promise: a run misses when any class's auto-labels miss the target.
    "job-per-class": ({"CalibrationScope": "job", "PerClassPromise": True}, calibrate_threshold, False),
    "iteration": ({"CalibrationScope": "iteration"}, calibrate_threshold, False),
    "cumulative": (CUMULATIVE, calibrate_threshold, False),
    "cumulative-no-tail": ({**CUMULATIVE, "WorstCaseTail": False}, calibrate_threshold, False),
    "cumulative-no-retrain": ({**CUMULATIVE, "RetrainBeforeRoutingGrowth": None}, calibrate_threshold, False),
    "point-estimate": ({"CalibrationScope": "job"}, point_estimate_threshold, False),
    "cumulative-bonferroni": (CUMULATIVE, _spent_over_iterations, False),
    "cumulative-split": (CUMULATIVE, calibrate_threshold, True),
    "cumulative-split-bonferroni": (CUMULATIVE, _spent_over_iterations, True),
}
DEFAULT_SETTINGS = "job,iteration,cumulative"  # job: the product's default


def exact_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return low, high


def plan(runs: int, seed: int, profiles: list[str], sizes: list[int]) -> list[tuple[str, int, int]]:
    """(profile, pool size, seed) of each run: every profile at every size in turn."""
    return [(profiles[r % len(profiles)], sizes[(r // len(profiles)) % len(sizes)], seed + r) for r in range(runs)]


def _one(task: tuple[str, str, int, int]) -> dict:
    setting, profile, total, seed = task
    options, calibrator, split = SETTINGS[setting]
    return {"setting": setting, **run_job(options, PROFILES[profile], total, seed, calibrator, split)}


def study(settings: list[str], runs: list[tuple[str, int, int]], jobs: int = 1, progress: bool = False,
          one=_one) -> dict[str, list[dict]]:
    """Every setting over the same runs; {setting: rows}. one: runs one (setting, profile, size, seed)."""
    tasks = [(s, p, n, seed) for s in settings for p, n, seed in runs]
    rows = []
    with get_context("fork").Pool(jobs) if jobs > 1 else _Serial() as pool:
        for row in pool.imap(one, tasks, chunksize=4):
            rows.append(row)
            if progress and len(rows) % 200 == 0:
                print(f"{len(rows)} of {len(tasks)} runs", file=sys.stderr, flush=True)
    return {s: [r for r in rows if r["setting"] == s] for s in settings}


class _Serial:
    """The pool's imap in this process (one job: no fork)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items, chunksize=1):
        return map(fn, items)


def summary(rows: list[dict]) -> dict:
    n, missed, model_missed = len(rows), sum(r["missed"] for r in rows), sum(r["model_missed"] for r in rows)
    low, high = exact_interval(missed, n)
    model_low, model_high = exact_interval(model_missed, n)
    with_auto = [r for r in rows if r["auto"]]
    return {
        "runs": n, "missed": missed, "miss_rate": missed / n, "low": low, "high": high,
        "model_missed": model_missed, "model_miss_rate": model_missed / n, "model_low": model_low, "model_high": model_high,
        "human": sum(r["human"] for r in rows) / n,
        "human_share": sum(r["human"] / r["items"] for r in rows) / n,
        "with_auto": len(with_auto),
        "accuracy": sum(r["accuracy"] for r in with_auto) / len(with_auto) if with_auto else None,
        "lowest": min((r["accuracy"] for r in with_auto), default=None),
    }


def table(results: dict[str, list[dict]], seconds: float, jobs: int, title: str = "Promise study") -> str:
    pct = lambda x: "—" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    first = next(iter(results.values()))
    lines = [
        f"{title}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {len(first)} runs per setting, "
        f"target 95 % at 95 % confidence, {seconds / 60:.1f} min with {jobs} process(es).",
        "",
        "| setting | runs | missed | miss rate | exact 95 % interval | model's accuracy missed | exact 95 % interval "
        "| mean human labels | human share | runs with auto-labels | mean auto-label accuracy | lowest |",
        "|---|---:|---:|---:|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        s = summary(rows)
        lines.append(f"| {name} | {s['runs']} | {s['missed']} | {pct(s['miss_rate'])} | {pct(s['low'])} – {pct(s['high'])} "
                     f"| {s['model_missed']} ({pct(s['model_miss_rate'])}) | {pct(s['model_low'])} – {pct(s['model_high'])} "
                     f"| {s['human']:,.0f} | {pct(s['human_share'])} | {s['with_auto']} | {pct(s['accuracy'])} "
                     f"| {pct(s['lowest'])} |")
    profiles = list(dict.fromkeys(r["profile"] for r in first))
    lines += ["", "Misses per profile (auto-labels missed, model's accuracy missed / runs with auto-labels):", "",
              "| setting | " + " | ".join(profiles) + " |", "|---|" + "---:|" * len(profiles)]
    for name, rows in results.items():
        cells = []
        for p in profiles:
            mine = [r for r in rows if r["profile"] == p]
            cells.append(f"{sum(r['missed'] for r in mine)}, {sum(r['model_missed'] for r in mine)} "
                         f"/ {sum(1 for r in mine if r['auto'])}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out: str | None, name: str, text: str, results: object) -> None:
    """The printed table as OUT/NAME.md and the runs as OUT/NAME.json (nothing without --out)."""
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(text)
        (folder / f"{name}.json").write_text(json.dumps(results, indent=0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs per setting")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help=f"comma-separated, of {sorted(SETTINGS)}")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    parser.add_argument("--seed", type=int, default=0, help="first run's seed")
    parser.add_argument("--profiles", default=",".join(STUDY_PROFILES), help=f"comma-separated, of {sorted(PROFILES)}")
    parser.add_argument("--sizes", default=",".join(map(str, POOL_SIZES)), help="pool sizes, comma-separated")
    parser.add_argument("--out", default=None, help="folder for promise-study.md and .json")
    args = parser.parse_args(argv)
    settings = args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS] + [p for p in args.profiles.split(",") if p not in PROFILES]
    if unknown:
        parser.error(f"unknown setting or profile: {', '.join(unknown)}")
    runs = plan(args.runs, args.seed, args.profiles.split(","), [int(n) for n in args.sizes.split(",")])
    started = time.monotonic()
    results = study(settings, runs, args.jobs, progress=True)
    text = table(results, time.monotonic() - started, args.jobs)
    print(text)
    write_results(args.out, "promise-study", text, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
