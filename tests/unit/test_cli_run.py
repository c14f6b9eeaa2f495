"""`labelloop run`'s money options reach the job's settings, and its summary says what the labels cost."""

import argparse

import pytest

from labelloop.cli import build_parser
from labelloop.cli_run import cost_settings, execution_input, summary_lines
from labelloop.config import ConfigurationError

SUMMARY = {"Total": 200, "Rejected": 0, "HumanLabeledByThisJob": 100, "HumanAdjusted": 60, "HumanCost": 5.6,
           "AutoLabeled": 100, "Unlabeled": 0, "Iterations": 3, "StopReason": "all-labeled",
           "OutputManifestUri": "/o/output.manifest", "FinalModelArtifacts": "/o/model.tar.gz"}


def run_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--manifest", "m", "--output", "o", "--task-type", "object-detection",
                                      "--label-attribute", "objects", "--labels", "car,bike", *extra])


def test_the_price_per_adjusted_label_is_a_setting_only_when_given():
    assert "PricePerAdjustedLabel" not in cost_settings(run_args())
    given = cost_settings(run_args("--price-per-adjusted-label", "0.02", "--max-human-cost", "9"))
    assert given == {"PricePerLabel": 0.08, "PricePerAdjustedLabel": 0.02, "MaxHumanCost": 9.0}


def test_the_summary_splits_the_human_labels_by_price_when_adjustments_cost_less():
    args = run_args()
    settings = {"TaskType": "object-detection", "PricePerLabel": 0.08, "PricePerAdjustedLabel": 0.02, "OutputUri": "/o"}
    lines = summary_lines(args, SUMMARY, settings, None, 100, 12.0, [])
    assert "  human labels used:     100 (50.0 %), $5.60  [workforce answered 100]" in lines
    assert "    of which adjusted:   60 (shown the model's boxes, $0.02 a label), 40 drawn blind ($0.08)" in lines
    one_price = summary_lines(args, SUMMARY, {**settings, "PricePerAdjustedLabel": None}, None, 100, 12.0, [])
    assert not any("adjusted" in line for line in one_price)


def test_the_summary_says_what_the_labels_cost_in_clicks_where_the_answers_said():
    args = run_args()
    settings = {"TaskType": "semantic-segmentation", "PricePerLabel": 0.08, "OutputUri": "/o"}
    lines = summary_lines(args, {**SUMMARY, "HumanClicks": 1234}, settings, None, 100, 12.0, [])
    assert "  clicks spent:          1234 (12.3 a human label)" in lines
    assert not any("clicks" in line for line in summary_lines(args, SUMMARY, settings, None, 100, 12.0, []))


def test_per_class_reaches_the_settings_and_is_refused_for_boxes_before_anything_starts(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"source": "a"}\n')
    text = build_parser().parse_args(["run", "--manifest", str(manifest), "--output", str(tmp_path / "o"),
                                      "--task-type", "text-classification", "--label-attribute", "topic",
                                      "--labels", "a,b", "--per-class"])
    assert execution_input(text, tmp_path / "o")["PerClassPromise"] is True
    boxes = run_args("--per-class")
    boxes.manifest, boxes.label_attribute = str(manifest), "objects"
    with pytest.raises(ConfigurationError, match="--per-class is for classification"):
        execution_input(boxes, tmp_path / "o")


def test_a_bad_setting_is_named_by_the_option_that_set_it(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"source": "a"}\n')
    text = build_parser().parse_args(["run", "--manifest", str(manifest), "--output", str(tmp_path / "o"),
                                      "--task-type", "text-classification", "--label-attribute", "topic",
                                      "--labels", "a,b", "--target-accuracy", "1.5", "--human-batch-size", "0"])
    with pytest.raises(ConfigurationError) as refused:
        execution_input(text, tmp_path / "o")
    assert str(refused.value) == ("--human-batch-size must be a positive integer, got 0; "
                                  "--target-accuracy must be a number in (0, 1), got 1.5")
    boxes = run_args("--target-iou", "2")
    boxes.manifest, boxes.label_attribute = str(manifest), "objects"
    with pytest.raises(ConfigurationError, match=r"^--target-iou must be a number in \(0, 1\), got 2.0$"):
        execution_input(boxes, tmp_path / "o")


def test_every_field_the_run_options_set_names_an_option_run_has():
    from labelloop import cli_run

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {flag for action in run._actions for flag in action.option_strings}
    for table in (cli_run.AS_GIVEN, cli_run.OPTIONAL, cli_run.MONEY, cli_run.DERIVED):
        for field, dest in table.items():
            assert "--" + dest.replace("_", "-") in flags, (field, dest)
