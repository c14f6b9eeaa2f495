"""ExportOutput: the Ground Truth output manifest and the run's summary."""

from observability import step_handler

from labelloop import steps

lambda_handler = step_handler(
    steps.export_output, "output written", lambda s: {"UnlabeledAtEnd": s["Unlabeled"]}, log=lambda s: s,
)
