"""How well the semantic segmenter labels masks, and which image confidence ranks its masks best.

    python bench/segmenter_study.py --sizes 200,400,800 --holdout 300

Prepares Fashion-MNIST canvases with their masks into --work (`labelloop prepare
fashion-mnist-segmentation`, the benchmark the loop runs on), trains `algorithms/semantic_segmentation/train.py` the way SageMaker
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

from labelloop.algorithm_source import source_files  # noqa: E402
from labelloop.datasets.fashion_mnist import CLASS_NAMES  # noqa: E402
from labelloop.datasets.fashion_mnist_segmentation import ATTRIBUTE, TRUTH_NAME, prepare_fashion_mnist_segmentation  # noqa: E402
from labelloop.tasks.semantic_segmentation import unpaint  # noqa: E402

def write_data(folder: Path, count: int, seed: int) -> list[dict]:
    """`labelloop prepare fashion-mnist-segmentation`'s canvases: its truth manifest's lines
    (Ground Truth semantic-segmentation labels, the masks painted PNG files)."""
    truth = folder / TRUTH_NAME
    if not truth.is_file() or sum(1 for _ in truth.open(encoding="utf-8")) != count:
        prepare_fashion_mnist_segmentation(folder, limit=count, seed=seed)
    return [json.loads(text) for text in truth.read_text(encoding="utf-8").splitlines()]


def true_ids(line: dict) -> np.ndarray:
    """A truth line's mask as class ids (0 background, k + 1 class k)."""
    colors = line[f"{ATTRIBUTE}-metadata"]["internal-color-map"]
    return unpaint(Path(line[ATTRIBUTE]).read_bytes(), colors, CLASS_NAMES, line[ATTRIBUTE])


def source_dir(work: Path) -> Path:
    """The flattened source dir (algorithms/common + algorithms/semantic_segmentation), as packaged."""
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for file_name, path in source_files("semantic-segmentation").items():
        shutil.copyfile(path, src / file_name)
    return src


def train(src: Path, work: Path, lines: list[dict], hps: dict, previous: Path | None = None) -> tuple[Path, float, float]:
    """The model folder, the training's wall seconds and its CPU seconds (user + system); with
    `previous`, training continues from that model (the loop's `model` channel)."""
    channel, model = work / "train", work / f"model-{len(lines)}"
    for folder in (channel, model):
        shutil.rmtree(folder, ignore_errors=True)
    channel.mkdir(parents=True)
    (channel / "train.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(SM_MODEL_DIR=str(model), SM_CHANNEL_TRAIN=str(channel), SM_NUM_CPUS="1",
               SM_HPS=json.dumps(hps), SM_OUTPUT_FAILURE=str(work / "failure"))
    if previous is not None:
        env["SM_CHANNEL_MODEL"] = str(previous)
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
    pairs = [(np.asarray(Image.open(io.BytesIO(base64.b64decode(a["mask"])))), true_ids(line))
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


def unet_alone(model: Path) -> Path:
    """A copy of the model folder whose config has no region head: inference answers from the U-Net."""
    alone = model.with_name(model.name + "-unet")
    shutil.rmtree(alone, ignore_errors=True)
    shutil.copytree(model, alone)
    config = json.loads((alone / "model-config.json").read_text(encoding="utf-8"))
    config["region_head"] = None
    (alone / "model-config.json").write_text(json.dumps(config), encoding="utf-8")
    return alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="runs/segmenter-study")
    parser.add_argument("--sizes", default="200,400,800")
    parser.add_argument("--holdout", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hps", default="{}", help="extra hyperparameters, a JSON object")
    parser.add_argument("--reuse", action="store_true", help="answer with the model-N an earlier run left in --work")
    parser.add_argument("--warm-chain", action="store_true",
                        help="each size continues from the previous size's model, as the loop's iterations do")
    parser.add_argument("--without-head", action="store_true", help="also answer with the U-Net alone (the region head's ablation)")
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
    previous = None
    for size in sizes:
        hps = {"num-classes": len(CLASS_NAMES), "seed": args.seed, **json.loads(args.hps)}
        if args.reuse and (work / f"model-{size}" / "model.pt").is_file():
            model, seconds, cpu = work / f"model-{size}", float("nan"), float("nan")
        else:
            model, seconds, cpu = train(src, work, lines[:size], hps, previous if args.warm_chain else None)
        previous = model
        answers = predict(inference, model, test)
        (work / f"answers-{size}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8")
        print(f"\n{size} training images, trained in {seconds:.0f}s ({cpu:.0f} CPU s)")
        report(size, answers, test, image_iou, rows)
        if args.without_head:
            print(f"\n{size} training images, the U-Net alone (no region head)")
            report(size, predict(inference, unet_alone(model), test), test, image_iou, rows)
            rows[-1]["without_head"] = True
        rows.append({"size": size, "seconds": seconds, "cpu_seconds": cpu})
        (work / "results.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
