"""Train the semantic segmenter (SageMaker script mode; PyTorch training container, CPU is
enough; CUDA is used when present).

    python train.py --num-classes 10 [--epochs 30 ...]     # hyperparameters also come from SM_HPS

Reads the `train` and (optional) `validation` channels: augmented-manifest JSON Lines whose
`source-ref` is the image and whose label attribute names its Ground Truth mask (`s3://...`, a
local path or a data: URL; `mask_labels`: class ids 0..K, 0 the background, K = num-classes). Every image
and mask is stretched to a square `image-size` (the mask by nearest neighbour), and
`unet.UNet` is trained with AdamW on a one-cycle schedule (cross-entropy with the background
weighted down, plus Dice), with random horizontal flips and a random zoom of each batch
(`scale-jitter`). Writes to SM_MODEL_DIR:

    model.pt             the network's state dict
    model-config.json    architecture, input geometry and normalisation

Prints `validation-loss=...` and `validation-iou=...` (the mean of Ground Truth's per-image IoU)
when there is validation data.
"""

from __future__ import annotations

import dataclasses
import os

# OpenMP worker threads that spin while they wait stall badly when the cores are shared.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads the OpenMP runtime

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import confidence  # noqa: E402
import hyperparameters as hp  # noqa: E402
import image_input  # noqa: E402
import manifest_channels  # noqa: E402
import mask_labels  # noqa: E402
import object_loader  # noqa: E402
import region_head  # noqa: E402
import regions  # noqa: E402
import schedule as lr_schedule  # noqa: E402
import script_mode  # noqa: E402
import torch_training  # noqa: E402
import unet  # noqa: E402
import warm_start  # noqa: E402

CONFIG_FILE = "model-config.json"
WEIGHTS_FILE = "model.pt"
HEAD_FILE = "region-head.pt"
FORMAT_VERSION = 1
TASK = "semantic-segmentation"

SPECS = [
    hp.Spec("label-attribute", str, "label-ref", "the attribute naming the mask (`label` also finds `label-ref`)"),
    hp.Spec("num-classes", int, hp.REQUIRED, "foreground classes K; mask class ids are 0..K, 0 the background", minimum=1, maximum=254),
    hp.Spec("seed", int, 0, "seeds shuffling, initialisation and augmentation"),
    hp.Spec("epochs", int, None, "passes over the training set; auto: from the set's size", allow_auto=True, minimum=1),
    hp.Spec("batch-size", int, 16, "mini-batch size (reduced for small sets)", minimum=1),
    hp.Spec("learning-rate", float, 4e-3, "peak learning rate of the one-cycle schedule", minimum=0.0),
    hp.Spec("weight-decay", float, 1e-4, "AdamW weight decay", minimum=0.0),
    hp.Spec("width", int, 16, "channels of the first level (then 2x, 3x, 4x)", minimum=4, maximum=128),
    hp.Spec("image-size", int, 128, "side of the square network input (a multiple of 16)", minimum=32, maximum=512),
    hp.Spec("channels", int, None, "1 (grayscale) or 3 (RGB); auto: 1 when all images are grayscale", allow_auto=True, minimum=1, maximum=3),
    hp.Spec("background-weight", float, 0.25, "weight of background pixels in the cross-entropy (objects are a tenth of the pixels)", minimum=0.01, maximum=1.0),
    hp.Spec("horizontal-flip", bool, True, "random horizontal flips during training"),
    hp.Spec("scale-jitter", float, 0.25, "random zoom of each training batch by up to this share (0: none)", minimum=0.0, maximum=0.5),
    hp.Spec("region-head", bool, True, "a second look at each object of the mask (region_head.py): its class"),
    hp.Spec("head-epochs", int, None, "passes of the region head over the training objects; auto: from their number", allow_auto=True, minimum=1),
    hp.Spec("head-width", int, 32, "channels of the region head's first conv block (then 2x, 4x)", minimum=4, maximum=128),
    hp.Spec("head-learning-rate", float, 3e-3, "peak learning rate of the region head", minimum=0.0),
    hp.Spec("warm-start", bool, True, "start from the previous model (the `model` channel) when its architecture is the same"),
]

TARGET_STEPS = 600  # optimiser steps the auto epoch count aims for ...
MIN_EPOCHS, MAX_EPOCHS = 8, 60
SAMPLE_BUDGET = 8_000  # ... while not visiting many more images than this (~4 min on 1 busy core at 128x128)


def auto_epochs(n: int, batch_size: int) -> int:
    return lr_schedule.auto_epochs(n, batch_size, target_steps=TARGET_STEPS, min_epochs=MIN_EPOCHS,
                                   max_epochs=MAX_EPOCHS, sample_budget=SAMPLE_BUDGET)


