"""GateAndRoute: auto-label the confident items, route the uncertain ones to humans."""

from observability import step_handler

from labelloop import steps

# Running totals, so the dashboard's last datapoint is the job's state.
TOTALS = ("HumanLabeled", "AutoLabeled", "Remaining", "AutoLabeledThisIteration", "NextHumanBatch", "Iteration")

lambda_handler = step_handler(
    steps.gate_and_route, "iteration done",
    lambda s: {name: s["LastMetrics"][name] for name in TOTALS},
    log=lambda s: s["LastMetrics"],
)
