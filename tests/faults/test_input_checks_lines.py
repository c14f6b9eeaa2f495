"""Input lines that lost or corrupted labels: reserved keys, devices, oversized items, duplicates, bad models."""

import json
import os

import pytest

from labelloop import input_checks
from labelloop.config import ConfigurationError

import input_check_helpers
from input_check_helpers import BUCKET, boot, images, rejected, s3_lines, text_files

s3 = input_check_helpers.s3  # the helpers' pytest fixture, bound here for this module's tests


# ---------------------------------------------------------------- issue 18: lines that lost or corrupted labels


@pytest.mark.parametrize("key", ["labelloop-id", "labelloop-guess", "labelloop-role"])
def test_reserved_keys_in_a_line_are_rejected_with_its_number(tmp_path, recorder, key):
    # An input labelloop-id overrode the engine's id (answers joined to the wrong items); an input
    # labelloop-guess was shown to people as the model's suggestion.
    lines = images(tmp_path / "img", 21)
    lines[3] = {**lines[3], key: 0 if key == "labelloop-id" else "b"}
    result = boot(tmp_path, lines)
    assert result["state"]["Rejected"] == 1 and result["state"]["Total"] == 20
    [bad] = rejected(tmp_path)
    assert bad["line"] == 4 and bad["reason"].startswith(f"line 4: key {key!r} is reserved"), bad
    ledger = [json.loads(l) for l in open(result["state"]["LedgerUri"])]
    assert all(not k.startswith("labelloop-") for r in ledger for k in r["source"])
    recorder("bad-input", 1)


@pytest.mark.parametrize("attribute", ["labelloop-id", "labelloop-guess", "source", "source-ref"])
def test_reserved_label_attribute_is_refused_before_anyone_is_paid(tmp_path, recorder, attribute):
    # "source-ref" also breaks Ground Truth's rule that only a label kept in a file ends in "-ref".
    with pytest.raises(ConfigurationError, match=f"LabelAttributeName {attribute!r} (is reserved|may not end in '-ref')"):
        boot(tmp_path, images(tmp_path / "img", 20), LabelAttributeName=attribute)
    assert not (tmp_path / "out" / "iterations").exists()
    recorder("bad-input", 1)


def test_devices_and_fifos_are_rejected_without_blocking(tmp_path, recorder):
    # /dev/zero was paid for and then read without end by the transform; a FIFO hung Bootstrap.
    folder = tmp_path / "txt"
    lines = text_files(folder, 20)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    lines[2:2] = [{"source-ref": "/dev/zero"}, {"source-ref": str(fifo)}]
    import threading

    done = {}
    worker = threading.Thread(  # a daemon thread: a hang fails this test instead of hanging the suite
        target=lambda: done.update(result=boot(tmp_path, lines, task="text-classification", MinimumItems=1)),
        daemon=True)
    worker.start()
    worker.join(60)
    assert "result" in done, "Bootstrap blocked (or failed) on a FIFO"
    result = done["result"]
    assert result["state"]["Rejected"] == 2 and result["state"]["Total"] == 20
    reasons = {r["line"]: r["reason"] for r in rejected(tmp_path)}
    assert "is not a regular file" in reasons[3] and "is not a regular file" in reasons[4], reasons
    recorder("bad-input", 2)


def test_items_over_the_byte_limit_are_rejected(tmp_path, monkeypatch, recorder):
    monkeypatch.setattr(input_checks, "MAX_TEXT_BYTES", 1000)
    folder = tmp_path / "txt"
    lines = text_files(folder, 20)
    (folder / "big.txt").write_text("x" * 1001)
    lines += [{"source-ref": str(folder / "big.txt")}, {"source": "y" * 1001}]
    result = boot(tmp_path, lines, task="text-classification", MinimumItems=1)
    assert result["state"]["Rejected"] == 2 and result["state"]["Total"] == 20
    reasons = {r["line"]: r["reason"] for r in rejected(tmp_path)}
    assert "is 1,001 bytes, over the 1,000-byte limit per item" in reasons[21]
    assert "source is 1,001 characters, over the 1,000 limit" in reasons[22]
    recorder("bad-input", 2)


