"""Train the image classifier (SageMaker script mode; PyTorch training container, CPU is enough;
CUDA is used when present, unmeasured).

    python train.py [--epochs 10 ...]     # hyperparameters also come from SM_HPS

Reads the `train` and (optional) `validation` channels (augmented-manifest JSON Lines whose
`source-ref` is `s3://...` or a local path), trains `network.SmallCNN` with AdamW, a one-cycle
learning-rate schedule (linear warm-up, cosine decay) and light augmentation (random shifts of
one pixel per 28 of the image side, while the set is small enough to be seen at least
`AUGMENT_MIN_EPOCHS` times; horizontal flips only when asked for), and writes to SM_MODEL_DIR:

    model.pt             the network's state dict
    model-config.json    architecture, preprocessing (ImageSpec), temperature, class counts

Calibration: temperature scaling. When the validation channel has at least
`calibration-min-items` items, one temperature T (bounded to [0.5, 10]) is fitted on their
logits by minimising the negative log-likelihood; inference divides the logits by T before the
softmax. With less validation data, or none misclassified, T stays 1 (plain softmax, trained
with `label-smoothing`, 0 by default). T never changes the predicted class. The validation items are also those the
orchestrator calibrates its threshold on; one scalar fitted on them hardly moves that choice,
which depends on how the confidences rank the items.

Prints `validation-accuracy=0.9731` when there is validation data.
"""

from __future__ import annotations

import math
import os

# OpenMP worker threads that spin while they wait stall badly when the cores are shared (3-5x
# slower training on a busy 2-core machine); letting them sleep costs little when they are not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads the OpenMP runtime

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import hyperparameters as hp  # noqa: E402
import manifest_channels  # noqa: E402
import object_loader  # noqa: E402
import preprocess  # noqa: E402
import schedule as lr_schedule  # noqa: E402
import script_mode  # noqa: E402
import temperature_scaling  # noqa: E402
import torch_training  # noqa: E402
from network import architecture, build, normaliser  # noqa: E402

CONFIG_FILE = "model-config.json"
WEIGHTS_FILE = "model.pt"
FORMAT_VERSION = 1

# Shifts pay only when each image is seen many times: with fewer passes the network is still
# underfitting and augmentation slows it further (Fashion-MNIST test accuracy, 17,000 items,
# 6 epochs: 89.9 % with one-pixel shifts, 90.5 % without; 400 items, 60 epochs: 82.7 % with,
# 82.0 % without).
AUGMENT_MIN_EPOCHS = 12

SPECS = [
    hp.Spec("label-attribute", str, "label", "manifest attribute holding the class index"),
    hp.Spec("num-classes", int, hp.REQUIRED, "number of classes K; labels are 0..K-1", minimum=1),
    hp.Spec("seed", int, 0, "seeds shuffling, initialisation, augmentation and dropout"),
    hp.Spec("epochs", int, None, "passes over the training set; auto: from the set's size", allow_auto=True, minimum=1),
    hp.Spec("batch-size", int, 128, "mini-batch size (reduced for small sets)", minimum=1),
    hp.Spec("learning-rate", float, 3e-3, "peak learning rate of the one-cycle schedule", minimum=0.0),
    hp.Spec("weight-decay", float, 1e-4, "AdamW weight decay", minimum=0.0),
    hp.Spec("width", int, 32, "channels of the first conv block (then 2x, 4x)", minimum=4, maximum=256),
    hp.Spec("dropout", float, 0.3, "dropout before the classifier", minimum=0.0, maximum=0.9),
    hp.Spec("label-smoothing", float, 0.0, "label smoothing of the cross-entropy loss", minimum=0.0, maximum=0.5),
    hp.Spec("augment", bool, None, f"random shifts during training; auto: while training runs at least {AUGMENT_MIN_EPOCHS} epochs",
            allow_auto=True),
    hp.Spec("horizontal-flip", bool, False, "random horizontal flips during training (photos, not digits)"),
    hp.Spec("image-size", int, None, "side of the square network input; auto: from the images", allow_auto=True, minimum=8, maximum=256),
    hp.Spec("channels", int, None, "1 (grayscale) or 3 (RGB); auto: 1 when all images are grayscale", allow_auto=True, minimum=1, maximum=3),
    hp.Spec("calibration-min-items", int, 30, "fewest validation items to fit the temperature on", minimum=1),
]

