"""Bad input lines are rejected with the line and the problem; the valid rest goes on.

Bootstrap (`labelloop.steps.bootstrap`) runs the checks of `labelloop.input_checks` on each
line: a `source-ref` must be an s3:// URI or an absolute local path, inside the stack's bucket
on AWS, and point at an object that exists, can be read and, for image tasks, is an image.
Job-level problems (too few items, a bad MinimumItems) fail the job before anyone is paid.
"""

import json
import os
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from labelloop import input_checks, steps
from labelloop.config import ConfigurationError
from labelloop.steps import InputManifestError

BUCKET = "labelloop-faults"
CLASSES = ["a", "b"]
DEPLOYMENT = {
    "Region": "us-east-1",
    "Algorithms": {
        t: {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src/sourcedir.tar.gz"}
        for t in ("image-classification", "text-classification")
    },
}


def images(folder: Path, n: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
        lines.append({"source-ref": str(path)})
    return lines


def text_files(folder: Path, n: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        (folder / f"{i}.txt").write_text(f"text {i}")
        lines.append({"source-ref": str(folder / f"{i}.txt")})
    return lines


def boot(tmp_path, lines, deployment=DEPLOYMENT, task="image-classification", manifest_uri=None, **settings):
    if manifest_uri is None:
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
        manifest_uri = str(manifest)
    out = settings.pop("OutputUri", str(tmp_path / "out"))
    event = {
        "Input": {
            "ManifestUri": manifest_uri, "OutputUri": out, "JobName": "checks",
            "TaskType": task, "LabelAttributeName": "label", "LabelCategories": CLASSES,
            "HumanBatchSize": 5, **settings,
        },
        "ExecutionName": "checks-1",
        "Deployment": deployment,
    }
    return steps.bootstrap(event)


def rejected(tmp_path):
    path = tmp_path / "out" / "input" / "rejected.manifest"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def assert_one_rejected(tmp_path, result, line_number, *problem, valid=20, recorder=None):
    state = result["state"]
    assert state["Rejected"] == 1 and state["Total"] == valid, "the valid lines must go on"
    [bad] = rejected(tmp_path)
    assert bad["line"] == line_number
    assert bad["reason"].startswith(f"line {line_number}: source-ref ")
    for words in problem:
        assert words in bad["reason"], bad["reason"]
    if recorder:
        recorder("bad-input", 1)
    return bad["reason"]


def test_relative_local_path_is_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 20)
    lines.insert(4, {"source-ref": "img/0-copy.png"})
    result = boot(tmp_path, lines)
    assert_one_rejected(tmp_path, result, 5, "'img/0-copy.png'", "neither an s3:// URI nor an absolute local path",
                        recorder=recorder)


def test_other_uri_schemes_are_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 20) + [{"source-ref": "https://example.com/x.png"}]
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 21, "neither an s3:// URI nor an absolute local path",
                        recorder=recorder)


def test_missing_local_file_is_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 20)
    lines.insert(0, {"source-ref": str(tmp_path / "img" / "gone.png")})
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 1, "gone.png", "does not exist", recorder=recorder)


def test_folder_instead_of_file_is_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 20) + [{"source-ref": str(tmp_path / "img")}]
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 21, "is a folder, not a file", recorder=recorder)


def test_unreadable_local_file_is_rejected(tmp_path, monkeypatch, recorder):
    lines = images(tmp_path / "img", 21)
    locked = lines[7]["source-ref"]
    if os.geteuid() == 0:  # root reads any file: make this one refuse as it would for a user
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if str(path) == locked:
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(input_checks, "open", refusing_open, raising=False)
    else:
        Path(locked).chmod(0)
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 8, "cannot be read (permission denied)", recorder=recorder)


def test_file_that_is_not_an_image_is_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 20)
    (tmp_path / "img" / "notes.png").write_text("not a png")
    lines.insert(10, {"source-ref": str(tmp_path / "img" / "notes.png")})
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 11, "notes.png", "is not an image or cannot be decoded",
                        recorder=recorder)


def test_truncated_image_is_rejected(tmp_path, recorder):
    lines = images(tmp_path / "img", 21)
    path = Path(lines[20]["source-ref"])
    path.write_bytes(path.read_bytes()[:40])  # header intact, chunks cut off
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 21, "is not an image or cannot be decoded", recorder=recorder)


def test_text_tasks_only_need_the_file_to_exist(tmp_path, recorder):
    folder = tmp_path / "txt"
    lines = text_files(folder, 20)
    lines.append({"source-ref": str(folder / "missing.txt")})
    result = boot(tmp_path, lines, task="text-classification")
    assert_one_rejected(tmp_path, result, 21, "does not exist", recorder=recorder)


