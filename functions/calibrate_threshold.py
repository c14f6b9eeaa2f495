"""CalibrateThreshold: the confidence threshold whose auto-labels meet the target accuracy."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    calibration = steps.calibrate_threshold(event)
    job_dimension(event["config"])
    if calibration["ValidationAccuracy"] is not None:
        metrics.add_metric(name="ValidationAccuracy", unit=MetricUnit.NoUnit, value=calibration["ValidationAccuracy"])
    if calibration["Threshold"] is not None:
        metrics.add_metric(name="Threshold", unit=MetricUnit.NoUnit, value=calibration["Threshold"])
    logger.info("threshold calibrated", extra=calibration)
    return calibration