TARGET_STEPS = 600  # optimiser steps the auto epoch count aims for ...
MIN_EPOCHS, MAX_EPOCHS = 10, 60
SAMPLE_BUDGET = 180_000  # ... while not visiting many more images than this in all (~90 s on 2 cores at 28x28)
HEADER_SAMPLE = 512


def auto_epochs(n: int, batch_size: int) -> int:
    return lr_schedule.auto_epochs(n, batch_size, target_steps=TARGET_STEPS, min_epochs=MIN_EPOCHS,
                                   max_epochs=MAX_EPOCHS, sample_budget=SAMPLE_BUDGET)


def effective_batch_size(n: int, batch_size: int) -> int:
    """At least 8 steps an epoch on small sets, but never batches under 16."""
    return max(1, min(batch_size, max(16, math.ceil(n / 8)), n))


def image_ref(record: manifest_channels.Record) -> str:
    ref = record.data.get("source-ref")
    if not isinstance(ref, str) or not ref:
        raise record.error("missing 'source-ref' (the image's s3:// URI or file path)")
    return ref


def load_images(records: list[manifest_channels.Record], image_size: int, channels: int) -> np.ndarray:
    def load(record: manifest_channels.Record) -> np.ndarray:
        ref = image_ref(record)
        try:
            return preprocess.decode(object_loader.read_bytes(ref), image_size, channels)
        except (OSError, ValueError) as exc:
            raise record.error(f"cannot use image {ref}: {exc}") from None

    refs = (r.data.get("source-ref") for r in records)
    arrays = object_loader.map_ordered(load, records, object_loader.workers_for(refs))
    if not arrays:
        return np.zeros((0, channels, image_size, image_size), dtype=np.uint8)
    return np.stack(arrays)


