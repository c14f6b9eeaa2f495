import pytest

from labelloop import tasks
from labelloop.manifest import ID_KEY, Label, ManifestError, item_key, parse_line


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "line 7: not valid JSON"),
        ("[1, 2]", "line 7: expected a JSON object, got list"),
        ('{"x": 1}', "line 7: missing 'source' or 'source-ref'"),
        ('{"source": "a", "source-ref": "s3://b/k"}', "line 7: has both"),
        ('{"source-ref": ""}', "line 7: 'source-ref' must be a non-empty string"),
        ('{"source": "a\\ud800b"}', "line 7: 'source' holds an escaped lone surrogate"),
        ('{"source": "t", "labelloop-id": 3}', "line 7: key 'labelloop-id' is reserved"),
    ],
)
def test_bad_lines_name_line_and_problem(text, message):
    with pytest.raises(ManifestError, match=message):
        parse_line(text, 7)


def test_item_key_is_source_ref_or_text_digest():
    assert item_key({"source-ref": "s3://b/a.png"}) == "s3://b/a.png"
    k = item_key({"source": "hello"})
    assert k.startswith("sha256:") and k == item_key({"source": "hello"}) != item_key({"source": "hello!"})


def test_output_line_is_ground_truth_format():
    label = Label(3, 0.97, False, "job-auto", "2026-11-21T10:11:12.123456", 2, 0.9, 0.951, 120)
    line = tasks.get("image-classification").output_line(
        {ID_KEY: 5, "source-ref": "a.png"}, label, attribute="digit", class_names=[str(i) for i in range(10)])
    assert ID_KEY not in line
    assert line["digit"] == 3
    meta = line["digit-metadata"]
    assert meta["class-name"] == "3" and meta["human-annotated"] == "no"
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["creation-date"] == "2026-11-21T10:11:12.123456"
    assert meta["labelloop-calibration"] == {"threshold": 0.9, "accuracy-lower-bound": 0.951, "support": 120}


def test_unlabeled_output_line_says_why():
    line = tasks.get("text-classification").output_line(
        {"source": "t"}, None, attribute="c", class_names=["a", "b"], unlabeled_reason="budget spent", job_name="j")
    assert "c" not in line and line["c-metadata"]["failure-reason"] == "budget spent"


def test_every_key_the_engine_adds_to_a_line_is_reserved():
    from labelloop.manifest import RESERVED_PREFIX
    from labelloop.steps.human_batch import GUESS_KEY, ROLE_KEY

    for key in (ID_KEY, ROLE_KEY, GUESS_KEY):
        assert key.startswith(RESERVED_PREFIX)
        with pytest.raises(ManifestError, match=f"line 3: key '{key}' is reserved"):
            parse_line('{"source": "t", "%s": 1}' % key, 3)
