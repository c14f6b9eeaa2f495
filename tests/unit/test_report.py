"""The run report, on output folders synthesized in the loop's layout: finished, in progress, empty."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from labelloop.report import add_report_command, load_run, newest_ledger, totals, write_report

from report_helpers import embedded_images, metrics, write

CLASSES = ["cat", "dog", "bird"]


def label(cls: int, human: bool, iteration: int, confidence: float = 0.95) -> dict:
    kind = "label" if human else "auto"
    return {"class": cls, "confidence": confidence, "human": human,
            "job-name": f"{'labeling-job/' if human else ''}pets-1234abcd-{iteration:03d}-{kind}",
            "creation-date": "2026-01-01T00:00:00.000000", "iteration": iteration}


def sources(n: int) -> list[dict]:
    texts = [f"message {i}: hello" for i in range(n)]
    texts[3] = "<script>alert('x')</script> & friends"
    return [{"source": t} for t in texts]


@pytest.fixture
def run_in_progress(tmp_path) -> Path:
    """12 text items, 1 pre-labeled; iteration 1 done (4 human, 3 auto); batch 2 waiting for people."""
    out = tmp_path / "run"
    write(out / "config" / "settings.json", {
        "JobName": "pets", "TaskType": "text-classification", "LabelAttributeName": "animal",
        "PricePerLabel": 0.1, "WorkersPerObject": 2, "TargetAccuracy": 0.95, "LabelCategories": [],
    })
    write(out / "config" / "label-categories.json", {"document-version": "2018-11-28", "labels": [{"label": c} for c in CLASSES]})
    src = sources(12)
    records = [{"id": i, "source": s, "label": None} for i, s in enumerate(src)]
    records[0]["label"] = label(2, True, 0, 1.0)  # came labeled in the input manifest
    write(out / "iterations" / "000" / "ledger-input.jsonl", records)
    for i, cls in zip((1, 2, 3, 4), (0, 1, 1, 0), strict=True):
        records[i] = {**records[i], "label": label(cls, True, 1), "split": "train"}
    write(out / "iterations" / "001" / "ledger-human.jsonl", records)
    for i, cls, conf in zip((5, 6, 7), (0, 0, 1), (0.97, 0.99, 0.96), strict=True):
        records[i] = {**records[i], "label": label(cls, False, 1, conf)}
    write(out / "iterations" / "001" / "ledger-auto.jsonl", records)
    write(out / "iterations" / "001" / "metrics.json", metrics(1, 4, 4, 3, 3, 4, 0.955, 0.9))
    write(out / "iterations" / "001" / "calibration.json", {"Method": "lower-bound", "Threshold": 0.955})
    write(out / "iterations" / "002" / "human-input.manifest",
          [{"labelloop-id": i, **src[i], "labelloop-role": "train"} for i in (8, 9)])
    return out


@pytest.fixture
def finished_run(run_in_progress) -> Path:
    """The same run after iteration 2: its batch labeled, the rest auto-labeled, output written."""
    out = run_in_progress
    records = [json.loads(line) for line in (out / "iterations" / "001" / "ledger-auto.jsonl").read_text().splitlines()]
    for i, cls in ((8, 2), (9, 1)):
        records[i] = {**records[i], "label": label(cls, True, 2)}
    write(out / "iterations" / "002" / "ledger-human.jsonl", records)
    for i in (10, 11):
        records[i] = {**records[i], "label": label(1, False, 2, 0.98)}
    write(out / "iterations" / "002" / "ledger-auto.jsonl", records)
    write(out / "iterations" / "002" / "metrics.json", metrics(2, 6, 2, 5, 2, 0, 0.97, 0.95, stop="all-labeled"))
    lines = []
    for r in records:
        lab = r["label"]
        meta = {"class-name": CLASSES[lab["class"]], "confidence": lab["confidence"], "type": "groundtruth/text-classification",
                "job-name": lab["job-name"], "human-annotated": "yes" if lab["human"] else "no",
                "creation-date": lab["creation-date"]}
        lines.append({**r["source"], "animal": lab["class"], "animal-metadata": meta})
    write(out / "output" / "output.manifest", lines)
    write(out / "output" / "summary.json", {"Total": 12, "HumanLabeled": 7, "HumanLabeledByThisJob": 6, "AutoLabeled": 5,
                                           "Unlabeled": 0, "Iterations": 2, "StopReason": "all-labeled", "Error": None})
    write(out / "output" / "evaluation.json", {"auto_accuracy": 0.8, "dataset_accuracy": 0.9})
    return out


def test_a_finished_run_gets_tables_plots_classes_cost_and_examples(finished_run):
    path = write_report(finished_run)
    assert path == finished_run / "report" / "report.html"
    page = path.read_text()
    for name in ("labels.png", "calibration.png", "classes.png"):
        png = (path.parent / name).read_bytes()
        assert png.startswith(b"\x89PNG") and png in embedded_images(page), f"{name} is embedded and written beside"
    assert not re.search(r'(src|href)="(?!data:)', page), "self-contained: nothing loaded from elsewhere"
    table = page.split('<table class="iterations">')[1].split("</table>")[0]
    assert table.count("<tr>") == 3, "a header and one row per iteration"
    assert "0.9550" in table and "0.9700" in table and "all-labeled" in table
    # 6 human labels bought by this job (not the pre-labeled one) x $0.10 x 2 workers per item
    assert "$1.20" in page and "6 labels × $0.10 × 2 workers" in page
    assert "finished (all-labeled)" in page and "from output/output.manifest" in page
    assert "auto-label accuracy" in page and "80.0 %" in page
    classes = page.split('<table class="classes">')[1].split("</table>")[0]
    assert "<tr><td>cat</td><td>2</td><td>2</td><td>4</td></tr>" in classes
    assert "<tr><td>dog</td><td>3</td><td>3</td><td>6</td></tr>" in classes
    assert "<tr><td>bird</td><td>2</td><td>0</td><td>2</td></tr>" in classes
    assert "Auto-labeled" in page and "Routed to humans" in page and "Waiting for people" not in page
    assert "96.0 %" in page, "auto-labels show their confidence"
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in page


def test_a_run_in_progress_reads_the_newest_ledger_and_the_waiting_batch(run_in_progress):
    assert newest_ledger(run_in_progress) == run_in_progress / "iterations" / "001" / "ledger-auto.jsonl"
    data = load_run(run_in_progress)
    t = totals(data)
    assert (t.items, t.human, t.auto, t.unlabeled, t.human_by_job) == (12, 5, 3, 4, 4)
    assert t.cost == 0.8  # 4 x $0.10 x 2
    assert totals(data, price_per_label=0.5).cost == 4.0
    page = write_report(run_in_progress).read_text()
    assert "in progress: 2 items waiting for people" in page
    assert "Waiting for people" in page and "message 8: hello" in page
    assert "from iterations/001/ledger-auto.jsonl" in page
    assert "$0.80" in page


def test_an_iteration_that_held_its_batch_back_says_it_retrains_first(run_in_progress):
    m = json.loads((run_in_progress / "iterations" / "001" / "metrics.json").read_text())
    write(run_in_progress / "iterations" / "001" / "metrics.json", {**m, "NextHumanBatch": 0, "RetrainFirst": True})
    page = write_report(run_in_progress).read_text()
    table = page.split('<table class="iterations">')[1].split("</table>")[0]
    assert "none: retrain first" in table


def test_a_torn_ledger_line_of_a_run_still_writing_is_skipped(run_in_progress):
    ledger = run_in_progress / "iterations" / "001" / "ledger-auto.jsonl"
    with open(ledger, "a") as handle:
        handle.write('{"id": 12, "source": {"sou')
    assert totals(load_run(run_in_progress)).items == 12


def test_a_just_started_run_says_no_iteration_has_finished(tmp_path):
    out = tmp_path / "run"
    write(out / "config" / "settings.json", {"JobName": "fresh", "TaskType": "image-classification"})
    write(out / "iterations" / "000" / "ledger-input.jsonl",
          [{"id": i, "source": {"source-ref": str(tmp_path / f"{i}.png")}, "label": None} for i in range(5)])
    page = write_report(out).read_text()
    assert "No iteration has finished yet" in page and "No labels yet" in page
    assert "$0.00" in page and "just started" in page
    assert not (out / "report" / "labels.png").exists()


def test_an_empty_folder_gets_a_clear_message(tmp_path):
    page = write_report(tmp_path).read_text()
    assert "Nothing to report yet" in page
    assert list((tmp_path / "report").iterdir()) == [tmp_path / "report" / "report.html"]


def test_image_items_get_thumbnails_and_missing_images_a_placeholder(tmp_path):
    from PIL import Image

    out = tmp_path / "run"
    write(out / "config" / "settings.json", {"JobName": "digits", "TaskType": "image-classification", "WorkersPerObject": 1})
    write(out / "config" / "label-categories.json", {"labels": [{"label": "0"}, {"label": "1"}]})
    Image.new("L", (8, 8), 255).save(tmp_path / "a.png")
    records = [
        {"id": 0, "source": {"source-ref": str(tmp_path / "a.png")}, "label": label(1, True, 1)},
        {"id": 1, "source": {"source-ref": str(tmp_path / "gone.png")}, "label": label(0, False, 1, 0.99)},
        {"id": 2, "source": {"source-ref": "s3://bucket/x.png"}, "label": None},
    ]
    write(out / "iterations" / "001" / "ledger-auto.jsonl", records)
    page = write_report(out).read_text()
    thumbs = [img for img in embedded_images(page) if len(img) < 2000]
    assert thumbs, "the 8x8 image as an embedded thumbnail"
    from io import BytesIO

    assert Image.open(BytesIO(thumbs[0])).size == (96, 96), "small images are scaled up, pixels kept sharp"
    assert "no preview" in page


def test_the_report_command(finished_run, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="labelloop")
    add_report_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(finished_run), "--price-per-label", "0.25"])
    assert args.func(args) == 0
    assert f"report: {finished_run / 'report' / 'report.html'}" in capsys.readouterr().out
    assert "$3.00" in (finished_run / "report" / "report.html").read_text()  # 6 x $0.25 x 2
    args = parser.parse_args(["report", str(tmp_path / "no-such-run")])
    assert args.func(args) == 2
    assert "no-such-run is not a folder" in capsys.readouterr().err
    args = parser.parse_args(["report", str(finished_run), "--price-per-label", "-1"])
    assert args.func(args) == 2


def test_examples_are_the_least_confident_auto_labels_and_the_newest_human_labels(finished_run):
    data = load_run(finished_run, examples=2)
    assert [i.source["source"] for i in data.labels.auto_examples()] == ["message 7: hello", "message 5: hello"]
    assert [i.source["source"] for i in data.labels.human_examples()] == ["message 8: hello", "message 9: hello"]
    assert data.labels.total == 12 and data.labels.auto == 5
    page = write_report(finished_run, examples=2).read_text()
    assert "the 2 least confident of 5" in page and "2 of 7 human labels" in page


def test_every_task_type_draws_its_examples_and_an_unknown_one_gets_text(tmp_path):
    from PIL import Image

    from labelloop import tasks
    from labelloop.report import example_view

    Image.new("L", (8, 8), 0).save(tmp_path / "a.png")
    source = {"source-ref": str(tmp_path / "a.png"), "source": "<b>hi</b>"}
    for task in tasks.all_types():
        drawn = str(example_view(task.name)(source))
        image = '<img src="data:image/png;base64,'
        expected = {"image": image, "image-boxes": image, "image-mask": image,
                    "text": "&lt;b&gt;hi&lt;/b&gt;</div>"}[task.report_example]
        assert drawn.startswith(expected) if task.report_example != "text" else drawn.endswith(expected), task.name
    assert str(example_view("no-such-task")({"source": "x"})) == '<div class="snippet" title="x">x</div>'


LONG_TEXT = "A long complaint. " * 30 + "THE LAST WORDS"


def history(*states: tuple[str, str, float]) -> list[dict]:
    """Execution-history events: each (state, type prefix, seconds) entered and exited in turn."""
    from datetime import datetime, timedelta, timezone

    now, events = datetime(2026, 1, 1, tzinfo=timezone.utc), []
    for name, kind, seconds in states:
        events.append({"timestamp": str(now), "type": f"{kind}StateEntered", "stateEnteredEventDetails": {"name": name}})
        now += timedelta(seconds=seconds)
        events.append({"timestamp": str(now), "type": f"{kind}StateExited", "stateExitedEventDetails": {"name": name}})
    return events


@pytest.fixture
def judged_run(finished_run) -> Path:
    """The finished run scored against true labels that say one auto-label is wrong; it ended on a
    human batch, one auto-label is of the worst-case tail, one item is a long text."""
    from labelloop.evaluation import evaluate
    from labelloop.manifest import item_key

    out = finished_run
    manifest = out / "output" / "output.manifest"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[5]["source"] = LONG_TEXT
    lines[11]["animal-metadata"].update(confidence=0.61, **{"labelloop-calibration": {
        "threshold": None, "accuracy-lower-bound": 0.97, "support": 200, "basis": "worst-case tail"}})
    write(manifest, lines)
    truth = {item_key(l): l["animal-metadata"]["class-name"] for l in lines}
    truth[item_key(lines[6])] = "dog"  # auto-labeled cat; truly a dog
    write(out / "truth.jsonl", [{"key": k, "label": v} for k, v in truth.items()])
    evaluation = evaluate((json.dumps(l) for l in lines), "animal", truth)
    evaluation.truth_file = str(out / "truth.jsonl")
    write(out / "output" / "evaluation.json", evaluation.to_json())
    write(out / "iterations" / "003" / "metrics.json", {
        **metrics(3, 8, 2, 5, 0, 0, None, None, stop="all-labeled"), "FinalHumanBatch": True})
    write(out / "work" / "execution-history.json", history(
        ("Bootstrap", "Task", 1), ("LabelWithHumans", "Task", 300), ("TrainModel", "Task", 120),
        ("InferValidation", "Task", 20), ("InferUnlabeled", "Task", 40), ("GateAndRoute", "Task", 2),
        ("LabelWithHumans", "Task", 600), ("MergeHumanLabels", "Task", 1), ("ExportOutput", "Task", 1)))
    return out


def test_a_judged_run_shows_what_went_wrong(judged_run):
    page = write_report(judged_run).read_text()
    # Below target, marked where the eye lands first.
    assert '<h2 class="below">Below target</h2>' in page and "80.0 %" in page and "the target is 95.0 %" in page
    assert "BELOW TARGET · against the true labels" in page
    # Per-class accuracy: cat's auto-labels are 1 of 2 right; dog's 2 of 2 (bird had none).
    per_class = page.split('<table class="accuracy">')[1].split("</table>")[0]
    assert '<tr class="below"><td>cat</td><td>2</td><td>50.0 % ▼ below target</td><td>2</td><td>100.0 %</td></tr>' in per_class
    assert "<tr><td>dog</td><td>3</td><td>100.0 %</td><td>3</td><td>100.0 %</td></tr>" in per_class
    # Confusion matrix of the auto-labels: one dog given "cat".
    matrix = page.split('<table class="confusion">')[1].split("</table>")[0]
    assert '<tr><th>dog</th><td class="miss">1</td><td class="hit">3</td><td class="">0</td></tr>' in matrix
    # The wrong auto-label is marked among the examples; the tail is its own group.
    assert page.count("✗ wrong, true: dog") == 1
    auto = page.split("<h3>Auto-labeled ")[1].split("<h3>")[0]
    tail = page.split("<h3>Worst-case tail ")[1].split("<h3>")[0]
    assert "message 11" not in auto and "message 11" in tail and "1 of 1 auto-labeled below the threshold" in tail
    assert "closest to it first" in auto and "of 4 above the threshold" in auto
    # The long text is all there, folded.
    assert '<details class="fold"><summary>A long complaint.' in page and "THE LAST WORDS</div></details>" in page
    # The final human batch is a row of the iteration table, marked as such.
    table = page.split('<table class="iterations">')[1].split("</table>")[0]
    assert '<tr class="final" title="the human batch that ended the job' in table and "<td>3</td><td>8</td><td>2</td>" in table
    # Cost against all-human, and the time per kind of state and per iteration.
    assert '<svg class="curve"' in page and 'class="all-human"' in page and "<title>it. 3: 8 human labels for 13 items</title>" in page
    timing = page.split("Where the time went")[1].split("</div>")[0]
    assert "<tr><td>humans</td><td>15m 00s</td><td>82.9 %</td></tr>" in timing
    assert "<tr><td>training</td><td>2m 00s</td>" in timing
    assert "<tr><td>1</td><td>2m 00s</td><td>1m 00s</td><td>5m 00s</td><td>0.0s</td><td>3.0s</td><td>8m 03s</td></tr>" in timing
    assert "<tr><td>2</td><td>0.0s</td><td>0.0s</td><td>10m 00s</td><td>0.0s</td><td>2.0s</td><td>10m 02s</td></tr>" in timing


def test_a_run_that_auto_labeled_nothing_says_why_and_what_would_change_it(finished_run):
    settings = json.loads((finished_run / "config" / "settings.json").read_text())
    write(finished_run / "config" / "settings.json", {
        **settings, "ManifestUri": "m", "OutputUri": str(finished_run), "ConfidenceLevel": 0.95, "LabelCategories": CLASSES})
    for path in (finished_run / "iterations").glob("*/metrics.json"):
        write(path, {**json.loads(path.read_text()), "AutoLabeled": 0})
    summary = finished_run / "output" / "summary.json"
    write(summary, {**json.loads(summary.read_text()), "AutoLabeled": 0})
    page = write_report(finished_run).read_text()
    assert "<h2>Nothing was auto-labeled</h2>" in page
    assert "the first certificate needs 59 validation labels; this job held at most 10" in page
    assert "at --target-accuracy 0.9 the first certificate needs 29 validation labels" in page

