"""How good a mask few clicks make: the simulated-click benchmark of the worker page's click tool.

    nice python bench/click_study.py --images 300 --clicks 5 --seed 1
    nice python bench/click_study.py --images 30 --seed 1 --upscale 8 --proposers grabcut

Prepares --images canvases of the segmentation benchmark (`labelloop prepare
fashion-mnist-segmentation`, same seed, into --work) and rebuilds each canvas's objects (the
visible pixels of each item placed on it: the preparer's own draws, replayed, checked against its
truth mask). For every object a simulated person clicks as the original tool was measured: the
four extreme points of the true object mask, then up to --clicks corrective clicks, each at the
centre of the largest wrong region (`segmentation_clicks.clicked`, as the simulated annotators
of segmentation runs click). Prints, for each
proposer, the mean object IoU after 0..N corrective clicks and the median and 95th-percentile
seconds one proposal (a click's refinement) took; then what labeling the canvases costs in
clicks when the person stops correcting an object once it reaches --target IoU.

Measured: docs/few-clicks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labelloop.datasets.canvases import CANVAS, background, finish, placements  # noqa: E402
from labelloop.datasets.fashion_mnist import DEFAULT_SOURCE, load_fashion_mnist  # noqa: E402
from labelloop.datasets.fashion_mnist_segmentation import prepare_fashion_mnist_segmentation  # noqa: E402
from labelloop.tasks.semantic_segmentation.clicks import PROPOSERS, clicked, iou  # noqa: E402
from labelloop.tasks.semantic_segmentation import rgb_palette  # noqa: E402


def objects(count: int, seed: int, source: Path) -> list[np.ndarray]:
    """Per canvas, its instance map (0 background, k the k-th item placed): the preparer's draws replayed."""
    items, targets = load_fashion_mnist(source)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        canvas = background(rng, items)
        instances = np.zeros((CANVAS, CANVAS), np.uint8)
        for k, p in enumerate(placements(rng, items), start=1):
            drawn = p.scaled > 0
            window = (slice(p.y, p.y + p.scaled.shape[0]), slice(p.x, p.x + p.scaled.shape[1]))
            canvas[window][drawn] = p.scaled[drawn]
            instances[window][drawn] = k
        finish(canvas)
        out.append(instances)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--clicks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proposers", default=",".join(PROPOSERS))
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--upscale", type=int, default=1,
                        help="enlarge each canvas and its objects this many times (nearest pixel): a large image's seconds a click")
    parser.add_argument("--target", type=float, default=0.85,
                        help="the person stops correcting an object at this IoU: what the clicks a canvas costs are counted at")
    parser.add_argument("--work", type=Path, default=None, help="where the canvases are prepared (default: a temp folder)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="labelloop-clicks-"))
    prepared = prepare_fashion_mnist_segmentation(work, args.source, limit=args.images, seed=args.seed)
    images = [np.asarray(Image.open(p), dtype=np.uint8) for p in sorted((work / "images").glob("*.png"))]
    truths = [np.asarray(Image.open(p).convert("RGB"), dtype=np.uint8) for p in sorted((work / "masks").glob("*.png"))]
    instance_maps = objects(args.images, args.seed, args.source)
    white = rgb_palette(0)[0]
    for i, (truth, instances) in enumerate(zip(truths, instance_maps)):  # the replay drew what the preparer drew
        if not ((truth == white).all(axis=2) == (instances == 0)).all():
            raise SystemExit(f"canvas {i}: the replayed objects are not the prepared truth's")
    big = lambda a: np.repeat(np.repeat(a, args.upscale, axis=0), args.upscale, axis=1)  # noqa: E731
    cases = [(big(image), big(instances == k)) for image, instances in zip(images, instance_maps)
             for k in range(1, int(instances.max()) + 1) if (instances == k).any()]
    canvases = len(images)
    print(f"{prepared.count} canvases of {cases[0][0].shape[1]} x {cases[0][0].shape[0]} px, {len(cases)} objects (median {np.median([m.sum() for _, m in cases]):.0f} px); "
          f"prepared in {work}")
    names = [n for n in args.proposers.split(",") if n]
    header = "| proposer | " + " | ".join(f"{k} clicks" for k in range(args.clicks + 1)) + " | s/click median | s/click p95 |"
    rows = [header, "|" + " --- |" * (args.clicks + 4)]
    costs = [f"| proposer | objects at IoU >= {args.target:.2f} within 4 + {args.clicks} clicks | clicks an object | "
             "clicks a canvas | mean IoU where the person stops |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        ious = np.zeros((len(cases), args.clicks + 1))
        seconds = []
        for n, (image, truth) in enumerate(cases):
            for k, proposal in enumerate(clicked(image, truth, args.clicks, name)):
                seconds.append(proposal.seconds)
                ious[n, k:] = iou(proposal.mask, truth)  # a proposal exactly right stays right
        mean = ious.mean(axis=0)
        # The person stops at the first proposal at or above the target, else after the last click.
        reached = ious >= args.target
        stop = np.where(reached.any(axis=1), reached.argmax(axis=1), args.clicks)
        spent = 4 + stop
        costs.append(f"| {name} | {100 * reached.any(axis=1).mean():.1f} % | {spent.mean():.2f} | "
                     f"{spent.sum() / canvases:.2f} | {100 * ious[np.arange(len(cases)), stop].mean():.1f} % |")
        rows.append(f"| {name} | " + " | ".join(f"{100 * v:.1f} %" for v in mean)
                    + f" | {np.median(seconds):.3f} | {np.percentile(seconds, 95):.3f} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))
    print("\n".join(costs))


if __name__ == "__main__":
    main()
