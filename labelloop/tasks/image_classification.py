"""Image classification: one class per image (Ground Truth `groundtruth/image-classification`)."""

from __future__ import annotations

from labelloop.tasks import register
from labelloop.tasks.base import Framework
from labelloop.tasks.classification import Classification

_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-image-classifier
    name="crowd-image-classifier"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="{{ task.input.header }}"
    categories="{{ task.input.labels | to_json | escape }}">
    <full-instructions header="Classification instructions">
      <p>Choose the one category that best describes the image.</p>
    </full-instructions>
    <short-instructions>
      <p>Choose the one category that best describes the image.</p>
    </short-instructions>
  </crowd-image-classifier>
</crowd-form>
"""


class ImageClassification(Classification):
    name = "image-classification"
    ground_truth_type = "groundtruth/image-classification"
    lambda_suffix = "ImageMultiClass"
    title = "Classify the image"
    ui_template = _TEMPLATE
    algorithm_folder = "image_classification"
    framework = Framework("pytorch", "2.6.0", "py312", gpu=True)
    deploy_prefix = "ImageClassification"
    items_are_images = True
    report_example = "image"


TASK = register(ImageClassification())
