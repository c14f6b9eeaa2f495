"""SampleForHumans: the first human batch, a seeded random sample of the unlabeled items."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    state = steps.sample_for_humans(event)
    job_dimension(event["config"])
    metrics.add_metric(name="NextHumanBatch", unit=MetricUnit.Count, value=state["HumanBatch"]["Count"])
    logger.info("first human batch", extra={"count": state["HumanBatch"]["Count"]})
    return state
