"""One iteration's metrics read the same in `labelloop run`, `labelloop status` and the report;
the names layout builds are the names it parses."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

from labelloop import layout, metrics_table
from labelloop.aws_cli import render_status
from labelloop.cli import _Progress
from labelloop.report.render import render_html
from labelloop.report.run import RunData

METRICS = {
    "Iteration": 3, "HumanLabeled": 1234, "HumanLabeledThisIteration": 100, "HumanFailedThisIteration": 0, "AutoLabeled": 560,
    "AutoLabeledThisIteration": 60, "Remaining": 7, "Threshold": 0.93456, "ValidationAccuracy": 0.9876,
    "LowerBound": 0.9512, "Support": 88, "ValidationCount": 400, "TrainCount": 834, "HumanCost": 98.72,
    "NextHumanBatch": 100, "RetrainFirst": False, "StopReason": None,
}
SHOWN = ["1234", "560", "0.9346", "98.8 %", "400", "$98.72", "100"]


def progress_lines(metrics: dict) -> list[str]:
    stream = io.StringIO()
    progress = _Progress(stream)
    progress("Bootstrap", {"state": {"Total": 1801, "PreLabeled": 0, "Rejected": 0}})
    progress("GateAndRoute", {"LastMetrics": metrics})
    return stream.getvalue().splitlines()[1:]


def status_lines(metrics: dict) -> list[str]:
    described = {"name": "e", "status": "RUNNING", "startDate": datetime(2026, 1, 1, tzinfo=timezone.utc),
                 "executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:e"}
    report = {"input": None, "iterations": [metrics], "summary": None, "current": None, "failure": None}
    lines = render_status(described, report).splitlines()
    return lines[1:3]


def report_row(metrics: dict, tmp_path) -> str:
    page = render_html(RunData(root=tmp_path, settings={"JobName": "j"}, metrics=[metrics]), {})
    return page.split('<table class="iterations">')[1].split("</table>")[0]


def test_run_status_and_report_show_the_same_values_under_the_same_headers(tmp_path):
    progress, status = progress_lines(METRICS), status_lines(METRICS)
    assert progress[0].startswith(status[0]) and progress[0].endswith("elapsed"), "same columns, run adds the time"
    assert progress[1].startswith(status[1])
    assert status[1].split() == ["3", "1234", "560", "7", "0.9346", "98.8", "%", "400", "$98.72", "100"]
    row = report_row(METRICS, tmp_path)
    assert status[0].split() == "it. human auto unlabeled threshold val. acc. val. n cost next".split()
    for header in ("it.", "human", "auto", "unlabeled", "threshold", "val. acc.", "val. n", "cost", "next"):
        assert f"<th>{header}</th>" in row
    for value in SHOWN:
        assert f"<td>{value}</td>" in row and value in status[1]


def test_columns_line_up_under_their_headers():
    header, row = status_lines(METRICS)
    assert len(header) == len(row)
    for column in metrics_table.TERMINAL_COLUMNS:  # right-aligned: each value ends where its header ends
        end = header.index(column.header) + len(column.header)
        assert row[end - 1] != " " and (end == len(row) or row[end] == " "), column.header


def test_missing_values_and_a_held_back_batch_read_the_same_everywhere(tmp_path):
    held = {**METRICS, "Threshold": None, "ValidationAccuracy": None, "RetrainFirst": True, "NextHumanBatch": 0}
    assert metrics_table.RETRAIN_FIRST in status_lines(held)[1] and metrics_table.RETRAIN_FIRST in progress_lines(held)[1]
    assert status_lines(held)[1].split()[4:6] == ["–", "–"]
    row = report_row(held, tmp_path)
    assert f"<td>{metrics_table.RETRAIN_FIRST}</td>" in row and row.count("<td>–</td>") == 3  # threshold, acc., stop


@pytest.mark.parametrize("kind", ["label", "auto", "train", "infer-val", "infer-unl", "model"])
@pytest.mark.parametrize("iteration", [1, 12, 999, 1000])
def test_a_job_name_parses_back_to_its_iteration_and_kind(kind, iteration):
    name = layout.job_name("digits-2024", "12345678", iteration, kind)  # a run id of digits only, too
    assert layout.parse_job_name(name) == (iteration, kind)
    assert layout.parse_job_name(f"labeling-job/{name}") == (iteration, kind), "as label metadata writes it"


@pytest.mark.parametrize("name", ["", "my-job", "labeling-job/other-tool-01-label", "job-abc-001-"])
def test_a_name_layout_did_not_build_is_not_parsed(name):
    assert layout.parse_job_name(name) is None


def test_iteration_folders_are_recognised_by_their_name():
    assert layout.iteration_of_dir(layout.iteration_dir("s3://b/run", 7)) == 7
    assert layout.iteration_of_dir("/runs/x/iterations/1000/") == 1000
    assert [layout.iteration_of_dir(n) for n in ("report", "01", "００１", "work")] == [None] * 4


def test_a_box_run_reads_its_quality_as_a_mean_iou_on_the_terminal_and_in_status(tmp_path):
    settings = {"TaskType": "object-detection"}
    stream = io.StringIO()
    progress = _Progress(stream, settings={**settings, "JobName": "j", "ManifestUri": "m", "OutputUri": "o",
                                           "LabelAttributeName": "a", "LabelCategories": ["car", "bike"]})
    progress("Bootstrap", {"state": {"Total": 1801, "PreLabeled": 0, "Rejected": 0}})
    progress("GateAndRoute", {"LastMetrics": {**METRICS, "ValidationAccuracy": 0.61234, "HumanAdjusted": 40}})
    lines = stream.getvalue().splitlines()
    assert lines[1].startswith("promise: mean IoU of the auto-labels ≥ 0.6 with 95 % confidence needs ")
    header, row = lines[-2:]
    assert "val. IoU" in header and "val. acc." not in header
    assert row.split()[:6] == ["3", "1234", "560", "7", "0.9346", "0.612"]
    described = {"name": "e", "status": "RUNNING", "startDate": datetime(2026, 1, 1, tzinfo=timezone.utc),
                 "executionArn": "arn:aws:states:us-east-1:123456789012:execution:m:e", "input": json.dumps(settings)}
    report = {"input": None, "iterations": [{**METRICS, "ValidationAccuracy": 0.61234}], "summary": None, "current": None,
              "failure": None}
    status = render_status(described, report).splitlines()[1:3]
    assert header.startswith(status[0]) and row.startswith(status[1]), "the same columns as `labelloop run`"
    columns = [c.header for c in metrics_table.columns(settings)]
    assert "IoU bound" in columns and "support" in columns and "adjusted" in columns
    assert "adjusted" not in [c.header for c in metrics_table.columns({"TaskType": "image-classification"})]
