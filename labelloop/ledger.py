"""The ledger: one record per input item, in input order, with the item's label once it has one.

Every step that changes labels writes a new ledger file (never edits one in place), so each
iteration's state stays on disk and a label, once written, is carried forward verbatim.
Record: {"id": <position in the input manifest>, "source": <input line>, "label": null | Label}.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

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
# a retired validation item (one the model would now auto-label) trains from then on.
TRAIN, VALIDATION, RETIRED = "train", "validation", "retired"
VERDICT_KEY = "verdict"  # a retired validation item: what the model that retired it said


def verdict_of(record: dict[str, Any]) -> dict[str, Any] | None:
    return record.get(VERDICT_KEY)


def apply_labels(
    records: Iterable[dict[str, Any]],
    new_labels: dict[int, Label],
    splits: dict[int, str] | None = None,
    verdicts: dict[int, dict[str, Any]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield records with new labels (and splits) set; an item that already has a label keeps it.

    `verdicts` ({id: {"iteration", "predicted", "confidence"}}) records, for a validation item
    being retired, what the model that retired it predicted; its correctness is judged here
    against the item's human label and kept for good (a later model never rewrites it).
    """
    splits, verdicts = splits or {}, verdicts or {}
    for record in records:
        item_id = record["id"]
        if record["label"] is None and item_id in new_labels:
            record = {**record, "label": new_labels[item_id].to_json()}
        if item_id in splits and record["label"] is not None:
            record = {**record, "split": splits[item_id]}
        if item_id in verdicts and record["label"] is not None and VERDICT_KEY not in record:
            verdict = verdicts[item_id]
            record = {**record, VERDICT_KEY: {**verdict, "correct": verdict["predicted"] == record["label"]["class"]}}
        yield record


def split_of(record: dict[str, Any]) -> str:
    return record.get("split") or TRAIN
