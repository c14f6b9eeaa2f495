"""Bootstrap: check the settings and read the input manifest into the first ledger."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    result = steps.bootstrap(event)
    state = result["state"]
    job_dimension(result["config"])
    metrics.add_metric(name="InputItems", unit=MetricUnit.Count, value=state["Total"])
    metrics.add_metric(name="RejectedItems", unit=MetricUnit.Count, value=state["Rejected"])
    logger.info("input read", extra={"total": state["Total"], "rejected": state["Rejected"]})
    return result
