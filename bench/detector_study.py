"""How well the object detector labels boxes, and which image confidence ranks its labels best.

    python bench/detector_study.py --data data/fmd --count 2000 --sizes 200,400,800 --holdout 500

Prepares `fashion-mnist-detection` into --data (unless it is there), trains
`algorithms/object_detection/train.py` the way SageMaker runs it (a subprocess with the SM_*
environment, one thread) on the first N canvases for each N in --sizes, answers the last
--holdout canvases through inference.py's handlers (a batch-transform request), and prints:

- the mean per-image IoU (Ground Truth's definition, `image_iou`) of the label made of the
  boxes scoring at least each cutoff, and the training time;
- for the best cutoff, how well each image-confidence signal ranks the images' IoU: Spearman's
  rho, and the mean IoU of the top 50 % and 25 % of images by the signal.

This IoU is the bench's own; the product's lives with the object-detection task type.

Measured (2026-11-29, 2,000 canvases, seed 0, test = the last 500, 1,500 training; one thread
on a shared 2-core machine): mean IoU 0.514 at the best cutoff 0.20 (first stage alone: 0.431),
the most confident half 0.635 and quarter 0.723 by mean kept x (1 - best rejected) (first stage
alone: 0.539 / 0.640). Tables and the ablations: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelloop.algorithm_source import source_files  # noqa: E402

CUTOFFS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def box_iou(a, b) -> float:
    """IoU of two (left, top, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def image_iou(predicted: list[dict], truth: list[dict]) -> float:
    """Ground Truth's per-image IoU: per class present in either list, predictions in score
    order each take the unmatched true box they overlap most (IoU > 0); a prediction that
    finds none and a true box left over each add an IoU of 0; the class's IoU is the mean,
    the image's the mean over classes. No boxes on either side is a perfect 1."""
    classes = sorted({b["class_id"] for b in predicted} | {b["class_id"] for b in truth})
    if not classes:
        return 1.0
    per_class = []
    for k in classes:
        preds = sorted((b for b in predicted if b["class_id"] == k), key=lambda b: -b.get("score", 1.0))
        free = [(t["left"], t["top"], t["width"], t["height"]) for t in truth if t["class_id"] == k]
        values = []
        for p in preds:
            box = (p["left"], p["top"], p["width"], p["height"])
            overlaps = [box_iou(box, t) for t in free]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] > 0:
                values.append(overlaps[best])
                free.pop(best)
            else:
                values.append(0.0)
        values.extend([0.0] * len(free))
        per_class.append(float(np.mean(values)))
    return float(np.mean(per_class))


def signals(boxes: list[dict], cutoff: float) -> dict[str, float]:
    """Image-confidence candidates for the label made of the boxes scoring >= cutoff."""
    kept = [b["score"] for b in boxes if b["score"] >= cutoff]
    rejected = max((b["score"] for b in boxes if b["score"] < cutoff), default=0.0)
    margin_kept = min(((s - cutoff) / (1 - cutoff) for s in kept), default=1.0)
    margin_rejected = (cutoff - rejected) / cutoff
    return {
        "mean kept score": float(np.mean(kept)) if kept else 0.0,
        "min kept score": min(kept) if kept else 0.0,
        "max kept score": max(kept) if kept else 0.0,
        "margin (kept and best rejected)": min(margin_kept, margin_rejected),
        "min(min kept, 1 - best rejected)": min(kept + [1.0 - rejected]),
        "mean kept x (1 - best rejected)": (float(np.mean(kept)) if kept else 0.0) * (1.0 - rejected),
        "set probability": float(np.prod(kept) * np.prod([1 - b["score"] for b in boxes if b["score"] < cutoff])),
    }


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            tie = v == value
            r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def source_dir(work: Path) -> Path:
    """The flattened source dir (algorithms/common + algorithms/object_detection), as packaged."""
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for file_name, path in source_files("object-detection").items():
        shutil.copyfile(path, src / file_name)
    return src


