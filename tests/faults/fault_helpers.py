"""Helpers for the fault suite: a small text dataset and the record `bench/fault_suite.py` reads.

Each test appends what it tried to the JSON Lines file named by LABELLOOP_FAULT_RECORD (when
the suite runs it): bad input lines tried, faults injected, and the run folders whose labels
the suite checks for losses.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from labelloop.manifest import item_key


def record(kind: str, test: str, count: int, output_dir: Path | None = None, attribute: str | None = None, **extra) -> None:
    path = os.environ.get("LABELLOOP_FAULT_RECORD")
    if not path:
        return
    entry = {"kind": kind, "test": test, "count": count, **extra}
    if output_dir is not None:
        entry.update(output_dir=str(output_dir), attribute=attribute)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


WORDS = {"ham": ["meeting", "lunch", "project", "report", "agenda"], "spam": ["winner", "prize", "casino", "offer", "free"]}


def text_dataset(folder: Path, n: int) -> tuple[Path, dict[str, str]]:
    """n short two-class texts (the scikit-learn algorithm trains on them in about a second)."""
    rnd = random.Random(0)
    lines, truth = [], {}
    for i in range(n):
        cls = "ham" if i % 2 else "spam"
        line = {"source": " ".join(rnd.choice(WORDS[cls]) for _ in range(6)) + f" n{i}"}
        lines.append(line)
        truth[item_key(line)] = cls
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(l) + "\n" for l in lines))
    return manifest, truth
