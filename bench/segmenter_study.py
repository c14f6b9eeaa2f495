"""How well the semantic segmenter labels masks, and which image confidence ranks its masks best.

    python bench/segmenter_study.py --sizes 200,400,800 --holdout 300

Builds Fashion-MNIST canvases with their masks into --work (`canvases`: until a preparer for them
exists, the bench's own), trains `algorithms/semantic_segmentation/train.py` the way SageMaker
runs it (a subprocess with the SM_* environment, one thread) on the first N canvases for each N
in --sizes, answers the last --holdout canvases through inference.py's handlers (a
batch-transform request), and prints the mean per-image IoU (Ground Truth's definition,
`confidence.image_iou`), the share of images at IoU >= 0.7 (Ground Truth's segmentation target)
and, for each image-confidence candidate the reply carries, how well it ranks the images' IoU:
Spearman's rho, and the mean IoU of the top 50 % and 25 % of images by it (`oracle`: by the
IoU itself, the best any ranking can do).

Measured: docs/benchmarks.md, "Semantic segmentation: the segmenter and its confidence".
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelloop.datasets.fashion_mnist import CLASS_NAMES, DEFAULT_SOURCE, load_fashion_mnist  # noqa: E402

CANVAS = 128
INK = 48  # a scaled item's pixels at least this bright are drawn, and are its mask


def canvases(count: int, seed: int, source: Path = DEFAULT_SOURCE):
    """(canvas, mask) pairs, uint8 128x128: 1-4 Fashion-MNIST items of 20-64 px (a later item
    hides an earlier one where they overlap; mask value = class index + 1) on a noisy grey
    background cluttered with small unlabeled fragments of other items."""
    items, targets = load_fashion_mnist(source)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        canvas = rng.uniform(0, 35) + rng.normal(0.0, rng.uniform(3, 12), (CANVAS, CANVAS))
        mask = np.zeros((CANVAS, CANVAS), np.uint8)
        for _ in range(int(rng.integers(3, 9))):
            side = int(rng.integers(5, 11))
            y, x = (int(v) for v in rng.integers(4, 28 - side - 3, size=2))
            py, px = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            patch = items[int(rng.integers(len(items)))][y : y + side, x : x + side] * rng.uniform(0.4, 0.9)
            np.maximum(canvas[py : py + side, px : px + side], patch, out=canvas[py : py + side, px : px + side])
        for _ in range(int(rng.integers(1, 5))):
            index, side = int(rng.integers(len(items))), int(rng.integers(20, 65))
            scaled = np.asarray(Image.fromarray(items[index]).resize((side, side), Image.Resampling.BILINEAR), np.float64)
            scaled *= rng.uniform(0.75, 1.0)
            ink = scaled >= INK
            y, x = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            canvas[y : y + side, x : x + side][ink] = scaled[ink]
            mask[y : y + side, x : x + side][ink] = int(targets[index]) + 1
        yield np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mask


def write_data(folder: Path, count: int, seed: int) -> list[dict]:
    """Manifest lines with Ground Truth semantic-segmentation labels, images and masks as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    colors = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}}
    colors.update({str(i + 1): {"class-name": name, "hex-color": f"#{(i + 1) * 0x151515:06x}"} for i, name in enumerate(CLASS_NAMES)})
    lines = []
    for i, (canvas, mask) in enumerate(canvases(count, seed)):
        Image.fromarray(canvas, "L").save(folder / f"{i:05d}.png")
        Image.fromarray(mask, "L").save(folder / f"{i:05d}-mask.png")
        lines.append({"source-ref": str(folder / f"{i:05d}.png"), "label-ref": str(folder / f"{i:05d}-mask.png"),
                      "label-metadata": {"internal-color-map": colors, "type": "groundtruth/semantic-segmentation",
                                         "human-annotated": "yes"}})
    return lines


def source_dir(work: Path) -> Path:
    """The flattened source dir (algorithms/common + algorithms/semantic_segmentation), as packaged."""
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for folder in ("common", "semantic_segmentation"):
        for path in (ROOT / "algorithms" / folder).glob("*.py"):
            shutil.copyfile(path, src / path.name)
    return src


