"""ExportOutput: the Ground Truth output manifest and the run's summary."""

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    summary = steps.export_output(event)
    job_dimension(event["config"])
    metrics.add_metric(name="UnlabeledAtEnd", unit=MetricUnit.Count, value=summary["Unlabeled"])
    logger.info("output written", extra=summary)
    return summary
