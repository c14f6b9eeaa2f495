"""Few-click masks for semantic segmentation: an object's four extreme points, then corrective clicks.

A person clicks the object's top-, left-, bottom- and right-most pixels (any order); a proposer
returns the object's mask at once. Each further click lands on a wrong region: inside the
proposed mask it says "not the object" (a negative click), outside it "the object too" (a
positive click); the proposer runs again with every click so far. Proposers here see only the
image's pixels and the person's clicks, never a model's output, so the tool is the same on a
validation image (which must reach people blind) as on any other.

Proposers (`PROPOSERS`, measured by bench/click_study.py, docs/few-clicks.md):
- "grabcut" (the default): OpenCV's GrabCut on a crop around the points' box. Outside the box
  is certain background, inside probable foreground; the extreme points are certain
  foreground pixels, and each corrective click a small disc of certain foreground or background.
- "watershed": OpenCV's marker watershed on the same crop, the same seeds as markers.
- "box": the extreme points' box, filled, clicks painted in: what four clicks give with no method.

The simulated person (`extreme_points`, `corrective_click`, one object's clicks in `clicked`) is
the protocol the original tool was measured with: the extreme points of the true mask, then each
click at the centre (the point farthest from its edge) of the largest wrong region. The click
benchmark and the simulated annotators of segmentation runs (`people.click_mask`)
both click through `clicked`.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

MAX_CLICKS = 20  # corrective clicks one object may have: more means the tool is the wrong one for it
MAX_WORK_SIDE = 320  # a crop larger than this is scaled down for the proposer, then its mask scaled up
MARGIN = 0.5  # of the box's longer side, around it: where the proposer learns what background looks like
MIN_MARGIN = 4
GRABCUT_ITERATIONS = 1  # more fitted the colour models to clutter and lost objects (docs/few-clicks.md)
MAX_IMAGE_PIXELS = 8192 * 8192


class Click(NamedTuple):
    x: int  # column
    y: int  # row
    positive: bool  # the object there (True) or not (False)


# ---------------------------------------------------------------- the page's request


def _point(value: Any, width: int, height: int, what: str) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value):
        raise ValueError(f"{what} must be [x, y] in image pixels, got {str(value)[:60]}")
    x, y = math.floor(value[0]), math.floor(value[1])
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"{what} ({value[0]}, {value[1]}) is outside the {width} x {height} image")
    return x, y


def parse_request(body: dict[str, Any], width: int, height: int) -> tuple[list[tuple[int, int]], list[Click]]:
    """(extreme points, corrective clicks) of a proposal request, checked against the image's size.

    `points`: four [x, y]; `clicks`: [{"x", "y", "positive"}, ...] in the order clicked.
    ValueError says what is wrong."""
    points = body.get("points")
    if not isinstance(points, list) or len(points) != 4:
        got = f"{len(points)} points" if isinstance(points, list) else type(points).__name__
        raise ValueError(f"points must be the object's 4 extreme points (top, left, bottom, right), got {got}")
    extreme = [_point(p, width, height, f"point {k + 1}") for k, p in enumerate(points)]
    raw = body.get("clicks", [])
    if not isinstance(raw, list):
        raise ValueError("clicks must be a list of {x, y, positive}")
    if len(raw) > MAX_CLICKS:
        raise ValueError(f"{len(raw)} corrective clicks; at most {MAX_CLICKS} an object (finish it with the brush)")
    clicks = []
    for k, click in enumerate(raw, start=1):
        if not isinstance(click, dict) or not isinstance(click.get("positive"), bool):
            raise ValueError(f"click {k} must be {{x, y, positive: true|false}}")
        clicks.append(Click(*_point([click.get("x"), click.get("y")], width, height, f"click {k}"), click["positive"]))
    return extreme, clicks


def read_image(data: bytes) -> np.ndarray:
    """An image file's pixels as RGB uint8 (H, W, 3); ValueError when it is no image or too large."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"the image is {image.width} x {image.height} pixels, too large for the click tool")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ValueError:
        raise
    except Exception:  # PIL raises several kinds for bytes that are no image
        raise ValueError("the item's image cannot be read") from None


def runs(mask: np.ndarray) -> dict[str, Any]:
    """A mask as the page takes it: its bounding box [x, y, w, h] and, row by row inside it,
    the lengths of alternating runs, off first (COCO's uncompressed RLE, but row-major)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return {"box": None, "counts": []}
    y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    flat = mask[y0:y1, x0:x1].astype(bool).ravel()
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"box": [x0, y0, x1 - x0, y1 - y0], "counts": counts}


# ---------------------------------------------------------------- proposers


def _disc_radius(shape: tuple[int, ...]) -> int:
    """A corrective click marks a disc this wide: about 1 % of the image's shorter side, 1 px at least."""
    return max(1, round(min(shape[:2]) / 100))


