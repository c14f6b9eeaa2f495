"""SampleForHumans: the first human batch, a seeded random sample of the unlabeled items."""

from observability import logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    state = steps.sample_for_humans(event)
    logger.info("first human batch", extra={"count": state["HumanBatch"]["Count"]})
    return state
