"""Writing a new ledger file from the last one with new labels applied (the ledger is never edited)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from labelloop import ledger, storage
from labelloop.manifest import Label


def rewrite_ledger(
    src: str,
    dst: str,
    new_labels: Mapping[int, Label],
    splits: dict[int, str] | None = None,
    regate: bool = False,
    verdicts: dict[int, dict[str, Any]] | None = None,
    judge: Callable[[Any, Any], float] | None = None,
) -> dict[str, int]:
    """Stream the ledger into a new file with new labels applied; counts what changed.

    remaining: items without a label; auto: auto-labels this job made, now; new_auto: of them,
    items unlabeled before; withdrawn / relabeled: provisional auto-labels dropped / changed class.
    """
    counts = dict.fromkeys(("remaining", "auto", "new_auto", "withdrawn", "relabeled"), 0)
    with storage.LineWriter(dst) as writer:
        before = storage.iter_json_lines(src)
        for old, record in ledger.apply_labels(before, new_labels, splits, regate, verdicts, judge):
            label, previous = record["label"], old["label"]
            counts["remaining"] += label is None
            own = ledger.is_provisional(label)
            counts["auto"] += own
            counts["new_auto"] += own and previous is None
            if ledger.is_provisional(previous):
                counts["withdrawn"] += label is None
                counts["relabeled"] += label is not None and label["class"] != previous["class"]
            writer.write(record)
    return counts