def _crop(shape: tuple[int, ...], extreme: list[tuple[int, int]], clicks: list[Click]) -> tuple[slice, slice, tuple]:
    """(rows, cols) of the crop the proposer works on, and the box (x0, y0, x1, y1) in the crop."""
    xs = [x for x, _ in extreme] + [c.x for c in clicks if c.positive]
    ys = [y for _, y in extreme] + [c.y for c in clicks if c.positive]
    x0, x1, y0, y1 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
    margin = max(MIN_MARGIN, round(MARGIN * max(x1 - x0, y1 - y0)))
    cy0, cx0 = max(0, y0 - margin), max(0, x0 - margin)
    cy1, cx1 = min(shape[0], y1 + margin), min(shape[1], x1 + margin)
    return slice(cy0, cy1), slice(cx0, cx1), (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)


def _seeds(shape: tuple[int, int], extreme, clicks, origin: tuple[int, int], radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(certain object, certain background) pixels of a crop whose top-left is `origin` (x, y)."""
    fg, bg = np.zeros(shape, bool), np.zeros(shape, bool)
    for x, y in extreme:  # the extreme points lie on the object's edge: their own pixel only
        fg[y - origin[1], x - origin[0]] = True
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    for c in clicks:  # later clicks win where discs overlap
        disc = (yy - (c.y - origin[1])) ** 2 + (xx - (c.x - origin[0])) ** 2 <= radius * radius
        (fg if c.positive else bg)[disc] = True
        (bg if c.positive else fg)[disc] = False
    return fg, bg


def _grey_scales(image: np.ndarray) -> np.ndarray:
    """A grey image's three channels as its grey level at three scales, not three copies of it:
    GrabCut's colour model then tells a flat region from a textured one of the same mean."""
    import cv2

    if not ((image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 0] == image[:, :, 2]).all()):
        return image
    grey = np.ascontiguousarray(image[:, :, 0])
    return np.dstack([grey, cv2.GaussianBlur(grey, (0, 0), 1.0), cv2.GaussianBlur(grey, (0, 0), 3.0)])