def read_headers(records: list[manifest_channels.Record]) -> list[tuple[int, int, bool]]:
    step = max(1, len(records) // HEADER_SAMPLE)
    sample = records[::step][:HEADER_SAMPLE]

    def head(record: manifest_channels.Record) -> tuple[int, int, bool]:
        ref = image_ref(record)
        try:
            return preprocess.header(object_loader.read_bytes(ref))
        except (OSError, ValueError) as exc:
            raise record.error(f"cannot use image {ref}: {exc}") from None

    return object_loader.map_ordered(head, sample, object_loader.workers_for(r.data.get("source-ref") for r in sample))


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `max_shift` pixels each way, padding by replicating the edge."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift), mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


def training_device() -> torch.device:
    """CUDA when the instance has it (a GPU instance type: used, but not measured here), else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def predict_logits(net: torch.nn.Module, images: np.ndarray, normalise, batch_size: int = 512) -> np.ndarray:
    net.eval()
    device = next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images[start : start + batch_size]).to(device)
            out.append(net(normalise(batch)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def train(args: dict) -> None:
    timer, threads, generator = torch_training.start(args)
    k = args["num_classes"]
    attribute = args["label_attribute"]

    train_records = manifest_channels.read_channel(
        "train", manifest_channels.channel_dir("train"), label_attribute=attribute, num_classes=k
    )
    if not train_records:
        raise ValueError("the train channel has no items (SM_CHANNEL_TRAIN is unset, missing or empty)")
    val_records = manifest_channels.read_channel(
        "validation", manifest_channels.channel_dir("validation"), label_attribute=attribute, num_classes=k
    )
    if args["channels"] not in (None, 1, 3):
        raise ValueError(f"hyperparameter channels must be 1, 3 or auto, got {args['channels']}")
    image_size, channels = preprocess.choose_geometry(read_headers(train_records), args["image_size"], args["channels"])
    x_train = load_images(train_records, image_size, channels)
    y_train = np.array([r.label for r in train_records], dtype=np.int64)
    x_val = load_images(val_records, image_size, channels)
    y_val = np.array([r.label for r in val_records], dtype=np.int64)
    mean, std = preprocess.channel_stats(x_train)
    spec = preprocess.ImageSpec(image_size, channels, mean, std)
    counts = np.bincount(y_train, minlength=k).tolist()
    script_mode.log(
        f"loaded {len(x_train)} training and {len(x_val)} validation images as {channels}x{image_size}x{image_size} "
        f"in {timer():.1f}s; training items per class: {counts}"
    )

    n = len(x_train)
    batch_size = effective_batch_size(n, args["batch_size"])
    epochs = args["epochs"] or auto_epochs(n, batch_size)
    steps_per_epoch = max(1, n // batch_size)  # the last partial batch is dropped
    arch = architecture(channels, k, image_size, args["width"], args["dropout"])
    device = training_device()
    net = build(arch).to(device=device, memory_format=torch.channels_last)
    normalise = normaliser(mean, std)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args["learning_rate"], weight_decay=args["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_schedule.one_cycle(epochs * steps_per_epoch, 0.25))
    augment = args["augment"] if args["augment"] is not None else epochs >= AUGMENT_MIN_EPOCHS
    # One pixel at 28x28: three (1/8 of the side, as before) cost 0.3-1.7 points on Fashion-MNIST.
    max_shift = max(1, image_size // 28) if augment else 0
    images = torch.from_numpy(x_train)
    labels = torch.from_numpy(y_train)
    script_mode.log(
        f"training {epochs} epochs of {steps_per_epoch} steps, batch size {batch_size}, "
        f"shifts up to {max_shift} px, {threads} threads, on {device.type}"
    )

    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(n, generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb = images[idx].to(torch.float32)
            if max_shift:
                xb = random_shift(xb, max_shift, generator)
            if args["horizontal_flip"]:
                flip = torch.rand(len(idx), generator=generator) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            xb, yb = xb.to(device), labels[idx].to(device)  # augmentation stays on CPU: the seeded generator is there
            logits = net(normalise(xb))
            loss = F.cross_entropy(logits, yb, label_smoothing=args["label_smoothing"])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        script_mode.log(
            f"epoch {epoch}/{epochs}: train-loss={total_loss / seen:.4f} train-accuracy={correct / seen:.4f} ({timer():.1f}s)"
        )

    temperature, val_accuracy = 1.0, None
    if len(x_val):
        logits = predict_logits(net, x_val, normalise)
        val_accuracy = float((logits.argmax(1) == y_val).mean())
        script_mode.metric("validation-accuracy", val_accuracy)
        if len(x_val) >= args["calibration_min_items"]:
            temperature = temperature_scaling.fit_temperature(logits, y_val)
        before = temperature_scaling.expected_calibration_error(temperature_scaling.softmax(logits), y_val)
        after = temperature_scaling.expected_calibration_error(temperature_scaling.softmax(logits, temperature), y_val)
        script_mode.log(f"temperature={temperature:.4f} (validation ECE {before:.4f} -> {after:.4f})")
    else:
        script_mode.log("no validation data: no validation-accuracy metric, temperature 1")

    out = script_mode.model_dir()
    torch.save(net.state_dict(), out / WEIGHTS_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "task": "image-classification",
        "num_classes": k,
        "label_attribute": attribute,
        "architecture": arch,
        "image": spec.to_json(),
        "temperature": temperature,
        "train_class_counts": counts,
        "validation_count": int(len(x_val)),
        "validation_accuracy": val_accuracy,
        **torch_training.run_facts(args, epochs),
    }
    script_mode.finish_model(out, CONFIG_FILE, config, timer())


def main(argv: list[str] | None = None) -> None:
    script_mode.entry_point(train, SPECS, argv)


if __name__ == "__main__":
    main()
