"""MergeHumanLabels: add the labeling job's answers to the ledger."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    state = steps.merge_human_labels(event)
    job_dimension(event["config"])
    metrics.add_metric(name="HumanLabeledThisIteration", unit=MetricUnit.Count, value=state["HumanLabeledThisIteration"])
    logger.info("human labels merged", extra={"merged": state["HumanLabeledThisIteration"], "remaining": state["Remaining"]})
    return state
