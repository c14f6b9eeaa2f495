"""What people's labels cost in clicks, where their answers say (`labelloop-clicks` in a line's
metadata): kept per item in the ledger, summed per iteration and per run, shown where costs are
(steps called directly, local paths)."""

import json
import os

import pytest

from labelloop import layout, metrics_table, steps, storage
from labelloop.config import JobSettings
from labelloop.errors import LabelingOutputError
from labelloop.manifest import CLICKS_KEY
from labelloop.steps.resume import resume_state
from test_final_batch import DEPLOYMENT


@pytest.fixture()
def first_batch(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(10)))
    job = {"ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "clicks",
           "TaskType": "text-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
           "HumanBatchSize": 10}
    boot = steps.bootstrap({"Input": job, "ExecutionName": "run-1", "Deployment": DEPLOYMENT})
    return {**boot, "state": steps.sample_for_humans(boot), "ExecutionName": "run-1"}


def answer(event, clicks) -> dict:
    """The labeling output: item k answered with clicks[k] in its metadata (None: not said)."""
    batch = event["state"]["HumanBatch"]
    out = os.path.join(batch["OutputUri"], batch["LabelingJobName"], "manifests", "output", "output.manifest")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        for line, spent in zip(map(json.loads, open(batch["ManifestUri"])), clicks):
            meta = {"class-name": "b", "human-annotated": "yes", **({CLICKS_KEY: spent} if spent is not None else {})}
            f.write(json.dumps({**line, "label": 1, "label-metadata": meta}) + "\n")
    return {**event, "state": steps.merge_human_labels({**event, "labeling": {"OutputManifestUri": out}})}


def test_clicks_are_kept_per_item_and_summed_in_the_state_the_row_the_summary_and_on_resume(first_batch):
    event = answer(first_batch, [4, 7, 12, None, 5, 4, 9, 6, 4, 8])
    state = event["state"]
    assert (state["HumanClicks"], state["HumanClicksThisIteration"]) == (59, 59)  # the item that did not say adds none
    ledger = [json.loads(line) for line in storage.iter_lines(state["LedgerUri"])]
    assert sorted(r["label"].get("clicks", -1) for r in ledger) == [-1, 4, 4, 4, 5, 6, 7, 8, 9, 12]
    summary = steps.export_output(event)
    assert summary["HumanClicks"] == 59 and summary["FinalHumanBatch"]["HumanClicks"] == 59
    assert summary["FinalHumanBatch"]["HumanClicksThisIteration"] == 59
    settings = event["config"]["Settings"]
    resumed = resume_state(event["config"], JobSettings.parse(settings))
    assert resumed["HumanClicks"] == 59  # rebuilt from the ledger's labels


def test_answers_that_say_nothing_of_clicks_leave_the_counts_out(first_batch):
    event = answer(first_batch, [None] * 10)
    assert "HumanClicks" not in event["state"] and "HumanClicksThisIteration" not in event["state"]
    summary = steps.export_output(event)
    assert "HumanClicks" not in summary and summary["FinalHumanBatch"]["HumanClicks"] is None
    row = json.loads(open(layout.metrics_uri(event["config"]["Settings"]["OutputUri"], 1)).read())
    assert metrics_table.cell(row, metrics_table.Column("HumanClicks", "clicks")) == metrics_table.MISSING


@pytest.mark.parametrize("bad", [-1, 2.5, "12", True])
def test_a_click_count_that_is_no_count_is_refused_naming_the_line(first_batch, bad):
    with pytest.raises(LabelingOutputError, match=f"line 2: {CLICKS_KEY} must be a count of clicks"):
        answer(first_batch, [4, bad] + [4] * 8)


def test_mask_runs_show_the_clicks_in_their_tables_and_others_do_not():
    masks = [c.header for c in metrics_table.columns({"TaskType": "semantic-segmentation"})]
    assert masks[3:5] == ["clicks", "+clicks"]
    assert "clicks" in [c.header for c in metrics_table.columns({"TaskType": "semantic-segmentation"}, terminal=True)]
    assert "clicks" not in [c.header for c in metrics_table.columns({"TaskType": "image-classification"})]
    row = {"HumanClicks": 1234, "HumanClicksThisIteration": 210}
    assert [metrics_table.cell(row, c) for c in metrics_table.columns({"TaskType": "semantic-segmentation"})[3:5]] == ["1234", "210"]


def test_the_report_of_a_mask_run_shows_its_clicks_per_iteration_and_a_human_label(tmp_path):
    import re

    from labelloop.report import write_report

    out = tmp_path / "run"
    out.joinpath("config").mkdir(parents=True)
    out.joinpath("config", "settings.json").write_text(json.dumps({"JobName": "masks", "TaskType": "semantic-segmentation"}))
    for it, (human, clicks, new) in enumerate(((20, 231, 231), (40, 447, 216)), start=1):
        row = {"Iteration": it, "HumanLabeled": human, "HumanLabeledThisIteration": 20, "HumanClicks": clicks,
               "HumanClicksThisIteration": new, "AutoLabeled": 0, "Remaining": 60 - human}
        out.joinpath("iterations", f"{it:03d}").mkdir(parents=True)
        out.joinpath("iterations", f"{it:03d}", "metrics.json").write_text(json.dumps(row))
    out.joinpath("output").mkdir()
    out.joinpath("output", "summary.json").write_text(json.dumps({
        "Total": 60, "HumanLabeled": 40, "HumanLabeledByThisJob": 40, "HumanClicks": 447, "AutoLabeled": 0,
        "Unlabeled": 20, "Iterations": 2, "StopReason": "max-iterations", "Error": None}))
    page = write_report(out).read_text()
    table = page.split('<table class="iterations">')[1].split("</table>")[0]
    headers = re.findall(r"<th>([^<]*)</th>", table)
    rows = [dict(zip(headers, re.findall(r"<td>([^<]*)</td>", r))) for r in table.split("<tr")[2:]]
    assert [(r["clicks"], r["+clicks"]) for r in rows] == [("231", "231"), ("447", "216")]
    assert re.search(r'<div class="k">clicks</div><div class="v">447</div><div class="n">11.2 a human label</div>', page)
