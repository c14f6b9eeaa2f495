"""Bad input lines are rejected with the line and the problem; the valid rest goes on.

Bootstrap (`labelloop.steps.bootstrap`) runs the checks of `labelloop.input_checks` on each
line: a `source-ref` must be an s3:// URI or an absolute local path, inside the stack's bucket
on AWS, and point at an object that exists, can be read and, for image tasks, is an image.
Job-level problems (too few items, a bad MinimumItems) fail the job before anyone is paid.
"""

import json
import os
from pathlib import Path

import pytest

from labelloop import input_checks
from labelloop.config import ConfigurationError
from labelloop.steps import InputManifestError

import input_check_helpers
from input_check_helpers import BUCKET, DEPLOYMENT, boot, images, rejected, s3_lines, text_files

s3 = input_check_helpers.s3  # the helpers' pytest fixture, bound here for this module's tests


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
