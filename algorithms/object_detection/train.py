"""Train the object detector (SageMaker script mode; PyTorch training container, CPU is enough;
CUDA is used when present, unmeasured).

    python train.py [--epochs 30 ...]     # hyperparameters also come from SM_HPS

Reads the `train` and (optional) `validation` channels: augmented-manifest JSON Lines whose
`source-ref` is `s3://...` or a local path and whose label attribute is a Ground Truth
bounding-box label (`box_labels`; an image with no objects has empty `annotations`). Every
image is stretched to a square `image-size` (boxes scaled with it), and `centernet.CenterNet`
is trained with AdamW on a one-cycle schedule, with random horizontal flips and a random zoom
of each batch (`scale-jitter`: objects of other sizes and positions than the few hundred seen).
Writes to SM_MODEL_DIR:

    model.pt             the network's state dict
    model-config.json    architecture, input geometry and normalisation, decoding settings

Prints `validation-loss=...` when there is validation data.
"""

from __future__ import annotations

import math
import os

# OpenMP worker threads that spin while they wait stall badly when the cores are shared.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads the OpenMP runtime

import numpy as np  # noqa: E402
import torch  # noqa: E402

import box_labels  # noqa: E402
import centernet  # noqa: E402
import hyperparameters as hp  # noqa: E402
import image_input  # noqa: E402
import manifest_channels  # noqa: E402
import object_loader  # noqa: E402
import refiner  # noqa: E402
import schedule as lr_schedule  # noqa: E402
import script_mode  # noqa: E402
import torch_training  # noqa: E402
import warm_start  # noqa: E402

CONFIG_FILE = "model-config.json"
WEIGHTS_FILE = "model.pt"
HEAD_FILE = "box-head.pt"
FORMAT_VERSION = 1
TASK = "object-detection"

SPECS = [
    hp.Spec("label-attribute", str, "label", "manifest attribute holding the bounding-box label"),
    hp.Spec("num-classes", int, hp.REQUIRED, "number of classes K; class_id is 0..K-1", minimum=1),
    hp.Spec("seed", int, 0, "seeds shuffling, initialisation and flips"),
    hp.Spec("epochs", int, None, "passes over the training set; auto: from the set's size", allow_auto=True, minimum=1),
    hp.Spec("batch-size", int, 32, "mini-batch size (reduced for small sets)", minimum=1),
    hp.Spec("learning-rate", float, 4e-3, "peak learning rate of the one-cycle schedule", minimum=0.0),
    hp.Spec("weight-decay", float, 1e-4, "AdamW weight decay", minimum=0.0),
    hp.Spec("width", int, 16, "channels of the first conv block (then 2x, 3x, 4x)", minimum=4, maximum=128),
    hp.Spec("image-size", int, 128, "side of the square network input (a multiple of 16)", minimum=32, maximum=512),
    hp.Spec("channels", int, None, "1 (grayscale) or 3 (RGB); auto: 1 when all images are grayscale", allow_auto=True, minimum=1, maximum=3),
    hp.Spec("horizontal-flip", bool, True, "random horizontal flips during training"),
    hp.Spec("max-boxes", int, 20, "most boxes answered per image", minimum=1, maximum=100),
    hp.Spec("min-score", float, 0.05, "boxes scoring under this are not answered", minimum=0.0, maximum=1.0),
    hp.Spec("nms-iou", float, 0.6, "a box overlapping a stronger box more than this is dropped", minimum=0.0, maximum=1.0),
    hp.Spec("scale-jitter", float, 0.25, "random zoom of each training batch by up to this share (0: none)", minimum=0.0, maximum=0.5),
    hp.Spec("box-head", bool, True, "a second look at each box (refiner.py): its class, no object, its edges"),
    hp.Spec("head-epochs", int, None, "passes of the box head over the training boxes; auto: from the set's size", allow_auto=True, minimum=1),
    hp.Spec("head-width", int, 16, "channels of the box head's first conv block (then 2x, 4x)", minimum=4, maximum=128),
    hp.Spec("warm-start", bool, True, "start from the previous model (the `model` channel) when its architecture is the same"),
]

TARGET_STEPS = 1000  # optimiser steps the auto epoch count aims for ...
MIN_EPOCHS, MAX_EPOCHS = 8, 80
SAMPLE_BUDGET = 16_000  # ... while not visiting many more images than this (~3 min on 1 busy core at 128x128)


def auto_epochs(n: int, batch_size: int) -> int:
    return lr_schedule.auto_epochs(n, batch_size, target_steps=TARGET_STEPS, min_epochs=MIN_EPOCHS,
                                   max_epochs=MAX_EPOCHS, sample_budget=SAMPLE_BUDGET)


HEAD_SAMPLE_BUDGET = 30_000  # image visits of the box head: ~7 crops each, ~1 min on 1 busy core


def auto_head_epochs(n: int) -> int:
    return max(4, min(40, math.ceil(HEAD_SAMPLE_BUDGET / max(1, n))))


