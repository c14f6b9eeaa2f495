"""SplitValidation: this iteration's train/validation channels and transform input."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    iteration = steps.split_validation(event)
    job_dimension(event["config"])
    metrics.add_metric(name="ValidationItems", unit=MetricUnit.Count, value=iteration["ValidationCount"])
    logger.info(
        "channels written",
        extra={k: iteration[k] for k in ("TrainCount", "ValidationCount", "UnlabeledCount")},
    )
    return iteration