def test_lines_that_crashed_bootstrap_are_rejected_by_number(tmp_path, recorder):
    # Each of these raised a traceback that named no line; now each is one rejected line.
    good = images(tmp_path / "img", 60)
    bad_lines = [
        '{"source-ref": "/img/\\u0000x.png"}',                                       # a NUL, escaped
        json.dumps({**good[0], "label": 1, "label-metadata": "human"}),              # metadata a string
        json.dumps({**good[1], "label": 1, "label-metadata": {"confidence": "high"}}),  # not a number
        json.dumps({**good[2], "label": 1, "label-metadata": {"confidence": float("nan")}}),
        "[" * 100_000 + "]" * 100_000,                                                # nested too deep
    ]
    manifest = tmp_path / "manifest.jsonl"
    body = "".join(json.dumps(l) + "\n" for l in good[3:]) + "".join(l + "\n" for l in bad_lines)
    manifest.write_bytes(body.encode() + b'{"source-ref": "/img/caf\xe9.png"}\n')  # Latin-1, not UTF-8
    result = boot(tmp_path, None, manifest_uri=str(manifest))
    assert result["state"]["Total"] == 57 and result["state"]["Rejected"] == 6
    reasons = {r["line"]: r["reason"] for r in rejected(tmp_path)}
    assert "contains a NUL character" in reasons[58]
    assert "label-metadata must be a JSON object" in reasons[59]
    assert "confidence must be a number in [0, 1], got 'high'" in reasons[60]
    assert "confidence must be a number in [0, 1]" in reasons[61]
    assert "nested too deeply" in reasons[62]
    assert reasons[63] == "line 63: not UTF-8 (byte 0xe9 at column 25)"
    recorder("bad-input", 6)


def test_one_image_spelled_three_ways_is_one_item(tmp_path, recorder):
    lines = images(tmp_path / "img", 30)
    first = lines[0]["source-ref"]
    link = tmp_path / "link.png"
    link.symlink_to(first)
    lines += [{"source-ref": first.replace("/img/", "/img/./")}, {"source-ref": "/" + first},
              {"source-ref": str(link)}]
    result = boot(tmp_path, lines)
    assert result["state"]["Total"] == 30 and result["state"]["Rejected"] == 3
    for bad in rejected(tmp_path):
        assert "duplicate of line 1" in bad["reason"], bad
    recorder("bad-input", 3)


def test_s3_keys_spelled_two_ways_are_one_item(tmp_path, s3, recorder):
    lines = s3_lines() + [{"source-ref": f"s3://{BUCKET}/img//3.png"}, {"source-ref": f"s3://{BUCKET}/img/./4.png"}]
    result = boot(tmp_path, lines)
    assert result["state"]["Total"] == 20 and result["state"]["Rejected"] == 2
    reasons = [r["reason"] for r in rejected(tmp_path)]
    assert "duplicate of line 4" in reasons[0] and "duplicate of line 5" in reasons[1]
    recorder("bad-input", 2)


def test_a_utf8_bom_on_the_first_line_is_accepted(tmp_path, recorder):
    lines = images(tmp_path / "img", 20)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(l) + "\r\n" for l in lines).encode())
    result = boot(tmp_path, None, manifest_uri=str(manifest))
    assert result["state"]["Total"] == 20 and result["state"]["Rejected"] == 0
    recorder("bad-input", 1)


def test_initial_model_that_is_not_a_tarball_is_refused_before_anyone_is_paid(tmp_path, recorder):
    lines = images(tmp_path / "img", 20)
    for name, body, words in (("notes.tar.gz", b"just text", "is not a model.tar.gz"),
                              ("empty.tar.gz", None, "holds no model files"),
                              ("missing.tar.gz", False, "cannot be read")):
        model = tmp_path / name
        if body is None:
            import tarfile

            with tarfile.open(model, "w:gz"):
                pass
        elif body:
            model.write_bytes(body)
        with pytest.raises(ConfigurationError, match=f"InitialModelArtifacts {model} .*{words}"):
            boot(tmp_path, lines, InitialModelArtifacts=str(model))
        assert not (tmp_path / "out" / "iterations").exists()
    recorder("bad-input", 3)


def test_initial_model_on_s3_must_be_gzip(tmp_path, s3, recorder):
    s3.put_object(Bucket=BUCKET, Key="models/model.tar.gz", Body=b"PK\x03\x04 a zip")
    with pytest.raises(ConfigurationError, match=f"InitialModelArtifacts s3://{BUCKET}/models/model.tar.gz is not a model"):
        boot(tmp_path, s3_lines(), InitialModelArtifacts=f"s3://{BUCKET}/models/model.tar.gz")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        boot(tmp_path, s3_lines(), InitialModelArtifacts=f"s3://{BUCKET}/models/none.tar.gz")
    recorder("bad-input", 2)


def test_an_existing_label_whose_class_name_disagrees_is_rejected(tmp_path, recorder):
    # An earlier output manifest labeled under categories in another order: its numbers mean other names here.
    lines = images(tmp_path / "img", 21)
    lines[0] = {**lines[0], "label": 0, "label-metadata": {"class-name": "b", "human-annotated": "yes"}}
    lines[1] = {**lines[1], "label": 1, "label-metadata": {"class-name": "b", "human-annotated": "yes"}}
    result = boot(tmp_path, lines)
    assert result["state"]["Rejected"] == 1 and result["state"]["PreLabeled"] == 1
    [bad] = rejected(tmp_path)
    assert bad["reason"] == "line 1: existing label label=0 is 'a' in this job's categories, but its metadata says class-name 'b'"
    recorder("bad-input", 1)
