"""The ledger: one record per input item, in input order, with the item's label once it has one.

Every step that changes labels writes a new ledger file (never edits one in place), so each
iteration's state stays on disk and a label, once written, is carried forward verbatim.
Record: {"id": <position in the input manifest>, "source": <input line>, "label": null | Label}.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Iterator

from labelloop.manifest import ID_KEY, Label


def new_record(item_id: int, source: dict[str, Any], label: Label | None = None) -> dict[str, Any]:
    return {"id": item_id, "source": source, "label": label.to_json() if label else None}


def label_of(record: dict[str, Any]) -> Label | None:
    data = record.get("label")
    return Label.from_json(data) if data else None


def job_line(record: dict[str, Any]) -> dict[str, Any]:
    """The line a labeling or transform job gets for an item: its input line plus its id."""
    return {ID_KEY: record["id"], **record["source"]}


def channel_line(record: dict[str, Any], attribute: str) -> dict[str, Any]:
    """An augmented-manifest line for training: input line, id, and the class index."""
    label = label_of(record)
    assert label is not None
    return {ID_KEY: record["id"], **record["source"], attribute: label.class_id}


def is_validation(item_id: int, seed: int, fraction: float) -> bool:
    """Stable, seeded assignment of a human-labeled item to the validation set.

    Stable across iterations: an item that judged one model never trains the next, and the set
    grows with the human labels in proportion.
    """
    digest = hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


# What a human label is for. Validation items judge models and never train the one they judge;
# under the iteration scope, a retired validation item (one the model would now auto-label)
# trains from then on.
TRAIN, VALIDATION, RETIRED = "train", "validation", "retired"
VERDICT_KEY = "verdict"  # cumulative scope: what the model that retired a validation item said of it


def verdict_of(record: dict[str, Any]) -> dict[str, Any] | None:
    return record.get(VERDICT_KEY)


def is_provisional(label: dict[str, Any] | None) -> bool:
    """A record's stored label is an auto-label this job made: the job scope judges it again.

    Human labels and labels the input manifest already carried (iteration 0) are never touched.
    Read from the stored JSON: the ledger steps test every record, and a Label each costs time.
    """
    return label is not None and not label["human"] and label["iteration"] > 0


def apply_labels(
    records: Iterable[dict[str, Any]],
    new_labels: dict[int, Label],
    splits: dict[int, str] | None = None,
    regate: bool = False,
    verdicts: dict[int, dict[str, Any]] | None = None,
    judge: Callable[[Any, Any], float] | None = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (record before, record after) with new labels (and splits) set.

    An item that already has a label keeps it, but for a provisional auto-label, which a human
    answer replaces. With `regate`, this gate's auto-labels replace the provisional ones: a
    provisional label the newest model no longer vouches for is withdrawn (the item is unlabeled
    again, and may go to humans). Human and input labels are kept as they are, whatever
    `new_labels` says.

    `verdicts` ({id: {"iteration", "predicted", "confidence"}}) records, for a validation item
    being retired, what the model that retired it predicted; whether it was right is judged
    against the item's human label and kept for good (a later model never rewrites it):
    `judge(predicted, label)` is the task type's quality in [0, 1] (by default, equality), and
    a pass/fail quality is kept as true or false.
    """
    splits, verdicts = splits or {}, verdicts or {}
    for record in records:
        item_id = record["id"]
        label = record["label"]
        provisional = is_provisional(label)
        if regate and provisional:
            label = None
        if item_id in new_labels and (label is None or (provisional and new_labels[item_id].human)):
            label = new_labels[item_id].to_json()  # a human answer outranks a provisional auto-label
        after = record if label is record["label"] else {**record, "label": label}
        if item_id in splits and label is not None:
            after = {**after, "split": splits[item_id]}
        if item_id in verdicts and label is not None and VERDICT_KEY not in after:
            verdict = verdicts[item_id]
            quality = judge(verdict["predicted"], label["class"]) if judge else float(verdict["predicted"] == label["class"])
            after = {**after, VERDICT_KEY: {**verdict, "correct": quality if 0 < quality < 1 else bool(quality)}}
        yield record, after


def split_of(record: dict[str, Any]) -> str:
    return record.get("split") or TRAIN
