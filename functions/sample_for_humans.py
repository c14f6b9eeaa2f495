"""SampleForHumans: the first human batch, a seeded random sample of the unlabeled items."""

from observability import step_handler

from labelloop import steps

lambda_handler = step_handler(
    steps.sample_for_humans, "first human batch",
    lambda s: {"NextHumanBatch": s["HumanBatch"]["Count"]},
    log=lambda s: {"count": s["HumanBatch"]["Count"]},
)