def _grabcut(image: np.ndarray, box: tuple, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    import cv2

    image = _grey_scales(image)
    x0, y0, x1, y1 = box
    mask = np.full(image.shape[:2], cv2.GC_BGD, np.uint8)
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    if not (mask == cv2.GC_BGD).any():  # the box is the whole crop: its frame is probably background
        mask[[0, -1], :] = cv2.GC_PR_BGD
        mask[:, [0, -1]] = cv2.GC_PR_BGD
    mask[bg] = cv2.GC_BGD
    mask[fg] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models' k-means from OpenCV's RNG: the same clicks, the same mask
    try:
        cv2.grabCut(image, mask, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a colour model could not be fitted (e.g. one flat colour): keep the seeds' mask
        pass
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _watershed(image: np.ndarray, box: tuple, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = box
    markers = np.ones(image.shape[:2], np.int32)  # 1: background, 2: the object, 0: to be flooded
    markers[y0:y1, x0:x1] = 0  # the box is flooded from the seeds; outside it is background
    markers[bg] = 1
    markers[fg] = 2
    cv2.watershed(np.ascontiguousarray(image), markers)
    out = markers == 2
    return out | (fg & (markers == -1))


def _box(image: np.ndarray, box: tuple, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = box
    out = np.zeros(image.shape[:2], bool)
    out[y0:y1, x0:x1] = True
    return out


PROPOSERS: dict[str, Callable[..., np.ndarray]] = {"grabcut": _grabcut, "watershed": _watershed, "box": _box}
DEFAULT_PROPOSER = "grabcut"


def _drop_denied(found: np.ndarray, fg: np.ndarray, bg: np.ndarray, negatives: list[tuple[int, int]]) -> np.ndarray:
    """`found` less each of its pieces that a negative click lands on and no certain object pixel
    holds: "not the object" said of a blob means all of it, not only the disc under the click."""
    import cv2

    if not negatives:
        return found
    # A click's own disc is background already: with it, the click joins its piece.
    _, pieces = cv2.connectedComponents((found | bg).astype(np.uint8), connectivity=4)
    kept = set(np.unique(pieces[fg]).tolist())
    denied = {int(pieces[y, x]) for x, y in negatives} - kept - {0}
    return found & ~np.isin(pieces, list(denied)) if denied else found


def propose(image: np.ndarray, extreme: list[tuple[int, int]], clicks: list[Click],
            proposer: str = DEFAULT_PROPOSER) -> np.ndarray:
    """The object's mask (bool, the image's height x width) from its extreme points and corrective clicks."""
    import cv2

    method = PROPOSERS[proposer]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    rows, cols, box = _crop(image.shape, extreme, clicks)
    crop = np.ascontiguousarray(image[rows, cols, :3])
    origin = (cols.start, rows.start)
    radius = _disc_radius(image.shape)
    scale = min(1.0, MAX_WORK_SIDE / max(crop.shape[:2]))
    if scale < 1.0:  # a large object: work on fewer pixels, so a click still takes well under a second
        small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        at = lambda v, n: min(n - 1, int(v * scale))  # noqa: E731
        s_extreme = [(at(x - origin[0], small.shape[1]), at(y - origin[1], small.shape[0])) for x, y in extreme]
        s_clicks = [Click(at(c.x - origin[0], small.shape[1]), at(c.y - origin[1], small.shape[0]), c.positive)
                    for c in clicks]
        s_box = tuple(min(n, round(v * scale)) for v, n in zip(box, (small.shape[1], small.shape[0]) * 2))
        fg, bg = _seeds(small.shape[:2], s_extreme, s_clicks, (0, 0), max(1, round(radius * scale)))
        found = method(small, s_box, fg, bg).astype(np.uint8)
        found = cv2.resize(found, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    else:
        found = method(crop, box, *_seeds(crop.shape[:2], extreme, clicks, origin, radius))
    fg, bg = _seeds(crop.shape[:2], extreme, clicks, origin, radius)
    found = _drop_denied(found, fg, bg, [(c.x - origin[0], c.y - origin[1]) for c in clicks if not c.positive])
    found = (found | fg) & ~bg  # what the person said holds, whatever the method made of it
    out = np.zeros(image.shape[:2], bool)
    out[rows, cols] = found
    return out


def answer(data: bytes, request: dict[str, Any]) -> dict[str, Any]:
    """The worker page's reply to a proposal request on the image file `data`: the object's mask
    as `runs`, which proposer made it and the seconds it took. ValueError: a bad request."""
    start = time.perf_counter()
    image = read_image(data)
    extreme, clicks = parse_request(request, image.shape[1], image.shape[0])
    mask = propose(image, extreme, clicks)
    return {**runs(mask), "proposer": DEFAULT_PROPOSER, "seconds": round(time.perf_counter() - start, 4)}


# ---------------------------------------------------------------- the simulated person


def extreme_points(mask: np.ndarray) -> list[tuple[int, int]]:
    """(x, y) of the true mask's top-, left-, bottom- and right-most pixels (the middle one of each
    edge's pixels, as a person would pick)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        raise ValueError("an empty mask has no extreme points")

    def middle(keep: np.ndarray) -> tuple[int, int]:
        r, c = rows[keep], cols[keep]
        k = np.argsort(c * 100003 + r)[len(r) // 2]
        return int(c[k]), int(r[k])

    return [middle(rows == rows.min()), middle(cols == cols.min()), middle(rows == rows.max()), middle(cols == cols.max())]


def corrective_click(predicted: np.ndarray, truth: np.ndarray) -> Click | None:
    """The click at the centre of the largest wrong region (positive on a missed one, negative on
    a wrongly added one); None when the mask is right."""
    from scipy import ndimage

    wrong = predicted.astype(bool) != truth.astype(bool)
    if not wrong.any():
        return None
    labels, n = ndimage.label(wrong)
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    depth = ndimage.distance_transform_edt(np.pad(largest, 1))[1:-1, 1:-1]  # the image's edge is an edge too
    ys, xs = np.nonzero(depth == depth.max())
    k = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))  # of equally deep pixels, the middle one
    return Click(int(xs[k]), int(ys[k]), bool(truth[ys[k], xs[k]]))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


class Proposal(NamedTuple):
    mask: np.ndarray  # the object's proposed mask
    clicks: int  # the clicks it took, the four extreme points included
    seconds: float  # the proposer's time for it


def clicked(image: np.ndarray, truth: np.ndarray, most: int, proposer: str = DEFAULT_PROPOSER,
            aim: Callable[[int, int], tuple[int, int]] | None = None) -> Iterator[Proposal]:
    """The simulated person's proposals of one object (`truth`, its true mask): after the four
    extreme points, then after each of up to `most` corrective clicks. Ends early once a
    proposal is exactly right. The caller stops taking them where its person would stop.

    `aim(x, y)`: where a click meant for (x, y) lands (a person's slip); None: where meant."""
    def land(x: int, y: int) -> tuple[int, int]:
        return aim(x, y) if aim is not None else (x, y)

    points, clicks = [land(x, y) for x, y in extreme_points(truth)], []
    while True:
        start = time.perf_counter()
        predicted = propose(image, points, clicks, proposer)
        yield Proposal(predicted, 4 + len(clicks), time.perf_counter() - start)
        click = corrective_click(predicted, truth) if len(clicks) < most else None
        if click is None:
            return
        clicks.append(Click(*land(click.x, click.y), click.positive))
