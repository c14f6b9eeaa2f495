"""Shared by the dataset preparer tests: the checks every prepared dataset must pass, a folder's snapshot."""

from __future__ import annotations

from pathlib import Path

from labelloop.datasets import PreparedDataset, load_truth, read_label_config
from labelloop.manifest import item_key, iter_json_lines, parse_line


def read_manifest(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [parse_line(text, number) for number, text in iter_json_lines(handle)]


def check_consistent(result: PreparedDataset) -> tuple[list[dict], dict[str, str]]:
    """Checks every prepared dataset must pass; returns the manifest lines and the truth."""
    lines = read_manifest(result.manifest)
    truth = load_truth(result.truth)
    keys = [item_key(line) for line in lines]
    assert len(lines) == result.count
    assert len(set(keys)) == len(keys), "manifest keys must be unique"
    assert set(keys) == set(truth), "truth keys must match manifest keys exactly"
    assert read_label_config(result.label_config) == result.class_names
    assert set(truth.values()) <= set(result.class_names)
    for line in lines:
        assert set(line) in ({"source-ref"}, {"source"}), "the manifest must hold no labels"
    counts = {name: 0 for name in result.class_names}
    for label in truth.values():
        counts[label] += 1
    assert result.class_counts == counts
    return lines, truth


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