def train(src: Path, work: Path, lines: list[str], seed: int, previous: Path | None = None) -> tuple[Path, float, float]:
    """The model folder, the training's wall seconds and its CPU seconds (user + system); with
    `previous`, training continues from that model (the loop's `model` channel)."""
    channel = work / "train"
    shutil.rmtree(channel, ignore_errors=True)
    channel.mkdir(parents=True)
    (channel / "train.manifest").write_text("".join(lines), encoding="utf-8")
    model = work / f"model-{len(lines)}"
    shutil.rmtree(model, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(SM_MODEL_DIR=str(model), SM_CHANNEL_TRAIN=str(channel), SM_NUM_CPUS="1",
               SM_HPS=json.dumps({"num-classes": 10, "seed": seed}), SM_OUTPUT_FAILURE=str(work / "failure"))
    if previous is not None:
        env["SM_CHANNEL_MODEL"] = str(previous)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run([sys.executable, "train.py"], cwd=src, env=env, capture_output=True, text=True)
    elapsed, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(proc.stdout.strip().splitlines()[-2], flush=True)
    return model, elapsed, cpu


def predict(src: Path, model: Path, lines: list[dict]) -> list[list[dict]]:
    sys.path.insert(0, str(src))
    try:
        spec = importlib.util.spec_from_file_location("detector_inference", src / "inference.py")
        inference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(inference)
        net = inference.model_fn(str(model))
        answers = []
        for start in range(0, len(lines), 100):
            body = "".join(json.dumps({"source-ref": line["source-ref"]}) + "\n" for line in lines[start : start + 100])
            out = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/jsonlines"), net), "application/jsonlines")
            answers.extend(json.loads(text)["boxes"] for text in out.splitlines())
        return answers
    finally:
        sys.path.remove(str(src))


def study(answers: list[list[dict]], truths: list[list[dict]]) -> tuple[float, dict]:
    by_cutoff = {}
    for cutoff in CUTOFFS:
        by_cutoff[cutoff] = np.array([image_iou([b for b in a if b["score"] >= cutoff], t) for a, t in zip(answers, truths)])
    return max(by_cutoff, key=lambda c: by_cutoff[c].mean()), by_cutoff


def report(size: int, answers: list[list[dict]], truths: list[list[dict]], rows: list[dict], cutoffs=()) -> tuple[float, dict]:
    """Print the cutoff table and, at the best cutoff (and any in `cutoffs`), the signals' ranking."""
    best, by_cutoff = study(answers, truths)
    print("  mean IoU by cutoff  " + "  ".join(f"{c:.2f}:{v.mean():.3f}" for c, v in by_cutoff.items()))
    for cutoff in dict.fromkeys((best, *cutoffs)):
        ious = by_cutoff[cutoff]
        n = len(ious)
        print(f"  cutoff {cutoff:.2f}{' (best)' if cutoff == best else ''}: mean IoU {ious.mean():.3f}; "
              f"images with IoU >= 0.6: {np.mean(ious >= 0.6):.1%}")
        sig = [signals(a, cutoff) for a in answers]
        for name in sig[0]:
            values = np.array([s[name] for s in sig])
            order = np.argsort(-values, kind="stable")
            top50, top25 = ious[order[: n // 2]].mean(), ious[order[: n // 4]].mean()
            rho = spearman(values, ious)
            print(f"    {name:34s} spearman {rho:+.3f}  top-50% IoU {top50:.3f}  top-25% IoU {top25:.3f}")
            rows.append({"size": size, "cutoff": cutoff, "signal": name, "spearman": rho, "top50": top50, "top25": top25})
    return best, by_cutoff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/fashion-mnist-detection")
    parser.add_argument("--work", default="runs/detector-study")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sizes", default="200,400,800")
    parser.add_argument("--holdout", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-chain", action="store_true",
                        help="each size continues from the previous size's model, as the loop's iterations do")
    parser.add_argument("--reanalyse", action="store_true",
                        help="no training: report on the answers-N.jsonl an earlier run left in --work")
    parser.add_argument("--also-cutoffs", default="0.5", help="cutoffs to rank the signals at besides the best")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    data, work = Path(args.data), Path(args.work)
    truth_path = data / "truth.manifest"
    if not truth_path.exists():
        from labelloop.datasets import PREPARERS

        PREPARERS["fashion-mnist-detection"](data, limit=args.count, seed=args.seed)
    raw = truth_path.read_text(encoding="utf-8").splitlines(keepends=True)
    test = [json.loads(line) for line in raw[-args.holdout :]]
    truths = [line["label"]["annotations"] for line in test]
    also = tuple(float(c) for c in args.also_cutoffs.split(",") if c)
    rows: list[dict] = []
    if args.reanalyse:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"\n{size} training images")
            answers = [json.loads(line) for line in (work / f"answers-{size}.jsonl").read_text().splitlines()]
            report(size, answers, truths, rows, also)
        return
    src = source_dir(work)
    previous = None
    for size in (int(s) for s in args.sizes.split(",")):
        model, seconds, cpu = train(src, work, raw[:size], args.seed, previous if args.warm_chain else None)
        previous = model
        answers = predict(src, model, test)
        (work / f"answers-{size}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
        print(f"\n{size} training images, trained in {seconds:.0f}s ({cpu:.0f} CPU s)")
        best, by_cutoff = report(size, answers, truths, rows, also)
        rows.append({"size": size, "seconds": seconds, "cpu_seconds": cpu, "best_cutoff": best,
                     "mean_iou_by_cutoff": {str(c): float(v.mean()) for c, v in by_cutoff.items()}})
        (work / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
