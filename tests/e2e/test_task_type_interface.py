"""The task-type interface is the only place that knows a type.

A task type defined here, in the test, and registered from it, runs through the real ASL in the
local engine: bootstrap reads its labels, the simulated workforce answers in its format, the
model trains and gates, and the output manifest is written in its format, with no edit outside
this module. Its labels are class *names* in the manifest (not Ground Truth's class indices), so
a step that read or wrote a label without asking the task type would fail here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelloop import tasks
from labelloop.local.engine import LocalEngine
from labelloop.local.workforce import SimulatedWorkforce
from labelloop.manifest import item_key
from labelloop.tasks.base import Framework
from labelloop.tasks.classification import Classification

CLASSES = ["ferry", "glacier", "orchard"]
WORDS = {
    "ferry": "harbour deck crossing tide passengers",
    "glacier": "ice crevasse moraine snowfield cold",
    "orchard": "apples blossom pruning ladder harvest",
}


class NamedClassText(Classification):
    """Text classification whose manifest label is the class name."""

    name = "test-named-class-text"
    ground_truth_type = "labelloop-test/named-class-text"
    lambda_suffix = "TestNamedClassText"
    title = "Name the place"
    ui_template = "<p>{{ task.input.taskObject }}</p>"
    algorithm_folder = "text_classification"  # the algorithm is not what this test is about
    framework = Framework("sklearn", "1.2-1", "py3", gpu=False)
    deploy_prefix = "TestNamedClassText"
    items_are_images = False
    report_example = "text"

    def read_value(self, value: Any, class_names: list[str]) -> int:
        if value not in class_names:
            raise ValueError(f"{value!r} is not one of {class_names}")
        return class_names.index(value)

    def write_value(self, value: int, class_names: list[str]) -> str:
        return class_names[value]


@pytest.fixture
def named_class_type():
    task = tasks.register(NamedClassText())
    yield task
    tasks.unregister(task.name)


def test_a_task_type_registered_by_a_test_runs_through_the_real_asl(named_class_type, tmp_path):
    lines, truth = [], {}
    for i in range(240):
        cls = CLASSES[i % 3]
        line = {"source": f"note {i}: {WORDS[cls]} {i % 7}"}
        if i < 30:  # labels the input already carries, in the task type's own format
            line["place"] = cls
        lines.append(line)
        truth[item_key(line)] = cls
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    workforce = SimulatedWorkforce(truth, seed=0)
    engine = LocalEngine(tmp_path / "work", workforce)
    result = engine.run({
        "ManifestUri": str(manifest),
        "OutputUri": str(tmp_path / "out"),
        "JobName": "named-class",
        "TaskType": named_class_type.name,
        "LabelAttributeName": "place",
        "LabelCategories": CLASSES,
        "HumanBatchSize": 60,
        "TargetAccuracy": 0.9,
        "ConfidenceLevel": 0.9,
        "Seed": 0,
    }, name="named-class")
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"

    out = [json.loads(x) for x in Path(result.summary["OutputManifestUri"]).read_text().splitlines()]
    assert len(out) == len(lines)
    by_key = {item_key(x): x for x in out}
    labeled = [x for x in out if "place" in x]
    assert labeled, "nothing was labeled"
    for line in labeled:
        meta = line["place-metadata"]
        assert line["place"] in CLASSES  # written by the task type: a name, not an index
        assert meta["type"] == "labelloop-test/named-class-text"
        assert meta["class-name"] == line["place"]
    for line in lines[:30]:  # input labels kept as they were
        assert by_key[item_key(line)]["place"] == line["place"]
    human = [x for x in labeled if x["place-metadata"]["human-annotated"] == "yes"]
    assert workforce.answered > 0 and len(human) >= workforce.answered
    assert all(x["place"] == truth[item_key(x)] for x in human)  # the workforce answered through the type
    assert result.summary["StopReason"] in ("all-labeled", "human-budget-spent", "no-progress", "max-iterations")
