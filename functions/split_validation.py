"""SplitValidation: this iteration's train/validation channels and transform input."""

from observability import logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    iteration = steps.split_validation(event)
    logger.info(
        "channels written",
        extra={k: iteration[k] for k in ("TrainCount", "ValidationCount", "UnlabeledCount")},
    )
    return iteration
