"""Text classification: one class per text (Ground Truth `groundtruth/text-classification`)."""

from __future__ import annotations

from labelloop.tasks import register
from labelloop.tasks.base import Framework
from labelloop.tasks.classification import Classification, crowd_classification_template


class TextClassification(Classification):
    name = "text-classification"
    ground_truth_type = "groundtruth/text-classification"
    lambda_suffix = "TextMultiClass"
    title = "Classify the text"
    ui_template = crowd_classification_template("crowd-classifier", "text", source_attribute=False)
    algorithm_folder = "text_classification"
    framework = Framework("sklearn", "1.2-1", "py3", gpu=False)
    deploy_prefix = "TextClassification"
    items_are_images = False
    report_example = "text"


TASK = register(TextClassification())
