"""SplitValidation: this iteration's train/validation channels and transform input."""

from observability import step_handler

from labelloop import steps

lambda_handler = step_handler(
    steps.split_validation, "channels written",
    lambda i: {"ValidationItems": i["ValidationCount"]},
    log=lambda i: {k: i[k] for k in ("TrainCount", "ValidationCount", "UnlabeledCount")},
)
