"""GateAndRoute: auto-label the confident items, route the uncertain ones to humans."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    state = steps.gate_and_route(event)
    m = state["LastMetrics"]
    job_dimension(event["config"])
    # Running totals, so the dashboard's last datapoint is the job's state.
    for name in ("HumanLabeled", "AutoLabeled", "Remaining", "AutoLabeledThisIteration", "NextHumanBatch", "Iteration"):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=m[name])
    logger.info("iteration done", extra=m)
    return state
