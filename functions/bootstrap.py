"""Bootstrap: check the settings and read the input manifest into the first ledger."""

import json
import os

from observability import step_handler

from labelloop import steps


def bootstrap(event):
    # What the stack allows (its roles are scoped to these): checked before any job starts.
    limits = {"JobNamePrefix": os.environ.get("LABELLOOP_JOB_NAME_PREFIX"), "DataBucket": os.environ.get("LABELLOOP_DATA_BUCKET")}
    deployment = {**event.get("Deployment", {}), **{k: v for k, v in limits.items() if v}}
    # Each task type's images and source dir: the stack's (or the local engine's) one JSON value.
    if os.environ.get("LABELLOOP_ALGORITHMS"):
        deployment["Algorithms"] = json.loads(os.environ["LABELLOOP_ALGORITHMS"])
    event["Deployment"] = deployment
    return steps.bootstrap(event)


lambda_handler = step_handler(
    bootstrap, "input read",
    lambda r: {"InputItems": r["state"]["Total"], "RejectedItems": r["state"]["Rejected"]},
    log=lambda r: {"total": r["state"]["Total"], "rejected": r["state"]["Rejected"]},
    config=lambda event, result: result["config"],
)
