"""The parts of a PyTorch training script that the image tasks share: seeding, the
normalisation of square inputs, the epoch loop and the facts every model config records."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import hyperparameters as hp
import schedule as lr_schedule
import script_mode


def start(args: dict) -> tuple[script_mode.Timer, int, torch.Generator]:
    """Threads set, Python and torch seeded with `args["seed"]`, the hyperparameters logged;
    returns the run's timer, its thread count and the generator that shuffles and augments."""
    timer = script_mode.Timer()
    threads = script_mode.num_cpus()
    torch.set_num_threads(threads)
    seed = args["seed"]
    script_mode.seed_python(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    script_mode.log(hp.describe(args))
    return timer, threads, generator


def check_square_input(args: dict) -> None:
    """The networks halve the input four times, and read grey or colour images."""
    if args["image_size"] % 16:
        raise ValueError(f"hyperparameter image-size must be a multiple of 16, got {args['image_size']}")
    if args["channels"] not in (None, 1, 3):
        raise ValueError(f"hyperparameter channels must be 1, 3 or auto, got {args['channels']}")


def input_spec(images: np.ndarray, size: int, channels: int, num_classes: int) -> dict:
    """Input geometry and per-channel mean and std (on the [0, 1] scale) of uint8 images (N, C, S, S)."""
    scaled = images.astype(np.float32) / 255.0
    mean = [float(scaled[:, c].mean()) for c in range(channels)]
    std = [float(max(scaled[:, c].std(), 1e-3)) for c in range(channels)]
    return {"image_size": size, "channels": channels, "num_classes": num_classes, "mean": mean, "std": std}


def fit(net: torch.nn.Module, batch_loss: Callable[[np.ndarray], tuple[torch.Tensor, dict[str, float]]],
        parts: list[str], args: dict, *, n: int, batch_size: int, epochs: int,
        generator: torch.Generator, timer: script_mode.Timer, learning_rate: float | None = None,
        label: str = "epoch") -> None:
    """Train `net` with AdamW on a one-cycle schedule: each epoch a shuffled pass of whole batches
    (the last partial one dropped), `batch_loss(indices)` giving the loss and its logged parts.
    The batch order is drawn from `generator` before each epoch, so a seed gives the same run.
    The peak learning rate is `args["learning-rate"]` unless given; log lines start with `label`."""
    steps_per_epoch = max(1, n // batch_size)
    peak = args["learning_rate"] if learning_rate is None else learning_rate
    optimiser = torch.optim.AdamW(net.parameters(), lr=peak, weight_decay=args["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_schedule.one_cycle(epochs * steps_per_epoch, 0.15))
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(n, generator=generator)
        totals = dict.fromkeys(["loss", *parts], 0.0)
        for step in range(steps_per_epoch):
            value, losses = batch_loss(order[step * batch_size : (step + 1) * batch_size].numpy())
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            schedule.step()
            totals["loss"] += float(value.detach())
            for key, part in losses.items():
                totals[key] += part
        summary = " ".join(f"{key}={total / steps_per_epoch:.4f}" for key, total in totals.items())
        script_mode.log(f"{label} {epoch}/{epochs}: {summary} ({timer():.1f}s)")


def run_facts(args: dict, epochs: int) -> dict:
    """What a model config records of the run that made it."""
    return {
        "hyperparameters": {key.replace("_", "-"): value for key, value in args.items()},
        "epochs": epochs,
        "torch_version": torch.__version__,
    }
