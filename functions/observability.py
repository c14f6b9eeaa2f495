"""Logger and Metrics shared by every handler: one service name, one metrics namespace."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="labelloop")
metrics = Metrics(namespace="labelloop", service="labelloop")

__all__ = ["logger", "metrics", "MetricUnit", "job_dimension"]


def job_dimension(config: dict) -> None:
    """One dimension only (the job), so every metric of a job lands on the same dashboard line."""
    metrics.add_dimension(name="JobName", value=config["Settings"]["JobName"])