def image_ref(record: manifest_channels.Record) -> str:
    ref = record.data.get("source-ref")
    if not isinstance(ref, str) or not ref:
        raise record.error("missing 'source-ref' (the image's s3:// URI or file path)")
    return ref


def grayscale_only(records: list[manifest_channels.Record]) -> bool:
    return all(record.label.depth == 1 for record in records)


def load(records: list[manifest_channels.Record], image_size: int, channels: int):
    """Images (N, C, S, S) uint8, and per image its boxes in input pixels and classes."""

    def one(record: manifest_channels.Record):
        ref = image_ref(record)
        try:
            pixels, (width, height, _) = image_input.decode_image(object_loader.read_bytes(ref), image_size, channels)
        except (OSError, ValueError) as exc:
            raise record.error(f"cannot use image {ref}: {exc}") from None
        label: box_labels.BoxLabel = record.label
        if (width, height) != (label.width, label.height):
            raise record.error(
                f"label's image_size is {label.width}x{label.height} but image {ref} is {width}x{height}"
            )
        scale = np.array([image_size / width, image_size / height] * 2, dtype=np.float32)
        return pixels, label.boxes * scale, label.classes

    workers = object_loader.workers_for(r.data.get("source-ref") for r in records)
    loaded = object_loader.map_ordered(one, records, workers)
    images = np.stack([item[0] for item in loaded]) if loaded else np.zeros((0, channels, image_size, image_size), np.uint8)
    return images, [item[1] for item in loaded], [item[2] for item in loaded]


def zoom(xb: torch.Tensor, boxes: list[np.ndarray], classes: list[np.ndarray], factor: float, generator: torch.Generator):
    """The batch zoomed by `factor` about a random point, cropped or edge-padded back to its
    size; boxes follow, clipped, and dropped when less than 40 % of them stays in view."""
    size = xb.shape[-1]
    new = max(8, int(round(size * factor)))
    xb = torch.nn.functional.interpolate(xb, size=(new, new), mode="bilinear", align_corners=False)
    room = abs(new - size)
    dx, dy = (int(v) for v in torch.randint(0, room + 1, (2,), generator=generator))
    if new > size:
        xb, shift = xb[..., dy : dy + size, dx : dx + size], (-dx, -dy)
    else:
        xb = torch.nn.functional.pad(xb, (dx, room - dx, dy, room - dy), mode="replicate")
        shift = (dx, dy)
    out_boxes, out_classes = [], []
    for b, c in zip(boxes, classes):
        b = b * (new / size)
        x0, y0 = b[:, 0] + shift[0], b[:, 1] + shift[1]
        x1, y1 = x0 + b[:, 2], y0 + b[:, 3]
        cx0, cy0, cx1, cy1 = (np.clip(v, 0, size) for v in (x0, y0, x1, y1))
        visible = (cx1 - cx0) * (cy1 - cy0) >= 0.4 * b[:, 2] * b[:, 3]
        out_boxes.append(np.stack([cx0, cy0, cx1 - cx0, cy1 - cy0], axis=1)[visible].astype(np.float32))
        out_classes.append(c[visible])
    return xb, out_boxes, out_classes


