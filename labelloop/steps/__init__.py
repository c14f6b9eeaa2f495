"""The loop's Lambda steps, one module per Task state of `statemachine/active_learning.asl.json`.

Each step is a plain function, event dict in, result dict out; the handlers in `functions/`
wrap them with Powertools and nothing else. They read and write artifacts by URI (see
`labelloop.storage`), so they run the same in Lambda against S3 and in the local engine against
a folder. Manifests are streamed; only per-batch data (a human batch, the unlabeled items'
predictions) is held in memory. No step names a task type: `labelloop.tasks` does.
"""

from labelloop.errors import AlgorithmOutputError, InputManifestError, LabelingOutputError
from labelloop.steps.bootstrap import bootstrap
from labelloop.steps.calibrate import calibrate_threshold
from labelloop.steps.export import export_output
from labelloop.steps.gate import gate_and_route
from labelloop.steps.merge import merge_human_labels
from labelloop.steps.sample import sample_for_humans
from labelloop.steps.split import split_validation

__all__ = [
    "AlgorithmOutputError", "InputManifestError", "LabelingOutputError",
    "bootstrap", "sample_for_humans", "merge_human_labels", "split_validation",
    "calibrate_threshold", "gate_and_route", "export_output",
]
