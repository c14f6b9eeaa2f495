"""MergeHumanLabels: add the labeling job's answers to the ledger."""

from observability import step_handler

from labelloop import steps

lambda_handler = step_handler(
    steps.merge_human_labels, "human labels merged",
    lambda s: {"HumanLabeledThisIteration": s["HumanLabeledThisIteration"]},
    log=lambda s: {"merged": s["HumanLabeledThisIteration"], "remaining": s["Remaining"]},
)
