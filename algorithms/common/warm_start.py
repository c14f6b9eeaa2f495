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
