"""Dataset preparers: digits end to end, IDX parsing, truth and label configs (SpamAssassin: test_datasets_spamassassin.py)."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelloop.datasets import (
    PREPARERS,
    PreparedDataset,
    load_truth,
    prepare_digits,
    prepare_fashion_mnist,
    prepare_fashion_mnist_detection,
    prepare_fashion_mnist_segmentation,
    prepare_spamassassin,
    read_label_config,
)
from labelloop.datasets import common
from labelloop.datasets.fashion_mnist import IdxFormatError, parse_idx, read_idx_gz
from labelloop.manifest import ManifestError

from dataset_helpers import check_consistent, snapshot


# ---------------------------------------------------------------------------------------------
# digits


@pytest.fixture(scope="module")
def digits_full(tmp_path_factory) -> tuple[Path, PreparedDataset]:
    out = tmp_path_factory.mktemp("digits")
    return out, prepare_digits(out)


def test_digits_end_to_end(digits_full):
    out, result = digits_full
    assert result.count == 1797
    assert result.task_type == "image-classification"
    assert result.class_names == [str(d) for d in range(10)]
    assert sum(result.class_counts.values()) == 1797 and min(result.class_counts.values()) > 150
    lines, truth = check_consistent(result)
    pngs = sorted((out / "images").rglob("*.png"))
    assert len(pngs) == 1797
    for line in lines:
        path = Path(line["source-ref"])
        assert path.is_absolute() and path.suffix == ".png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "L" and image.size == (8, 8)
    # Pixels are the sklearn values scaled from 0..16 to 0..255, losslessly.
    from sklearn.datasets import load_digits

    digits = load_digits()
    first = np.asarray(Image.open(lines[0]["source-ref"]))
    np.testing.assert_array_equal(first, np.rint(digits.images[0] * 255 / 16).astype(np.uint8))
    assert first.max() == 255 or digits.images[0].max() < 16
    assert truth[lines[0]["source-ref"]] == str(digits.target[0])
    labels = json.loads(result.label_config.read_text())
    assert labels["document-version"] == "2018-11-28"
    assert not list(out.glob(".*")), "no temp files left behind"


def test_digits_rerun_is_idempotent(digits_full, tmp_path):
    out, _ = digits_full
    before = snapshot(out)
    prepare_digits(out)
    assert snapshot(out) == before


def test_digits_limit_is_seeded_and_rerun_replaces_images(tmp_path):
    a = prepare_digits(tmp_path / "a", limit=50, seed=7)
    b = prepare_digits(tmp_path / "b", limit=50, seed=7)
    c = prepare_digits(tmp_path / "c", limit=50, seed=8)
    assert a.count == b.count == c.count == 50
    check_consistent(a)
    relocated = {name: data.replace(b"/b/images/", b"/a/images/") for name, data in snapshot(tmp_path / "b").items()}
    assert snapshot(tmp_path / "a") == relocated
    assert a.truth.read_text() != c.truth.read_text().replace("/c/images/", "/a/images/")
    # A smaller re-run into the same folder leaves no images of the bigger one behind.
    prepare_digits(tmp_path / "a", limit=20, seed=7)
    assert len(list((tmp_path / "a" / "images").rglob("*.png"))) == 20
    check_consistent(prepare_digits(tmp_path / "a", limit=20, seed=7))
    with pytest.raises(ValueError, match="limit"):
        prepare_digits(tmp_path / "d", limit=0)


def test_image_paths_are_sharded_above_ten_thousand():
    assert common.image_relpaths(3) == ["00000.png", "00001.png", "00002.png"]
    assert len(set(common.image_relpaths(10_000))) == 10_000
    assert all("/" not in p for p in common.image_relpaths(10_000))
    paths = common.image_relpaths(70_000)
    assert paths[0] == "000/00000.png" and paths[9_999] == "000/09999.png"
    assert paths[10_000] == "001/10000.png" and paths[-1] == "006/69999.png"
    folders = {}
    for p in paths:
        folders[p.split("/")[0]] = folders.get(p.split("/")[0], 0) + 1
    assert max(folders.values()) <= 10_000


def test_preparers_registry():
    assert PREPARERS == {
        "digits": prepare_digits,
        "fashion-mnist": prepare_fashion_mnist,
        "fashion-mnist-detection": prepare_fashion_mnist_detection,
        "fashion-mnist-segmentation": prepare_fashion_mnist_segmentation,
        "spamassassin": prepare_spamassassin,
    }


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST / IDX


def idx_bytes(magic: int, shape: tuple[int, ...], values: np.ndarray) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in shape) + values.astype(">u1").tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    return path


def make_fashion(folder: Path, n_train: int = 6, n_test: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(n_train + n_test, 28, 28), dtype=np.uint8)
    labels = (np.arange(n_train + n_test) % 10).astype(np.uint8)
    for split, sl in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
        write_gz(folder / f"{split}-images-idx3-ubyte.gz", idx_bytes(0x803, images[sl].shape, images[sl]))
        write_gz(folder / f"{split}-labels-idx1-ubyte.gz", idx_bytes(0x801, labels[sl].shape, labels[sl]))
    return images, labels


def test_parse_idx_shapes_and_types():
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(0x803, (2, 3, 4), values), expected_magic=0x803)
    np.testing.assert_array_equal(parsed, values)
    ints = np.array([1, -2, 70000], dtype=">i4")
    raw = struct.pack(">I", 0x0C01) + struct.pack(">I", 3) + ints.tobytes()
    np.testing.assert_array_equal(parse_idx(raw), [1, -2, 70000])


@pytest.mark.parametrize(
    "data, message",
    [
        (idx_bytes(0x801, (3,), np.zeros(3)), "bad magic number 0x00000801, expected 0x00000803"),
        (b"\x00\x00", "too short"),
        (idx_bytes(0x803, (2, 28, 28), np.zeros(2 * 28 * 28 - 5)), "holds 1563 bytes"),
        (idx_bytes(0x803, (1, 2, 2), np.zeros(4)) + b"extra", "holds 9 bytes"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    ],
)
def test_parse_idx_rejects_malformed(data, message):
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(data, "x.gz", expected_magic=0x803)


def test_parse_idx_rejects_unknown_type():
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        parse_idx(b"PK\x03\x04 not idx at all")


def test_fashion_mnist_end_to_end(tmp_path):
    images, labels = make_fashion(tmp_path / "src")
    out = tmp_path / "out"
    result = prepare_fashion_mnist(out, source=tmp_path / "src")
    assert result.count == 10 and result.task_type == "image-classification"
    assert result.class_names[0] == "T-shirt/top" and result.class_names[9] == "Ankle boot"
    lines, truth = check_consistent(result)
    for i, line in enumerate(lines):  # train then test, pixels kept exactly
        np.testing.assert_array_equal(np.asarray(Image.open(line["source-ref"])), images[i])
        assert truth[line["source-ref"]] == result.class_names[labels[i]]
    before = snapshot(out)
    prepare_fashion_mnist(out, source=tmp_path / "src")
    assert snapshot(out) == before

    subset = prepare_fashion_mnist(tmp_path / "sub", source=tmp_path / "src", limit=4, seed=1)
    again = prepare_fashion_mnist(tmp_path / "sub2", source=tmp_path / "src", limit=4, seed=1)
    assert subset.count == 4
    assert [json.loads(x)["label"] for x in subset.truth.read_text().splitlines()] == [
        json.loads(x)["label"] for x in again.truth.read_text().splitlines()
    ]


def test_fashion_mnist_bad_magic_names_the_file(tmp_path):
    make_fashion(tmp_path)
    # Swap in a labels file where an images file belongs.
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte\.gz: bad magic number"):
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_fashion_mnist_count_mismatch_and_bad_gzip(tmp_path):
    make_fashion(tmp_path)
    write_gz(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(0x801, (5,), np.zeros(5)))
    with pytest.raises(IdxFormatError, match="6 images but .* 5 labels"):
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(IdxFormatError, match="not a readable gzip file"):
        read_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz")


def test_fashion_mnist_missing_folder_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path / "nowhere")
    assert "--source" in str(info.value)
    make_fashion(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="lacks t10k-labels-idx1-ubyte.gz"):
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path / "partial")


# ---------------------------------------------------------------------------------------------
# label configs and truth files


def test_read_label_config_accepts_ground_truth_format(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"document-version": "2018-11-28", "labels": [{"label": "cat"}, {"label": "dog"}]}))
    assert read_label_config(path) == ["cat", "dog"]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"document-version": "2018-11-28"}', "no 'labels' list"),
        ('{"labels": {"label": "a"}}', "'labels' must be a list"),
        ('{"labels": []}', "'labels' is empty"),
        ('{"labels": [{"label": "a"}, {"label": "b"}, {"label": "a"}]}', r"duplicate label 'a' \(labels\[0\] and labels\[2\]\)"),
        ('{"labels": [{"label": "a"}, {"label": ""}]}', r"labels\[1\] .* non-empty string"),
        ('{"labels": [{"label": 3}]}', r"labels\[0\]"),
        ('{"labels": ["a"]}', r"labels\[0\]"),
        ('{"labels": [{"name": "a"}]}', r"labels\[0\]"),
    ],
)
def test_read_label_config_errors_name_file_and_problem(tmp_path, content, message):
    path = tmp_path / "labels.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        read_label_config(path)
    assert str(path) in str(info.value)


def test_load_truth_reads_and_names_bad_lines(tmp_path):
    path = tmp_path / "truth.jsonl"
    path.write_text('{"key": "a", "label": "x"}\n\n{"key": "b", "label": "y"}\n')
    assert load_truth(path) == {"a": "x", "b": "y"}
    for body, message in [
        ('{"key": "a", "label": "x"}\n{"key": "b", "label"\n', "line 2: not valid JSON"),
        ('{"key": "a", "label": "x"}\n["a", "x"]\n', "line 2: expected a JSON object"),
        ('{"key": "", "label": "x"}\n', "line 1: 'key' must be a non-empty string"),
        ('{"key": "a"}\n', "line 1: 'label' must be a non-empty string"),
        ('{"key": "a", "label": "x"}\n{"key": "a", "label": "y"}\n', "line 2: key 'a' appears more than once"),
    ]:
        path.write_text(body)
        with pytest.raises(ManifestError, match=message) as info:
            load_truth(path)
        assert str(path) in str(info.value)
