"""`labelloop prepare --from-folder / --from-csv`: a person's own images and texts made into a
manifest, a label config and (labels known) a truth file; bad input named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelloop import cli
from labelloop.datasets import load_truth, read_label_config
from labelloop.datasets.own import PrepareError, prepare_from_csv, prepare_from_folder
from labelloop.manifest import item_key


def png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)
    return path


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text().splitlines() if t.strip()]


def test_class_sub_folders_give_the_classes_and_a_hidden_truth(tmp_path):
    for cls, n in (("cat", 3), ("dog", 2)):
        for i in range(n):
            png(tmp_path / "pets" / cls / f"{i}.png", 40 * i)
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "pets" / ".DS_Store").write_text("")
    prepared = prepare_from_folder(tmp_path / "pets", tmp_path / "out")
    lines = manifest_lines(prepared.manifest)
    assert len(lines) == prepared.count == 5
    assert all(set(line) == {"source-ref"} for line in lines), "the manifest lists the images unlabeled"
    assert read_label_config(prepared.label_config) == ["cat", "dog"]
    truth = load_truth(prepared.truth)
    assert {item_key(line): Path(line["source-ref"]).parent.name for line in lines} == truth
    assert prepared.class_counts == {"cat": 3, "dog": 2}
    assert prepared.notes and "notes.txt" in prepared.notes[0]


def test_a_folder_of_images_only_is_unlabeled_and_needs_the_classes(tmp_path):
    for i in range(3):
        png(tmp_path / "photos" / f"{i}.jpg")
    with pytest.raises(PrepareError, match="no class sub-folders.*--classes"):
        prepare_from_folder(tmp_path / "photos", tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "truth.jsonl").write_text("{}\n")  # from an earlier preparation
    prepared = prepare_from_folder(tmp_path / "photos", tmp_path / "out", classes=["cat", "dog"])
    assert prepared.truth is None and not (tmp_path / "out" / "truth.jsonl").exists()
    assert read_label_config(prepared.label_config) == ["cat", "dog"]
    assert len(manifest_lines(prepared.manifest)) == 3


@pytest.mark.parametrize("build, message", [
    (lambda root: root.mkdir(), "no images found"),
    (lambda root: (root / "a").mkdir(parents=True), "a: no images in this class sub-folder"),
    (lambda root: (png(root / "a" / "1.png"), png(root / "b" / "1.png"), (root / "b" / "2.png").write_bytes(b"nope")),
     "b/2.png: not a readable image"),
    (lambda root: (png(root / "a" / "1.png"), png(root / "b" / "1.png"), png(root / "3.png")),
     "move each image into its class's sub-folder"),
    (lambda root: png(root / "only" / "1.png"), "at least two classes"),
])
def test_bad_folders_are_named(tmp_path, build, message):
    build(tmp_path / "in")
    with pytest.raises(PrepareError, match=message):
        prepare_from_folder(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_a_csv_with_labels_gives_texts_classes_and_truth(tmp_path):
    csv_file = tmp_path / "tickets.csv"
    csv_file.write_text('id,body,topic\n1,"Refund my card, please",billing\n2,"App crashes\non start",bug\n'
                        '3,"Refund my card, please",billing\n4,Invoice is wrong,billing\n', encoding="utf-8")
    prepared = prepare_from_csv(csv_file, tmp_path / "out", text_column="body", label_column="topic")
    lines = manifest_lines(prepared.manifest)
    assert [line["source"] for line in lines] == ["Refund my card, please", "App crashes\non start", "Invoice is wrong"]
    assert read_label_config(prepared.label_config) == ["billing", "bug"]
    assert load_truth(prepared.truth) == {item_key(lines[0]): "billing", item_key(lines[1]): "bug",
                                          item_key(lines[2]): "billing"}
    assert "1 row(s) repeating" in prepared.notes[0]


def test_a_csv_without_labels_needs_the_classes(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("text\nhello\nworld\n")
    with pytest.raises(PrepareError, match="no label column.*--classes"):
        prepare_from_csv(csv_file, tmp_path / "out")
    prepared = prepare_from_csv(csv_file, tmp_path / "out", classes=["a", "b"])
    assert prepared.truth is None and prepared.count == 2


@pytest.mark.parametrize("text, kwargs, message", [
    ("body\nx\n", {}, r"no column 'text' in the header row \(columns: body\)"),
    ("text,label\nx,a\n  ,b\n", {}, r"t.csv: line 3: empty text in column 'text'"),
    ("text,label\nx,a\ny,\n", {}, r"t.csv: line 3: empty label in column 'label'"),
    ("text,label\nx,a\nx,b\n", {}, r"line 3 repeats the text of line 2 with another label"),
    ("text,label\nx,a\ny,Billing\n", {"classes": ["a", "billing"]}, r"line 3: label 'Billing' is not one of --classes "
     r"a, billing \(did you mean 'billing'\?\)"),
    ("text,kind\nx,a\n", {"label_column": "label"}, r"no column 'label' \(--label-column\)"),
    ("", {}, "empty file"),
    ("text,label\n", {}, "no rows under the header row"),
])
def test_bad_csv_files_are_named_by_line(tmp_path, text, kwargs, message):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text(text)
    with pytest.raises(PrepareError, match=message):
        prepare_from_csv(csv_file, tmp_path / "out", **kwargs)


def test_the_command_prints_the_next_command_and_refuses_bad_input_with_status_2(tmp_path, capsys):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("text,label\nhello there,a\ngeneral kenobi,b\n")
    assert cli.main(["prepare", "--from-csv", str(csv_file), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "2 items, 2 classes (a 1, b 1)" in printed
    assert f"--truth {tmp_path / 'out' / 'truth.jsonl'}" in printed and "labelloop run --manifest" in printed
    assert cli.main(["prepare", "--from-folder", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"labelloop: {tmp_path / 'missing'}: no such folder\n"
    assert cli.main(["prepare", "--out", str(tmp_path / "o")]) == 2
    assert "--from-folder DIR or --from-csv FILE" in capsys.readouterr().err


def test_a_public_dataset_with_bad_input_fails_in_one_line_with_status_2(tmp_path, capsys):
    assert cli.main(["prepare", "fashion-mnist", "--out", str(tmp_path / "o"), "--source", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"labelloop: Fashion-MNIST folder {tmp_path / 'none'} not found") and err.count("\n") == 1
    (tmp_path / "a-file").write_text("")
    assert cli.main(["prepare", "digits", "--out", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labelloop: ") and "a-file" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stopped:
        cli.main(["prepare", "digits", "--out", str(tmp_path / "d"), "--limit", "0"])
    assert stopped.value.code == 2 and "--limit: must be a positive whole number, got '0'" in capsys.readouterr().err
