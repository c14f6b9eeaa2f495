"""Continue training from the model the previous iteration made.

The loop hands a training job the previous iteration's model.tar.gz as the `model` input channel
(SageMaker copies it to SM_CHANNEL_MODEL). Each iteration's training set holds every earlier
one's, and no validation item was ever trained on, so a network that starts from the previous
weights sees only labels it may see; it just does not start from nothing. `previous_model`
finds and unpacks that model for as long as it is read; the training script decides what in it
still fits (the same architecture, the same input) and says in its log what it took.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHANNEL = "model"
ARCHIVE = "model.tar.gz"


@contextlib.contextmanager
def previous_model(config_file: str) -> Iterator[tuple[Path, dict] | None]:
    """The previous model's folder and its config while the block runs, or None when the job has
    no `model` channel. An archive is unpacked into a temporary folder that the block's end
    removes (a local run's training jobs share this machine's temporary space).

    A channel that is there but holds no model of this kind is an error: the loop sent it."""
    folder = os.environ.get(f"SM_CHANNEL_{CHANNEL.upper()}")
    if not folder or not Path(folder).is_dir():
        yield None
        return
    with contextlib.ExitStack() as stack:
        root = Path(folder)
        archives = sorted(root.rglob(ARCHIVE))
        if archives:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="previous-model-")))
            with tarfile.open(archives[0]) as tar:
                tar.extractall(root, filter="data")
        configs = sorted(root.rglob(config_file))
        if not configs:
            raise ValueError(f"the {CHANNEL} channel ({folder}) holds no {ARCHIVE} with a {config_file}: "
                             "it must be the previous iteration's model of the same task type")
        path = configs[0]
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"the {CHANNEL} channel's {config_file} cannot be read: {exc}") from None
        yield path.parent, config


def starting_point(net, enabled: bool, config_file: str, weights_file: str, architecture: dict, spec: dict,
                   head: tuple[str, dict | None, str]) -> tuple[dict, dict | None]:
    """Load the previous model's weights into `net` when `enabled`, a previous model came and its
    network has exactly `architecture` and reads `spec`'s channels (else the log says why not).

    Returns the input normalisation to train with (the previous model's, which its weights
    learned, when it continues; else `spec`) and the head's weights to start from, or None.
    `head` is the head's config key, its architecture this time (None: no head) and its file."""
    import torch  # noqa: PLC0415  (the training containers have it; this module's finder does not need it)

    import script_mode  # noqa: PLC0415

    if not enabled:
        return spec, None
    with previous_model(config_file) as found:
        if found is None:
            return spec, None
        folder, config = found
        if config.get("architecture") != architecture or config.get("input", {}).get("channels") != spec["channels"]:
            script_mode.log("the previous model has another architecture or input: training from scratch")
            return spec, None

        def load(name: str) -> dict:
            return torch.load(folder / name, map_location="cpu", weights_only=True)

        key, head_arch, head_file = head
        head_state = load(head_file) if head_arch is not None and config.get(key) == head_arch and (folder / head_file).is_file() else None
        with_head = f", with its {key.replace('_', ' ')}" if head_state is not None else ""
        script_mode.log(f"continuing from the previous model (trained on {config.get('train_count')} images{with_head})")
        net.load_state_dict(load(weights_file))
        return config["input"], head_state
