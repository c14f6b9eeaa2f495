"""What every handler shares: one service name, one metrics namespace, one way to wrap a step."""

from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="labelloop")
metrics = Metrics(namespace="labelloop", service="labelloop")

__all__ = ["logger", "metrics", "MetricUnit", "job_dimension", "step_handler"]


def job_dimension(config: dict) -> None:
    """One dimension only (the job), so every metric of a job lands on the same dashboard line."""
    name = config["Settings"]["JobName"]
    # A warm container keeps the dimension when metrics are disabled (no flush clears it).
    if metrics.dimension_set.get("JobName") != name:
        # Another job's name (a warm container, or several local runs in one process): replace it
        # without Powertools' "already been added" warning.
        metrics.dimension_set.pop("JobName", None)
        metrics.add_dimension(name="JobName", value=name)


def step_handler(
    step: Callable[[dict], dict],
    message: str,
    counts: Callable[[dict], dict[str, Any]],
    *,
    log: Callable[[dict], dict] | None = None,
    unit: str = MetricUnit.Count,
    config: Callable[[dict, dict], dict] = lambda event, result: event["config"],
) -> Callable:
    """A Lambda handler for one step: run it, publish `counts(result)` as metrics, log `message`.

    Metrics whose value is None are left out (e.g. no threshold yet). The step knows nothing of
    Lambda; this is the only place that does.
    """

    @metrics.log_metrics
    @logger.inject_lambda_context
    def lambda_handler(event, context):
        result = step(event)
        job_dimension(config(event, result))
        for name, value in counts(result).items():
            if value is not None:
                metrics.add_metric(name=name, unit=unit, value=value)
        logger.info(message, extra=(log or counts)(result))
        return result

    return lambda_handler