def read_masks(name: str, args: dict) -> list[manifest_channels.Record]:
    """The channel's records, each labeled (key, reference) with the key that names its mask."""
    keys, k = mask_labels.mask_keys(args["label_attribute"]), args["num_classes"]
    records = manifest_channels.read_channel(
        name, manifest_channels.channel_dir(name), label_attribute=keys[0], num_classes=k,
        parse=mask_labels.parse_mask_ref, require_label=len(keys) == 1,
    )
    out = []
    for record in records:
        key = keys[0] if record.label is not None else keys[-1]
        if record.label is None:
            if key not in record.data:
                raise record.error(f"missing label attribute {keys[0]!r} (or {key!r})")
            try:
                mask_labels.parse_mask_ref(record.data[key], k)
            except ValueError as exc:
                raise record.error(f"label attribute {key!r}: {exc}") from None
        out.append(dataclasses.replace(record, label=(key, record.data[key])))
    return out


def load(records: list[manifest_channels.Record], args: dict, channels: int | None):
    """Images (N, C, S, S) uint8, masks (N, S, S) uint8 of class ids, and the images' depths."""
    size, k = args["image_size"], args["num_classes"]

    def one(record: manifest_channels.Record):
        ref = record.data.get("source-ref")
        if not isinstance(ref, str) or not ref:
            raise record.error("missing 'source-ref' (the image's s3:// URI or file path)")
        key, mask_ref = record.label
        try:
            colors = mask_labels.color_map(mask_labels.metadata_of(record.data, key), k)
        except ValueError as exc:
            raise record.error(f"the mask's metadata: {exc}") from None
        try:
            pixels, (width, height, depth) = image_input.decode_image(object_loader.read_bytes(ref), size, channels or 3)
        except (OSError, ValueError) as exc:
            raise record.error(f"cannot use image {ref}: {exc}") from None
        try:
            data = object_loader.read_bytes(mask_ref)
        except (OSError, ValueError) as exc:
            raise record.error(f"cannot use mask: {exc}") from None
        try:
            ids = mask_labels.decode_mask(data, k, colors)
        except ValueError as exc:
            raise record.error(f"mask {object_loader.short(mask_ref)} {exc}") from None
        if ids.shape != (height, width):
            raise record.error(f"mask {object_loader.short(mask_ref)} is {ids.shape[1]}x{ids.shape[0]} but image {ref} is {width}x{height}")
        return pixels, mask_labels.resize_mask(ids, size), depth

    workers = object_loader.workers_for(r.data.get("source-ref") for r in records)
    loaded = object_loader.map_ordered(one, records, workers)
    c = channels or 3
    images = np.stack([x[0] for x in loaded]) if loaded else np.zeros((0, c, size, size), np.uint8)
    masks = np.stack([x[1] for x in loaded]) if loaded else np.zeros((0, size, size), np.uint8)
    return images, masks, [x[2] for x in loaded]


def zoom(xb: torch.Tensor, yb: torch.Tensor, factor: float, generator: torch.Generator):
    """Images and masks zoomed by `factor` about one random point, cropped or edge-padded back."""
    size = xb.shape[-1]
    new = max(8, int(round(size * factor)))
    xb = F.interpolate(xb, size=(new, new), mode="bilinear", align_corners=False)
    yb = F.interpolate(yb[:, None].float(), size=(new, new), mode="nearest")
    room = abs(new - size)
    dx, dy = (int(v) for v in torch.randint(0, room + 1, (2,), generator=generator))
    if new > size:
        return xb[..., dy : dy + size, dx : dx + size], yb[:, 0, dy : dy + size, dx : dx + size].long()
    pad = (dx, room - dx, dy, room - dy)
    return F.pad(xb, pad, mode="replicate"), F.pad(yb, pad, mode="replicate")[:, 0].long()


def evaluate(net, head, images, masks, spec, device, background_weight: float) -> tuple[float, float]:
    """Mean loss and mean image IoU over a labeled set (the masks after the head's second look)."""
    net.eval()
    total, ious = 0.0, []
    with torch.inference_mode():
        for start in range(0, len(images), 64):
            xb = torch.from_numpy(images[start : start + 64]).to(device)
            yb = torch.from_numpy(masks[start : start + 64]).long().to(device)
            x = unet.normalise(xb, spec["mean"], spec["std"])
            logits = net(x)
            total += float(unet.loss(logits, yb, background_weight)[0]) * len(xb)
            probs = unet.probabilities(logits, background_weight).cpu().numpy()
            predicted = regions.decode(probs)
            if head is not None:
                predicted, _ = region_head.relabel(head, x.cpu(), predicted, probs)
            ious.extend(confidence.image_iou(p, r) for p, r in zip(predicted, masks[start : start + 64]))
    return total / len(images), float(np.mean(ious))


