"""Manifest scale: seconds and peak memory of each manifest-processing step at 100k and 1M lines.

Generates an image manifest of N lines (the referenced files need not exist: no step opens
them), then runs each Lambda step the way the state machine does, each in a fresh process so
its peak RSS is its own: Bootstrap, SampleForHumans, MergeHumanLabels (one 1,000-item batch),
SplitValidation, CalibrateThreshold, GateAndRoute (predictions for every unlabeled item) and
ExportOutput. Targets: ≤ 60 s and ≤ 512 MiB per step, time growing linearly with N.

  python bench/manifest_scale.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLASSES = [f"class-{i}" for i in range(10)]
DEPLOYMENT = {"Algorithms": {"image-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src"}}}


def _child(step: str, event_path: str, result_path: str, conn) -> None:
    from labelloop import steps

    event = json.loads(Path(event_path).read_text())
    started = time.perf_counter()
    result = getattr(steps, step)(event)
    seconds = time.perf_counter() - started
    Path(result_path).write_text(json.dumps(result))
    conn.send((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_step(step: str, event: dict, work: Path) -> tuple[dict, float, float]:
    event_path, result_path = work / f"{step}.event.json", work / f"{step}.result.json"
    event_path.write_text(json.dumps(event))
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_child, args=(step, str(event_path), str(result_path), child))
    proc.start()
    seconds, rss = parent.recv()
    proc.join()
    return json.loads(result_path.read_text()), seconds, rss


def write_predictions(src: Path, dst: Path, rng, confident_share: float = 0.6) -> None:
    """What batch transform writes: each input line joined with probabilities."""
    import numpy as np

    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            record = json.loads(line)
            p = np.full(10, 0.01)
            top = int(rng.integers(10))
            p[top] = 0.91 if rng.random() < confident_share else 0.3
            p /= p.sum()
            record["SageMakerOutput"] = {"probabilities": p.round(6).tolist()}
            out.write(json.dumps(record) + "\n")


def bench_size(n: int, root: Path) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    work = root / f"n{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    manifest = work / "manifest.jsonl"
    with open(manifest, "w") as f:
        for i in range(n):
            f.write(json.dumps({"source-ref": f"s3://bucket/images/{i // 10000:03d}/{i:07d}.png"}) + "\n")
    settings = {
        "ManifestUri": str(manifest), "OutputUri": str(work / "out"), "JobName": "scale",
        "TaskType": "image-classification", "LabelAttributeName": "label", "LabelCategories": CLASSES,
        "HumanBatchSize": 1000, "ValidationSize": 400,
    }
    rows = []

    def step(name, event):
        result, seconds, rss = run_step(name, event, work)
        rows.append({"lines": n, "step": name, "seconds": seconds, "peak_rss_mib": rss})
        print(f"{n:>9,} {name:<20} {seconds:7.1f} s {rss:7.0f} MiB", flush=True)
        return result

    boot = step("bootstrap", {"Input": settings, "ExecutionName": "scale-1", "Deployment": DEPLOYMENT})
    config = boot["config"]
    state = step("sample_for_humans", boot)
    batch = state["HumanBatch"]
    out = Path(batch["OutputUri"]) / batch["LabelingJobName"] / "manifests" / "output" / "output.manifest"
    out.parent.mkdir(parents=True)
    with open(batch["ManifestUri"]) as f, open(out, "w") as o:
        for line in f:
            record = json.loads(line)
            c = int(rng.integers(10))
            record.update(label=c, **{"label-metadata": {"class-name": CLASSES[c], "human-annotated": "yes"}})
            o.write(json.dumps(record) + "\n")
    state = step("merge_human_labels", {"config": config, "state": state, "labeling": {"OutputManifestUri": str(out)}})
    iteration = step("split_validation", {"config": config, "state": state})
    for kind, channel in (("ValidationTransform", "channels/validation/validation.manifest"),
                          ("UnlabeledTransform", "transform-input/unlabeled/unlabeled.manifest")):
        base = Path(config["Settings"]["OutputUri"]) / "iterations" / "001"
        write_predictions(base / channel, Path(iteration[kind]["OutputUri"]) / (Path(channel).name + ".out"), rng)
    cal = step("calibrate_threshold", {"config": config, "state": state, "iteration": iteration})
    cal = {**cal, "Method": "lower-bound", "Threshold": 0.5, "LowerBound": 0.96, "Support": 300}  # auto-label the confident 60 %
    state = step("gate_and_route", {"config": config, "state": state, "iteration": iteration, "calibration": cal, "training": {}})
    step("export_output", {"config": config, "state": state, "ExecutionName": "scale-1"})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--work", default="/tmp/labelloop-scale")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        rows += bench_size(n, Path(args.work))
    by = {(r["lines"], r["step"]): r for r in rows}
    steps = list(dict.fromkeys(r["step"] for r in rows))
    head = "| step | " + " | ".join(f"{n:,} lines: s / MiB" for n in sizes) + (" | time ratio |" if len(sizes) > 1 else " |")
    lines = [head, "|---|" + "---:|" * (len(sizes) + (len(sizes) > 1))]
    for s in steps:
        cells = [f"{by[(n, s)]['seconds']:.1f} / {by[(n, s)]['peak_rss_mib']:.0f}" for n in sizes]
        ratio = f" {by[(sizes[-1], s)]['seconds'] / max(by[(sizes[0], s)]['seconds'], 1e-3):.1f}× |" if len(sizes) > 1 else ""
        lines.append(f"| {s} | " + " | ".join(cells) + " |" + ratio)
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest-scale.md").write_text(table)
    print()
    print(table)
    worst = max(rows, key=lambda r: r["seconds"])
    print(f"slowest: {worst['step']} at {worst['lines']:,} lines, {worst['seconds']:.1f} s; "
          f"largest: {max(r['peak_rss_mib'] for r in rows):.0f} MiB (targets: 60 s, 512 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
