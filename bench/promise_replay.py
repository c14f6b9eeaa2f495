"""Replays of real runs: the promise study's jobs, with a real model's stored predictions instead of a simulated one.

A replay needs the model's answer for every item at every iteration, and a re-seeded replay keeps
different items open than the run it replays. So the predictions are stored for the whole pool
once, at a handful of training-set sizes ("snapshots"), by the product's own algorithm: the
training job (algorithms/<task>/train.py, with a validation channel for its temperature) and the
batch transform (inference.py) run through the local SageMaker binding, and the product reads
their output (`steps.predictions.predictions`). Every item's stored prediction is out of sample:
the pool is split in two halves, and each half is predicted by a model trained on n items of the
other half (validation channel: min(400, n) further items of that half).

Then each replay is one job of bench/promise_sim.py (the product's gate decisions: validation
draws, calibration, routing, retiring, stopping, all re-seeded per replay) whose model at an
iteration is the snapshot whose training size is nearest (on a log scale) to the human labels the
job has trained on. The truth is known, so a replay's auto-labels are scored exactly.

The approximation: a snapshot of size n is a model trained on n random items, not on the items
the job routed to people (which are chosen where the model is unsure, so the real model at n is
usually better there), and between two snapshot sizes the model does not improve.

  python bench/promise_replay.py --runs 1000 --settings job,iteration,cumulative
  python bench/promise_replay.py --datasets digits --runs 60      # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from compare_policies import DATASETS as BENCH_DATASETS  # noqa: E402
from compare_policies import prepare  # noqa: E402
from promise_sim import Profile, run_job  # noqa: E402
from promise_study import SETTINGS, study, table, write_results  # noqa: E402

from labelloop import tasks  # noqa: E402
from labelloop.algorithm_source import package_source  # noqa: E402
from labelloop.datasets import load_truth  # noqa: E402
from labelloop.local.sagemaker_jobs import LocalSageMaker  # noqa: E402
from labelloop.manifest import item_key  # noqa: E402
from labelloop.steps.predictions import predictions  # noqa: E402

# Training-set sizes per dataset: up to about what the benchmark runs train on, and at most half
# the pool less the validation channel (each half is predicted by a model of the other).
SNAPSHOT_SIZES = {
    "digits": (100, 200, 400),
    "fashion-mnist-5k": (100, 200, 400, 800, 1600),
    "spamassassin": (100, 200, 400, 800, 1600, 2400),
}
VALIDATION_CHANNEL = 400
FOLDS = 2
ROLE = "arn:aws:iam::123456789012:role/replay"


def _write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def _fit_and_predict(jobs: LocalSageMaker, work: Path, name: str, source: Path, task: str, k: int, seed: int,
                     train_lines: list[dict], val_lines: list[dict], pool_lines: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """One training job and one batch transform, as the state machine asks for them; (ids, probabilities)."""
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    _write_lines(folder / "train" / "train.jsonl", train_lines)
    _write_lines(folder / "validation" / "validation.jsonl", val_lines)
    _write_lines(folder / "pool" / "pool.jsonl", pool_lines)
    channel = lambda c: {"ChannelName": c, "ContentType": "application/jsonlines",  # noqa: E731
                         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(folder / c),
                                                         "S3DataDistributionType": "FullyReplicated"}}}
    hps = {"label-attribute": "label", "num-classes": k, "seed": seed, "sagemaker_program": "train.py",
           "sagemaker_submit_directory": str(source)}
    trained = jobs.create_training_job({
        "TrainingJobName": f"{name}-train", "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "local", "TrainingInputMode": "File"},
        "HyperParameters": {key: json.dumps(v) for key, v in hps.items()},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": str(folder / "model")},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    })
    if trained["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"{name}: training failed: {trained.get('FailureReason')}")
    jobs.create_model({"ModelName": f"{name}-model", "ExecutionRoleArn": ROLE, "PrimaryContainer": {
        "Image": "local", "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"],
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(source)}}})
    done = jobs.create_transform_job({
        "TransformJobName": f"{name}-infer", "ModelName": f"{name}-model", "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(folder / "pool")}},
                           "ContentType": "application/jsonlines", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": str(folder / "predictions"), "Accept": "application/jsonlines",
                            "AssembleWith": "Line"},
        "DataProcessing": {"JoinSource": "Input"},
        "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"},
    })
    if done["TransformJobStatus"] != "Completed":
        raise SystemExit(f"{name}: transform failed: {done.get('FailureReason')}")
    pool, _ = predictions(str(folder / "predictions"), tasks.get(task), k, len(pool_lines))
    return pool.ids, pool.probs


def snapshots(dataset: str, data_root: Path, cache: Path, seed: int = 0) -> Path:
    """Store every item's out-of-sample class probabilities at each snapshot size (once; cached)."""
    out = cache / f"{dataset}-seed{seed}.npz"
    if out.exists():
        return out
    manifest, truth_path, _, task, classes, count = prepare(dataset, data_root, seed)
    truth = load_truth(truth_path)
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    labels = np.array([classes.index(truth[item_key(line)]) for line in lines])
    ids = lambda idx: [{"labelloop-id": int(i), **lines[i]} for i in idx]  # noqa: E731
    k, sizes = len(classes), SNAPSHOT_SIZES[dataset]
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(count)
    fold = np.empty(count, dtype=int)
    fold[order] = np.arange(count) % FOLDS
    work = cache / f"{dataset}-work"
    source_dir = work / "source"
    source = package_source(task, source_dir)
    jobs = LocalSageMaker(work / "jobs")
    probs = np.zeros((len(sizes), count, k), dtype=np.float32)
    started = time.monotonic()
    for f in range(FOLDS):
        others = order[fold[order] != f]  # the other half, in a random order: nested training sets
        mine = np.sort(np.nonzero(fold == f)[0])
        for s, n in enumerate(sizes):
            n_val = min(VALIDATION_CHANNEL, n)
            if n + n_val > len(others):
                raise SystemExit(f"{dataset}: a half of {len(others)} items cannot train {n} and validate {n_val}")
            train = [{**line, "label": int(labels[line["labelloop-id"]])} for line in ids(others[:n])]
            val = [{**line, "label": int(labels[line["labelloop-id"]])} for line in ids(others[-n_val:])]
            got, p = _fit_and_predict(jobs, work, f"{dataset}-f{f}-n{n}", source, task, k, seed + s, train, val,
                                      ids(mine))
            probs[s, got] = p
            right = float((p.argmax(1) == labels[got]).mean())
            print(f"{dataset}: half {f}, {n} training items: accuracy {right:.3f} "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, probs=probs, truth=labels, sizes=np.array(sizes), classes=np.array(classes))
    shutil.rmtree(work, ignore_errors=True)
    return out


