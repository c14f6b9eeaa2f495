"""The report of real runs: `labelloop run` labels a few hundred digits (the CNN) and a small
text set whose items hold HTML, through the local engine, then `labelloop report` renders each
output folder. What the page says is checked against what the run wrote.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from labelloop import metrics_table
from labelloop.cli import main
from labelloop.datasets import load_truth
from labelloop.datasets.digits import prepare_digits
from labelloop.manifest import item_key

HOSTILE = [
    "<script>alert('owned')</script> free prize",
    '<img src=x onerror="alert(1)"> winner casino',
    "</figcaption></figure><h1>fake</h1> meeting lunch",
    "Tom & Jerry's \"agenda\" <b>project</b> report",
]
WORDS = {"ham": ["meeting", "lunch", "project", "report", "agenda"], "spam": ["winner", "prize", "casino", "offer", "free"]}


def labelloop(*argv: str) -> str:
    """Run the command line as a user would; what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0, out.getvalue()
    return out.getvalue()


def read_run(out: Path, printed: str, report: str) -> dict:
    page = Path(report.split("report: ", 1)[1].strip()).read_text()
    lines = [json.loads(l) for l in (out / "output" / "output.manifest").read_text().splitlines() if l.strip()]
    metrics = [json.loads(p.read_text()) for p in sorted(out.glob("iterations/*/metrics.json"))]
    return {"out": out, "page": page, "printed": printed, "lines": lines, "metrics": metrics,
            "summary": json.loads((out / "output" / "summary.json").read_text()),
            "evaluation": json.loads((out / "output" / "evaluation.json").read_text())}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("digits-report")
    data = prepare_digits(root / "data", limit=300)
    out = root / "run"
    # A lower target than the default, so that 300 items are enough for a threshold by iteration 2.
    printed = labelloop(
        "run", "--manifest", str(data.manifest), "--output", str(out), "--task-type", "image-classification",
        "--label-attribute", "digit", "--label-config", str(data.label_config), "--truth", str(data.truth),
        "--job-name", "digits-report", "--human-batch-size", "80", "--target-accuracy", "0.9",
        "--confidence", "0.9", "--max-iterations", "3",
        # The cumulative scope's worst-case tail labels the last items within 3 iterations, so every
        # line has a kind to show, the tail group included (job scope, the default, has no tail).
        "--calibration-scope", "cumulative",
    )
    return read_run(out, printed, labelloop("report", str(out)))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("text-report")
    lines, truth = [], []
    for i in range(120):
        cls = "ham" if i % 2 else "spam"
        text = HOSTILE[i] if i < len(HOSTILE) else " ".join(WORDS[cls][(i * k) % 5] for k in range(1, 7)) + f" n{i}"
        cls = "spam" if any(w in text for w in WORDS["spam"]) else cls
        lines.append({"source": text})
        truth.append({"key": item_key({"source": text}), "label": cls})
    (root / "manifest.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    (root / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truth))
    out = root / "run"
    printed = labelloop(
        "run", "--manifest", str(root / "manifest.jsonl"), "--output", str(out), "--task-type", "text-classification",
        "--label-attribute", "category", "--labels", "ham,spam", "--truth", str(root / "truth.jsonl"),
        "--job-name", "text-report", "--human-batch-size", "30", "--validation-size", "20",
        "--target-accuracy", "0.85", "--confidence", "0.8", "--max-iterations", "3",
    )
    return read_run(out, printed, labelloop("report", str(out), "--examples", "200"))


RUNS = ["digits_run", "text_run"]


def card(page: str, key: str) -> tuple[str, str]:
    match = re.search(rf'<div class="k">{re.escape(key)}</div><div class="v">([^<]*)</div><div class="n">([^<]*)</div>', page)
    assert match, f"no {key!r} card"
    return match.group(1), match.group(2)


def figures(page: str, group: str) -> list[tuple[str, str, str]]:
    """(example body, class shown, note) of each example in a group of the page (none: no such group)."""
    if f"<h3>{group} " not in page:
        return []
    section = page.split(f"<h3>{group} ", 1)[1].split("</div>\n", 1)[0]
    return re.findall(r'<figure class="example(?: wrong)?">(.*?)<figcaption>(?:<b>(.*?)</b>)?(.*?)</figcaption></figure>', section)


@pytest.mark.parametrize("run", RUNS)
def test_totals_are_what_the_run_wrote(run, request):
    r = request.getfixturevalue(run)
    summary, lines, page = r["summary"], r["lines"], r["page"]
    human = sum(l[k]["human-annotated"] == "yes" for l in lines for k in l if k.endswith("-metadata"))
    assert summary["AutoLabeled"] > 0 and summary["HumanLabeled"] == human > 0, "both kinds of label to show"
    assert card(page, "items")[0] == f"{summary['Total']:,}" == f"{len(lines):,}"
    assert card(page, "human labels")[0] == f"{summary['HumanLabeled']:,}"
    assert card(page, "auto-labels")[0] == f"{summary['AutoLabeled']:,}"
    assert card(page, "unlabeled")[0] == f"{summary['Unlabeled']:,}"
    assert card(page, "cost so far")[0] == f"${summary['HumanCost']:,.2f}"
    assert card(page, "iterations")[0] == str(summary["Iterations"])
    assert card(page, "auto-label accuracy")[0] == f"{100 * r['evaluation']['auto_accuracy']:.1f} %"
    assert f"finished ({summary['StopReason']})" in page and "from output/output.manifest" in page


@pytest.mark.parametrize("run", RUNS)
def test_each_iteration_is_a_row_as_labelloop_run_printed_it(run, request):
    r = request.getfixturevalue(run)
    table = r["page"].split('<table class="iterations">')[1].split("</table>")[0]
    rows = re.findall(r"<tr(?: class=\"final\"[^>]*)?>((?:<td>[^<]*</td>)+)</tr>", table)  # the last: a final human batch
    assert len(rows) == len(r["metrics"]) == r["summary"]["Iterations"] >= 2
    headers = [c.header for c in metrics_table.COLUMNS]
    for row, metrics in zip(rows, r["metrics"], strict=True):
        cells = dict(zip(headers, re.findall(r"<td>([^<]*)</td>", row), strict=True))
        assert cells["it."] == str(metrics["Iteration"])
        assert (cells["human"], cells["auto"]) == (str(metrics["HumanLabeled"]), str(metrics["AutoLabeled"]))
        assert metrics_table.text_row(metrics) in r["printed"], "the terminal line of the same iteration"


@pytest.mark.parametrize("run", RUNS)
def test_examples_show_auto_and_human_labels_as_the_output_manifest_has_them(run, request):
    r = request.getfixturevalue(run)
    attribute = "digit" if run == "digits_run" else "category"
    by_item = {l.get("source-ref") or l.get("source"): l[f"{attribute}-metadata"] for l in r["lines"]}
    truth = load_truth(r["evaluation"]["truth_file"])
    for group, human in (("Auto-labeled", "no"), ("Routed to humans", "yes")):
        shown = figures(r["page"], group)
        assert shown, f"{group}: examples shown"
        for body, name, note in shown:
            key = re.search(r'title="([^"]*)"', body).group(1)
            meta = by_item[html.unescape(key)]
            assert meta["human-annotated"] == human and name == str(escape(meta["class-name"]))
            assert "basis" not in meta.get("labelloop-calibration", {}), "the worst-case tail is a group of its own"
            true = truth[item_key({"source-ref": html.unescape(key)} if run == "digits_run" else {"source": html.unescape(key)})]
            assert ("✗ wrong, true: " in note) == (true != meta["class-name"]), "a wrong label is marked, a right one not"
            if human == "no":
                assert note.startswith(f" {100 * meta['confidence']:.1f} %")


def kind(line: dict, attribute: str) -> str:
    meta = line[f"{attribute}-metadata"]
    if meta["human-annotated"] == "yes":
        return "Routed to humans"
    return "Worst-case tail" if meta.get("labelloop-calibration", {}).get("basis") == "worst-case tail" else "Auto-labeled"


def test_digits_are_shown_as_embedded_thumbnails(digits_run):
    page = digits_run["page"]
    kinds = [kind(l, "digit") for l in digits_run["lines"]]
    for group in ("Auto-labeled", "Worst-case tail", "Routed to humans"):
        bodies = [body for body, _, _ in figures(page, group)]
        assert len(bodies) == min(24, kinds.count(group))
        assert all(body.startswith('<img src="data:image/png;base64,') for body in bodies)
    assert not re.search(r'(src|href)="(?!data:)', page), "self-contained: nothing loaded from elsewhere"
    for name in ("labels.png", "calibration.png", "classes.png"):
        assert (digits_run["out"] / "report" / name).read_bytes().startswith(b"\x89PNG")


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def test_html_in_item_text_is_shown_as_text_never_run(text_run):
    page = text_run["page"]
    parsed = Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and not parsed.handlers, "no element or handler from the items' text"
    groups = ("Auto-labeled", "Worst-case tail", "Routed to humans")
    shown = [body for group in groups for body, _, _ in figures(page, group)]
    assert len(shown) == text_run["summary"]["HumanLabeled"] + text_run["summary"]["AutoLabeled"], "--examples 200: all"
    for text in HOSTILE:
        assert text not in page
        assert f'<div class="snippet" title="{escape(text)}">{escape(text)}</div>' in shown


@pytest.mark.parametrize("run", RUNS)
def test_the_run_said_what_its_truth_covers_and_what_the_promise_needs(run, request):
    r = request.getfixturevalue(run)
    total = r["summary"]["Total"]
    assert f"true labels: {total} of the manifest's {total} items (100.0 %)" in r["printed"]
    assert re.search(r"promise: \d+ % accurate with \d+ % confidence needs \d+ validation labels", r["printed"])


@pytest.mark.parametrize("run", RUNS)
def test_accuracy_per_class_and_the_time_per_state_are_what_the_run_measured(run, request):
    r = request.getfixturevalue(run)
    page, evaluation = r["page"], r["evaluation"]
    per_class = page.split('<table class="accuracy">')[1].split("</table>")[0]
    autos = [int(n.replace(",", "")) for n in re.findall(r"<tr(?: class=\"below\")?><td>[^<]*</td><td>([\d,]+)</td>", per_class)]
    assert sum(autos) == evaluation["auto"] == sum(c["auto"] for c in evaluation["per_class"].values())
    matrix = page.split('<table class="confusion">')[1].split("</table>")[0]
    assert sum(int(n.replace(",", "")) for n in re.findall(r'<td class="(?:hit|miss|)">([\d,]+)</td>', matrix)) == evaluation["auto"]
    timing = page.split("Where the time went")[1].split("</div>")[0]
    assert "<td>TrainModel</td>" in timing and "<td>InferUnlabeled</td>" in timing and "<td>training</td>" in timing
    assert '<svg class="curve"' in page