def test_bad_references_count_toward_the_ten_percent_rule(tmp_path, recorder):
    lines = images(tmp_path / "img", 10) + [{"source-ref": "rel.png"}, {"source-ref": "/nowhere/x.png"}]
    with pytest.raises(InputManifestError, match=r"2 of 12 lines .* are invalid \(more than 10 %\)"):
        boot(tmp_path, lines)
    reasons = [r["reason"] for r in rejected(tmp_path)]
    assert reasons[0].startswith("line 11: ") and "absolute local path" in reasons[0]
    assert reasons[1].startswith("line 12: ") and "does not exist" in reasons[1]
    recorder("bad-input", 2)


# ---------------------------------------------------------------- s3://


@pytest.fixture()
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for i in range(20):
            client.put_object(Bucket=BUCKET, Key=f"img/{i}.png", Body=b"png")
        yield client


def s3_lines(n=20):
    return [{"source-ref": f"s3://{BUCKET}/img/{i}.png"} for i in range(n)]


def test_missing_s3_object_is_rejected(tmp_path, s3, recorder):
    lines = s3_lines()
    lines.insert(2, {"source-ref": f"s3://{BUCKET}/img/gone.png"})
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 3, f"s3://{BUCKET}/img/gone.png", "does not exist",
                        recorder=recorder)


def test_s3_uri_without_a_key_is_rejected(tmp_path, s3, recorder):
    lines = s3_lines() + [{"source-ref": f"s3://{BUCKET}"}]
    assert_one_rejected(tmp_path, boot(tmp_path, lines), 21, "is not an s3://bucket/key URI", recorder=recorder)


def test_on_aws_refs_must_be_in_the_stack_bucket(tmp_path, s3, recorder):
    deployment = {**DEPLOYMENT, "DataBucket": BUCKET}
    s3.put_object(Bucket=BUCKET, Key="in/manifest.jsonl", Body="".join(
        json.dumps(l) + "\n" for l in s3_lines() + [{"source-ref": "s3://someone-else/img/1.png"}, {"source-ref": "/local/1.png"}]
    ).encode())
    result = boot(tmp_path, None, deployment=deployment, manifest_uri=f"s3://{BUCKET}/in/manifest.jsonl",
                  OutputUri=f"s3://{BUCKET}/out")
    assert result["state"]["Total"] == 20 and result["state"]["Rejected"] == 2
    body = s3.get_object(Bucket=BUCKET, Key="out/input/rejected.manifest")["Body"].read().decode()
    reasons = [json.loads(l)["reason"] for l in body.splitlines()]
    assert reasons[0].startswith("line 21: source-ref 's3://someone-else/img/1.png' is outside this stack's data bucket")
    assert reasons[1].startswith("line 22: source-ref '/local/1.png' is not an s3:// URI in this stack's data bucket")
    recorder("bad-input", 2)


def test_large_manifests_skip_the_s3_object_check(tmp_path, s3, monkeypatch, recorder):
    # Above S3_CHECK_MAX_LINES lines no HEAD is sent (a million would take hours): a missing
    # object is then left to the labeling/training job's own per-object failure.
    monkeypatch.setattr(input_checks, "S3_CHECK_MAX_LINES", 15)
    monkeypatch.setattr(input_checks.InputChecks, "_head_all", lambda self: pytest.fail("HEAD sent for a large manifest"))
    lines = s3_lines() + [{"source-ref": f"s3://{BUCKET}/img/gone.png"}]
    result = boot(tmp_path, lines)
    assert result["state"]["Total"] == 21 and result["state"]["Rejected"] == 0


# ---------------------------------------------------------------- job level


def test_too_few_items_fail_the_job_before_anyone_is_paid(tmp_path, recorder):
    lines = images(tmp_path / "img", 6)
    with pytest.raises(InputManifestError, match=r"has 6 valid item\(s\), fewer than the minimum of 10 \(MinimumItems\)"):
        boot(tmp_path, lines)
    assert not (tmp_path / "out" / "labeling").exists()
    recorder("bad-input", 1)


def test_minimum_items_is_a_setting(tmp_path, recorder):
    lines = images(tmp_path / "img", 6)
    assert boot(tmp_path, lines, MinimumItems=5)["state"]["Total"] == 6
    with pytest.raises(InputManifestError, match="fewer than the minimum of 7"):
        boot(tmp_path, lines, MinimumItems=7, OutputUri=str(tmp_path / "again-out"))
    for bad in (0, -3, "ten", True):
        with pytest.raises(ConfigurationError, match=f"MinimumItems must be a positive integer, got {bad!r}"):
            boot(tmp_path, lines, MinimumItems=bad)
    recorder("bad-input", 5)


def test_rejected_lines_do_not_count_as_items(tmp_path, recorder):
    lines = images(tmp_path / "img", 9) + [{"source-ref": str(tmp_path / "nope.png")}]
    with pytest.raises(InputManifestError, match="has 9 valid item"):
        boot(tmp_path, lines)
    recorder("bad-input", 1)


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