def train(args: dict) -> None:
    timer, threads, generator = torch_training.start(args)
    k, size = args["num_classes"], args["image_size"]
    torch_training.check_square_input(args)

    train_records, val_records = read_masks("train", args), read_masks("validation", args)
    if not train_records:
        raise ValueError("the train channel has no items (SM_CHANNEL_TRAIN is unset, missing or empty)")
    x_train, y_train, depths = load(train_records, args, args["channels"])
    channels = args["channels"] or (1 if all(d == 1 for d in depths) else 3)
    x_train = x_train[:, :1] if channels == 1 and args["channels"] is None else x_train  # grayscale read as RGB: equal planes
    x_val, y_val, _ = load(val_records, args, channels)
    spec = torch_training.input_spec(x_train, size, channels, k)
    pixels = np.bincount(y_train.ravel(), minlength=k + 1).tolist()
    script_mode.log(f"loaded {len(x_train)} training and {len(x_val)} validation images as {channels}x{size}x{size} "
                    f"in {timer():.1f}s; training pixels per class id 0..{k}: {pixels}")

    n = len(x_train)
    batch_size = max(1, min(args["batch_size"], n))
    epochs = args["epochs"] or auto_epochs(n, batch_size)
    arch = unet.architecture(channels, k, size, args["width"])
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    net = unet.build(arch)
    head_arch = region_head.architecture(channels, k, args["head_width"]) if args["region_head"] else None
    spec, head_start = warm_start.starting_point(net, args["warm_start"], CONFIG_FILE, WEIGHTS_FILE, arch, spec,
                                                 ("region_head", head_arch, HEAD_FILE))
    net = net.to(device)
    script_mode.log(f"training {epochs} epochs of {max(1, n // batch_size)} steps, batch size {batch_size}, {threads} threads, on {device.type}")

    def batch_loss(idx: np.ndarray):
        xb, yb = torch.from_numpy(x_train[idx]).float(), torch.from_numpy(y_train[idx]).long()
        if args["horizontal_flip"]:
            flip = torch.rand(len(idx), generator=generator) < 0.5
            xb, yb = torch.where(flip[:, None, None, None], xb.flip(3), xb), torch.where(flip[:, None, None], yb.flip(2), yb)
        if args["scale_jitter"]:
            xb, yb = zoom(xb, yb, 1.0 + args["scale_jitter"] * (2 * float(torch.rand(1, generator=generator)) - 1), generator)
        return unet.loss(net(unet.normalise(xb.to(device), spec["mean"], spec["std"])), yb.to(device), args["background_weight"])

    torch_training.fit(net, batch_loss, ["ce", "dice"], args, n=n, batch_size=batch_size, epochs=epochs,
                       generator=generator, timer=timer)

    head = train_head(args, x_train, y_train, spec, channels, generator, timer, head_start) if args["region_head"] else None

    val_loss = val_iou = None
    if len(x_val):
        val_loss, val_iou = evaluate(net, head, x_val, y_val, spec, device, args["background_weight"])
        script_mode.metric("validation-loss", val_loss)
        script_mode.metric("validation-iou", val_iou)

    out = script_mode.model_dir()
    torch.save(net.to("cpu").state_dict(), out / WEIGHTS_FILE)
    if head is not None:
        torch.save(head.state_dict(), out / HEAD_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "task": TASK,
        "num_classes": k,
        "label_attribute": args["label_attribute"],
        "architecture": arch,
        "input": spec,
        "background_weight": args["background_weight"],
        "region_head": region_head.architecture(channels, k, args["head_width"]) if head is not None else None,
        "train_pixel_counts": pixels,
        "train_count": n,
        "validation_count": int(len(x_val)),
        "validation_loss": val_loss,
        "validation_iou": val_iou,
        **torch_training.run_facts(args, epochs),
    }
    script_mode.finish_model(out, CONFIG_FILE, config, timer())


def train_head(args, images, masks, spec, channels, generator, timer, start=None):
    """The region head, on the training masks' objects (on the CPU: crops are small), from the
    state dict `start` when given."""
    objects, usable = region_head.training_objects(masks)
    if not len(usable):
        script_mode.log("no object of at least region_head.MIN_PIXELS pixels in the training masks: no region head")
        return None
    head = region_head.build(region_head.architecture(channels, args["num_classes"], args["head_width"]))
    if start is not None:
        head.load_state_dict(start)
    x = unet.normalise(torch.from_numpy(images), spec["mean"], spec["std"])
    rng = np.random.default_rng(args["seed"])
    batch_size = max(1, min(region_head.BATCH, len(usable)))
    epochs = args["head_epochs"] or region_head.auto_epochs(len(usable))
    script_mode.log(f"region head: {len(usable)} training objects, {epochs} epochs")
    torch_training.fit(head, lambda idx: region_head.training_batch_loss(head, x, objects, usable[idx], rng), ["region-class"],
                       args, n=len(usable), batch_size=batch_size, epochs=epochs, generator=generator, timer=timer,
                       learning_rate=args["head_learning_rate"], label="region head epoch")
    return head.eval()


def main(argv: list[str] | None = None) -> None:
    script_mode.entry_point(train, SPECS, argv)


if __name__ == "__main__":
    main()