class ReplayModel:
    """SimulatedModel's interface over stored predictions: the snapshot nearest the job's training size."""

    def __init__(self, name: str, stored: dict, rng: np.random.Generator):
        self.probs, self.truth, self.sizes = stored["probs"], stored["truth"], stored["sizes"]
        self.profile = Profile(name, int(self.probs.shape[2]), ((1.0, 0.0, 0.0),), rate=0.0)
        self.witness = rng.random(len(self.truth)) < 0.5  # only the split-verdicts proposal reads it
        self.rows = self.probs[0]
        self.p_right = np.zeros(len(self.truth))

    def snapshot(self, train_count: int) -> int:
        return int(np.argmin(np.abs(np.log(self.sizes) - np.log(max(1, train_count)))))

    def predict(self, train_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.rows = self.probs[self.snapshot(train_count)]
        predicted, conf = self.rows.argmax(axis=1), self.rows.max(axis=1)  # as the task type reads them
        correct = predicted == self.truth
        self.p_right = correct.astype(float)  # a real model's chance of being right is not known: its outcome
        return conf.astype(float), correct, predicted

    def probabilities(self, idx: np.ndarray, conf: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        return self.rows[idx].astype(float)


_STORED: dict[str, dict] = {}  # dataset -> its snapshots, loaded once per process (forked workers share them)


def _replay(task: tuple[str, str, int, int]) -> dict:
    setting, dataset, _, seed = task
    options, calibrator, split = SETTINGS[setting]
    stored = _STORED[dataset]
    model = ReplayModel(dataset, stored, np.random.default_rng([seed, 11]))
    batch = BENCH_DATASETS[dataset][2]  # the benchmark's human batch for this dataset
    row = run_job({**options, "HumanBatchSize": batch}, model.profile, len(stored["truth"]), seed, calibrator, split,
                  model=model)
    return {"setting": setting, **row}


def replay_plan(runs: int, seed: int, datasets: list[str]) -> list[tuple[str, int, int]]:
    """(dataset, pool size, seed) of each replay: the datasets in turn."""
    return [(datasets[r % len(datasets)], len(_STORED[datasets[r % len(datasets)]]["truth"]), seed + r)
            for r in range(runs)]


def load(datasets: list[str], data_root: Path, cache: Path) -> None:
    for name in datasets:
        with np.load(snapshots(name, data_root, cache)) as stored:
            _STORED[name] = {key: stored[key] for key in ("probs", "truth", "sizes")}


def snapshot_table(datasets: list[str]) -> str:
    lines = ["| dataset | items | training items → accuracy on the pool |", "|---|---:|---|"]
    for name in datasets:
        s = _STORED[name]
        acc = [float((s["probs"][i].argmax(1) == s["truth"]).mean()) for i in range(len(s["sizes"]))]
        lines.append(f"| {name} | {len(s['truth']):,} | "
                     + ", ".join(f"{n:,} → {100 * a:.1f} %" for n, a in zip(s["sizes"], acc)) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="replays per setting, spread over the datasets")
    parser.add_argument("--settings", default="job,iteration,cumulative", help=f"comma-separated, of {sorted(SETTINGS)}")
    parser.add_argument("--datasets", default=",".join(SNAPSHOT_SIZES), help=f"comma-separated, of {list(SNAPSHOT_SIZES)}")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the replays")
    parser.add_argument("--seed", type=int, default=0, help="first replay's seed")
    parser.add_argument("--data", default=str(REPO / "data"), help="where prepared datasets live")
    parser.add_argument("--cache", default=str(REPO / "bench" / "results" / "replay"), help="stored snapshots")
    parser.add_argument("--out", default=None, help="folder for promise-replay.md and .json")
    args = parser.parse_args(argv)
    settings, datasets = args.settings.split(","), args.datasets.split(",")
    unknown = [s for s in settings if s not in SETTINGS] + [d for d in datasets if d not in SNAPSHOT_SIZES]
    if unknown:
        parser.error(f"unknown setting or dataset: {', '.join(unknown)}")
    load(datasets, Path(args.data), Path(args.cache))
    started = time.monotonic()
    results = study(settings, replay_plan(args.runs, args.seed, datasets), args.jobs, progress=True, one=_replay)
    text = table(results, time.monotonic() - started, args.jobs, title="Promise replays") + "\n" + snapshot_table(datasets)
    print(text)
    write_results(args.out, "promise-replay", text, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
