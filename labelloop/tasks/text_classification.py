"""Text classification: one class per text (Ground Truth `groundtruth/text-classification`)."""

from __future__ import annotations

from labelloop.tasks import register
from labelloop.tasks.base import Framework
from labelloop.tasks.classification import Classification

_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier
    name="crowd-classifier"
    categories="{{ task.input.labels | to_json | escape }}"
    header="{{ task.input.header }}">
    <classification-target>{{ task.input.taskObject }}</classification-target>
    <full-instructions header="Classification instructions">
      <p>Choose the one category that best describes the text.</p>
    </full-instructions>
    <short-instructions>
      <p>Choose the one category that best describes the text.</p>
    </short-instructions>
  </crowd-classifier>
</crowd-form>
"""


class TextClassification(Classification):
    name = "text-classification"
    ground_truth_type = "groundtruth/text-classification"
    lambda_suffix = "TextMultiClass"
    title = "Classify the text"
    ui_template = _TEMPLATE
    algorithm_folder = "text_classification"
    framework = Framework("sklearn", "1.2-1", "py3", gpu=False)
    deploy_prefix = "TextClassification"
    items_are_images = False
    report_example = "text"


TASK = register(TextClassification())
