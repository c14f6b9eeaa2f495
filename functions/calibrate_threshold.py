"""CalibrateThreshold: the confidence threshold whose auto-labels meet the target accuracy."""

from observability import MetricUnit, step_handler

from labelloop import steps

lambda_handler = step_handler(
    steps.calibrate_threshold, "threshold calibrated",
    lambda c: {"ValidationAccuracy": c["ValidationAccuracy"], "Threshold": c["Threshold"]},
    log=lambda c: c, unit=MetricUnit.NoUnit,
)
