"""Your own data in three commands: `labelloop prepare --from-folder` (real PNGs, one sub-folder
per class) and `--from-csv` (texts with a label column), then `labelloop run` with simulated
annotators answering from the truth file `prepare` wrote, to the end; `labelloop status` says so.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from labelloop.cli import main

CLASSES = {0: "zero", 1: "one", 7: "seven"}
PER_CLASS = 20


def labelloop(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0, out.getvalue()
    return out.getvalue()


def next_command(printed: str) -> list[str]:
    """The `labelloop run ...` line `prepare` printed, as arguments."""
    import shlex

    line = next(line for line in printed.splitlines() if line.strip().startswith("labelloop run "))
    return shlex.split(line)[1:]


def output_lines(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out / "output" / "output.manifest").read_text().splitlines() if t.strip()]


def test_a_folder_of_images_by_class_is_labeled_to_the_end(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    written = {name: 0 for name in CLASSES.values()}
    for pixels, target in zip(digits.images, digits.target):
        name = CLASSES.get(int(target))
        if name and written[name] < PER_CLASS:
            path = tmp_path / "photos" / name / f"{written[name]:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.uint8(pixels * 255 / 16)).save(path)
            written[name] += 1
    printed = labelloop("prepare", "--from-folder", str(tmp_path / "photos"), "--out", str(tmp_path / "data"))
    assert f"60 items, 3 classes (one {PER_CLASS}, seven {PER_CLASS}, zero {PER_CLASS})" in printed
    run = next_command(printed)
    out = tmp_path / "run"
    run[run.index("--output") + 1] = str(out)
    labelloop(*run, "--human-batch-size", "30", "--validation-size", "10", "--max-iterations", "2")

    lines = output_lines(out)
    assert len(lines) == 3 * PER_CLASS
    for line in lines:  # the true label is the sub-folder; simulated annotators give it, the model may too
        meta = line["label-metadata"]
        assert meta.get("class-name") == Path(line["source-ref"]).parent.name or meta.get("human-annotated") != "yes"
    assert sum(line["label-metadata"].get("human-annotated") == "yes" for line in lines) >= 30
    status = labelloop("status", str(out))
    assert status.splitlines()[0].startswith(f"run in {out} (job labelloop): finished")


def test_a_csv_of_texts_with_labels_is_labeled_to_the_end(tmp_path):
    words = {"billing": ["invoice", "refund", "charge", "card", "price"], "bug": ["crash", "error", "freeze", "button", "screen"]}
    rows = [{"id": i, "message": " ".join(words[c][(i * k) % 5] for k in range(1, 6)) + f" ticket {i}", "team": c}
            for i in range(60) for c in [("billing", "bug")[i % 2]]]
    with open(tmp_path / "tickets.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "message", "team"])
        writer.writeheader()
        writer.writerows(rows)
    printed = labelloop("prepare", "--from-csv", str(tmp_path / "tickets.csv"), "--text-column", "message",
                        "--label-column", "team", "--out", str(tmp_path / "data"))
    assert "60 items, 2 classes (billing 30, bug 30)" in printed
    run = next_command(printed)
    out = tmp_path / "run"
    run[run.index("--output") + 1] = str(out)
    labelloop(*run, "--human-batch-size", "20", "--validation-size", "10", "--max-iterations", "2")

    lines = output_lines(out)
    assert sorted(line["source"] for line in lines) == sorted(row["message"] for row in rows)
    team = {row["message"]: row["team"] for row in rows}
    for line in lines:
        meta = line["label-metadata"]
        if meta.get("human-annotated") == "yes":
            assert meta["class-name"] == team[line["source"]]
    assert sum(line["label-metadata"].get("human-annotated") == "yes" for line in lines) >= 40
    assert "finished" in labelloop("status", str(out)).splitlines()[0]
