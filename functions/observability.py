"""Logger and Metrics shared by every handler: one service name, one metrics namespace."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="labelloop")
metrics = Metrics(namespace="labelloop", service="labelloop")

__all__ = ["logger", "metrics", "MetricUnit", "job_dimension"]


def job_dimension(config: dict) -> None:
    """One dimension only (the job), so every metric of a job lands on the same dashboard line."""
    name = config["Settings"]["JobName"]
    # A warm container keeps the dimension when metrics are disabled (no flush clears it).
    if metrics.dimension_set.get("JobName") != name:
        metrics.add_dimension(name="JobName", value=name)
