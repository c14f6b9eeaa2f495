"""Bootstrap: check the settings and read the input manifest into the first ledger."""

import os

from observability import MetricUnit, job_dimension, logger, metrics

from labelloop import steps


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    # What the stack allows (its roles are scoped to these): checked before any job starts.
    limits = {"JobNamePrefix": os.environ.get("LABELLOOP_JOB_NAME_PREFIX"), "DataBucket": os.environ.get("LABELLOOP_DATA_BUCKET")}
    event["Deployment"] = {**event.get("Deployment", {}), **{k: v for k, v in limits.items() if v}}
    result = steps.bootstrap(event)
    state = result["state"]
    job_dimension(result["config"])
    metrics.add_metric(name="InputItems", unit=MetricUnit.Count, value=state["Total"])
    metrics.add_metric(name="RejectedItems", unit=MetricUnit.Count, value=state["Rejected"])
    logger.info("input read", extra={"total": state["Total"], "rejected": state["Rejected"]})
    return result
