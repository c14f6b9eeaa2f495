"""Continue training from the model the previous iteration made.

The loop hands a training job the previous iteration's model.tar.gz as the `model` input channel
(SageMaker copies it to SM_CHANNEL_MODEL). Each iteration's training set holds every earlier
one's, and no validation item was ever trained on, so a network that starts from the previous
weights sees only labels it may see; it just does not start from nothing. `previous_model`
finds and unpacks that model; the training script decides what in it still fits (the same
architecture, the same input) and says in its log what it took.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHANNEL = "model"
ARCHIVE = "model.tar.gz"


def previous_model(config_file: str) -> tuple[Path, dict] | None:
    """The previous model's folder and its config, or None when the job has no `model` channel.

    A channel that is there but holds no model of this kind is an error: the loop sent it."""
    folder = os.environ.get(f"SM_CHANNEL_{CHANNEL.upper()}")
    if not folder or not Path(folder).is_dir():
        return None
    root = Path(folder)
    archives = sorted(root.rglob(ARCHIVE))
    if archives:
        root = Path(tempfile.mkdtemp(prefix="previous-model-"))
        with tarfile.open(archives[0]) as tar:
            tar.extractall(root, filter="data")
    configs = sorted(root.rglob(config_file))
    if not configs:
        raise ValueError(f"the {CHANNEL} channel ({folder}) holds no {ARCHIVE} with a {config_file}: "
                         "it must be the previous iteration's model of the same task type")
    path = configs[0]
    try:
        return path.parent, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"the {CHANNEL} channel's {config_file} cannot be read: {exc}") from None


@dataclass
class Start:
    """What a training script takes from the previous model besides the network's weights: the
    input normalisation they were trained on, and the weights of each head that still fits."""

    input_spec: dict
    heads: dict[str, dict]


def starting_point(net, config_file: str, weights_file: str, architecture: dict, channels: int,
                   heads: dict[str, tuple[dict | None, str]]) -> Start | None:
    """Load the previous model's weights into `net` when its network has exactly `architecture`
    and reads `channels` channels, and return what else it offers; else None (the log says why).
    `heads` maps a config key to the head's architecture (None: no head this time) and its
    weights file."""
    import torch  # noqa: PLC0415  (the training containers have it; this module's finder does not need it)

    import script_mode  # noqa: PLC0415

    found = previous_model(config_file)
    if found is None:
        return None
    folder, config = found
    if config.get("architecture") != architecture or config.get("input", {}).get("channels") != channels:
        script_mode.log("the previous model has another architecture or input: training from scratch")
        return None

    def load(name: str) -> dict:
        return torch.load(folder / name, map_location="cpu", weights_only=True)

    kept = {key: load(file) for key, (arch, file) in heads.items()
            if arch is not None and config.get(key) == arch and (folder / file).is_file()}
    script_mode.log(f"continuing from the previous model (trained on {config.get('train_count')} images"
                    f"{', with its ' + ', '.join(k.replace('_', ' ') for k in kept) if kept else ''})")
    net.load_state_dict(load(weights_file))
    return Start(config["input"], kept)
