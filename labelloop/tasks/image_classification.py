"""Image classification: one class per image (Ground Truth `groundtruth/image-classification`)."""

from __future__ import annotations

from labelloop.tasks import register
from labelloop.tasks.base import Framework
from labelloop.tasks.classification import Classification, crowd_classification_template


class ImageClassification(Classification):
    name = "image-classification"
    ground_truth_type = "groundtruth/image-classification"
    lambda_suffix = "ImageMultiClass"
    title = "Classify the image"
    ui_template = crowd_classification_template("crowd-image-classifier", "image", source_attribute=True)
    algorithm_folder = "image_classification"
    framework = Framework("pytorch", "2.6.0", "py312", gpu=True)
    deploy_prefix = "ImageClassification"
    items_are_images = True
    report_example = "image"


TASK = register(ImageClassification())