def train(src: Path, work: Path, lines: list[dict], hps: dict) -> tuple[Path, float, float]:
    """The model folder, the training's wall seconds and its CPU seconds (user + system)."""
    channel, model = work / "train", work / f"model-{len(lines)}"
    for folder in (channel, model):
        shutil.rmtree(folder, ignore_errors=True)
    channel.mkdir(parents=True)
    (channel / "train.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(SM_MODEL_DIR=str(model), SM_CHANNEL_TRAIN=str(channel), SM_NUM_CPUS="1",
               SM_HPS=json.dumps(hps), SM_OUTPUT_FAILURE=str(work / "failure"))
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    proc = subprocess.run([sys.executable, "train.py"], cwd=src, env=env, capture_output=True, text=True)
    elapsed, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(proc.stdout.strip().splitlines()[-2], flush=True)
    return model, elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load_module(src: Path, name: str):
    sys.path.insert(0, str(src))
    try:
        spec = importlib.util.spec_from_file_location(f"segmenter_{name}", src / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(src))


def predict(inference, model: Path, lines: list[dict]) -> list[dict]:
    net = inference.model_fn(str(model))
    answers = []
    for start in range(0, len(lines), 100):
        body = "".join(json.dumps({"source-ref": line["source-ref"]}) + "\n" for line in lines[start : start + 100])
        reply = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/jsonlines"), net), "application/jsonlines")
        answers.extend(json.loads(text) for text in reply.splitlines())
    return answers


def report(size: int, answers: list[dict], test: list[dict], image_iou, rows: list[dict]) -> None:
    pairs = [(np.asarray(Image.open(io.BytesIO(base64.b64decode(a["mask"])))), np.asarray(Image.open(line["label-ref"])))
             for a, line in zip(answers, test)]
    ious = np.array([image_iou(predicted, truth) for predicted, truth in pairs])
    agnostic = np.mean([image_iou(predicted > 0, truth > 0) for predicted, truth in pairs])
    right = np.mean([(predicted[truth > 0] == truth[truth > 0]).mean() for predicted, truth in pairs])
    print(f"  class-agnostic mean IoU {agnostic:.3f}; true foreground pixels given their class: {right:.1%}")
    n = len(ious)
    print(f"  mean IoU {ious.mean():.3f}; images at IoU >= 0.7: {np.mean(ious >= 0.7):.1%}; "
          f"longest reply line {max(len(json.dumps(a, separators=(',', ':'))) for a in answers) + 1} bytes")
    by_name = {name: np.array([a["confidences"][name] for a in answers]) for name in answers[0]["confidences"]}
    for name, values in {**by_name, "oracle": ious}.items():
        order = np.argsort(-values, kind="stable")
        top50, top25 = ious[order[: n // 2]].mean(), ious[order[: n // 4]].mean()
        rho = float(spearmanr(values, ious)[0])
        print(f"    {name:24s} spearman {rho:+.3f}  top-50% IoU {top50:.3f}  top-25% IoU {top25:.3f}")
        rows.append({"size": size, "signal": name, "spearman": rho, "top50": top50, "top25": top25})
    rows.append({"size": size, "mean_iou": float(ious.mean()), "share_at_0.7": float(np.mean(ious >= 0.7)),
                 "agnostic_iou": float(agnostic), "pixel_class_accuracy": float(right)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="runs/segmenter-study")
    parser.add_argument("--sizes", default="200,400,800")
    parser.add_argument("--holdout", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hps", default="{}", help="extra hyperparameters, a JSON object")
    parser.add_argument("--reuse", action="store_true", help="answer with the model-N an earlier run left in --work")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = write_data(work / "data", max(sizes) + args.holdout, args.seed)
    test = lines[-args.holdout :]
    src = source_dir(work)
    inference = load_module(src, "inference")
    image_iou = load_module(src, "confidence").image_iou
    rows: list[dict] = []
    for size in sizes:
        hps = {"num-classes": len(CLASS_NAMES), "seed": args.seed, **json.loads(args.hps)}
        if args.reuse and (work / f"model-{size}" / "model.pt").is_file():
            model, seconds, cpu = work / f"model-{size}", float("nan"), float("nan")
        else:
            model, seconds, cpu = train(src, work, lines[:size], hps)
        answers = predict(inference, model, test)
        (work / f"answers-{size}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
        print(f"\n{size} training images, trained in {seconds:.0f}s ({cpu:.0f} CPU s)")
        report(size, answers, test, image_iou, rows)
        rows.append({"size": size, "seconds": seconds, "cpu_seconds": cpu})
        (work / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