def batch_loss(net, images, boxes, classes, idx, spec, device, flip=None, factor=1.0, generator=None):
    xb = torch.from_numpy(images[idx]).to(torch.float32)
    size = spec["image_size"]
    batch_boxes = [boxes[i].copy() for i in idx]
    batch_classes = [classes[i] for i in idx]
    if flip is not None:
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        for j, flipped in enumerate(flip.tolist()):
            if flipped:
                batch_boxes[j][:, 0] = size - batch_boxes[j][:, 0] - batch_boxes[j][:, 2]
    if factor != 1.0:
        xb, batch_boxes, batch_classes = zoom(xb, batch_boxes, batch_classes, factor, generator)
    cells = [b / centernet.STRIDE for b in batch_boxes]
    t = centernet.targets(cells, batch_classes, size // centernet.STRIDE)
    outputs = net(centernet.normalise(xb, spec["mean"], spec["std"]).to(device))
    return centernet.loss(outputs, {key: value.to(device) for key, value in t.items()})


def train(args: dict) -> None:
    timer, threads, generator = torch_training.start(args)
    k = args["num_classes"]
    torch_training.check_square_input(args)

    def read(name: str) -> list[manifest_channels.Record]:
        return manifest_channels.read_channel(
            name, manifest_channels.channel_dir(name), label_attribute=args["label_attribute"],
            num_classes=k, parse=box_labels.parse_box_label,
        )

    train_records, val_records = read("train"), read("validation")
    if not train_records:
        raise ValueError("the train channel has no items (SM_CHANNEL_TRAIN is unset, missing or empty)")
    size = args["image_size"]
    channels = args["channels"] or (1 if grayscale_only(train_records) else 3)
    x_train, b_train, c_train = load(train_records, size, channels)
    x_val, b_val, c_val = load(val_records, size, channels)
    spec = torch_training.input_spec(x_train, size, channels, k)
    counts = np.bincount(np.concatenate(c_train), minlength=k).tolist() if c_train else [0] * k
    empty = sum(1 for c in c_train if len(c) == 0)
    script_mode.log(
        f"loaded {len(x_train)} training ({empty} with no objects) and {len(x_val)} validation images as "
        f"{channels}x{size}x{size} in {timer():.1f}s; training boxes per class: {counts}"
    )

    n = len(x_train)
    batch_size = max(1, min(args["batch_size"], n))
    epochs = args["epochs"] or auto_epochs(n, batch_size)
    arch = centernet.architecture(channels, k, size, args["width"])
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    net = centernet.build(arch)
    head_arch = refiner.architecture(channels, k, args["head_width"]) if args["box_head"] else None
    spec, head_start = warm_start.starting_point(net, args["warm_start"], CONFIG_FILE, WEIGHTS_FILE, arch, spec,
                                                 ("box_head", head_arch, HEAD_FILE))
    net = net.to(device)
    script_mode.log(f"training {epochs} epochs of {max(1, n // batch_size)} steps, batch size {batch_size}, {threads} threads, on {device.type}")

    def train_batch_loss(idx: np.ndarray):
        flip = torch.rand(len(idx), generator=generator) < 0.5 if args["horizontal_flip"] else None
        jitter = args["scale_jitter"]
        factor = 1.0 + jitter * (2 * float(torch.rand(1, generator=generator)) - 1) if jitter else 1.0
        return batch_loss(net, x_train, b_train, c_train, idx, spec, device, flip, factor, generator)

    torch_training.fit(net, train_batch_loss, ["focal", "class", "size", "offset"], args, n=n, batch_size=batch_size,
                       epochs=epochs, generator=generator, timer=timer)

    head = train_head(args, x_train, b_train, c_train, spec, generator, timer, head_start) if args["box_head"] else None

    val_loss = None
    if len(x_val):
        net.eval()
        with torch.inference_mode():
            losses = [
                float(batch_loss(net, x_val, b_val, c_val, np.arange(s, min(s + 64, len(x_val))), spec, device)[0])
                * (min(s + 64, len(x_val)) - s)
                for s in range(0, len(x_val), 64)
            ]
        val_loss = sum(losses) / len(x_val)
        script_mode.metric("validation-loss", val_loss)

    out = script_mode.model_dir()
    torch.save(net.state_dict(), out / WEIGHTS_FILE)
    if head is not None:
        torch.save(head.state_dict(), out / HEAD_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "task": TASK,
        "num_classes": k,
        "label_attribute": args["label_attribute"],
        "architecture": arch,
        "input": spec,
        "box_head": refiner.architecture(channels, k, args["head_width"]) if head is not None else None,
        "decode": {"max_boxes": args["max_boxes"], "min_score": args["min_score"], "nms_iou": args["nms_iou"]},
        "train_box_counts": counts,
        "train_count": n,
        "validation_count": int(len(x_val)),
        "validation_loss": val_loss,
        **torch_training.run_facts(args, epochs),
    }
    script_mode.finish_model(out, CONFIG_FILE, config, timer())


def train_head(args, images, boxes, classes, spec, generator, timer, start=None):
    """The second stage (refiner.CropHead), trained on the training images' true boxes, moved at
    random, and on random boxes that hold no object; from the state dict `start` when given."""
    n, k, size = len(images), args["num_classes"], spec["image_size"]
    rng = np.random.default_rng(args["seed"])
    head = refiner.build(refiner.architecture(spec["channels"], k, args["head_width"]))
    if start is not None:
        head.load_state_dict(start)
    batch_size = max(1, min(args["batch_size"], n))
    epochs = args["head_epochs"] or auto_head_epochs(n)

    def batch_loss(idx: np.ndarray):
        xb = torch.from_numpy(images[idx]).to(torch.float32)
        bb = [boxes[i].copy() for i in idx]
        if args["horizontal_flip"]:
            flip = rng.random(len(idx)) < 0.5
            xb = torch.where(torch.from_numpy(flip)[:, None, None, None], xb.flip(3), xb)
            for j in np.nonzero(flip)[0]:
                bb[j][:, 0] = size - bb[j][:, 0] - bb[j][:, 2]
        batch = refiner.samples(bb, [classes[i] for i in idx], size, k, rng)
        return refiner.loss(head, centernet.normalise(xb, spec["mean"], spec["std"]), batch)

    torch_training.fit(head, batch_loss, ["head-class", "head-edges"], args, n=n, batch_size=batch_size, epochs=epochs,
                       generator=generator, timer=timer, learning_rate=2e-3, label="box head epoch")
    head.eval()
    return head


def main(argv: list[str] | None = None) -> None:
    script_mode.entry_point(train, SPECS, argv)


if __name__ == "__main__":
    main()
