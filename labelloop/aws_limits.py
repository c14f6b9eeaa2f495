"""The AWS service limits a run must stay inside, checked before anyone is paid.

Pure logic, in the Lambda package. Each limit here is one a real run would otherwise hit only
after a labeling job was paid for:

- SageMaker names: at most 63 characters. Every name a run derives from its JobName is checked
  at parse time (`settings_problems`).
- Step Functions: at most 25,000 history events per execution, a failure no Catch sees.
  MaxIterations is bounded by that budget (`MAX_ITERATIONS`; the arithmetic is in
  tests/deploy/test_aws_limits.py).
- Batch transform: a MultiRecord request of `MAX_PAYLOAD_MB` must get a reply the model server
  sends (TorchServe's default limit, 6,553,500 bytes) within the model server's timeout. The
  transform input lines are padded so that no request holds more lines than that allows
  (`transform_line`).
- Instance types: each must be one its own API takes (botocore's enum), checked in Bootstrap.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from labelloop.layout import job_name

# ---------------------------------------------------------------- SageMaker names

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # the Create* APIs' name pattern, 63 at most
MAX_JOB_NAME = 32
RUN_ID_LENGTH = 8  # JobSettings.run_id
# The kinds of SageMaker resource a run names {JobName}-{RunId}-{NNN}-{kind} (steps/split.py,
# steps/human_batch.py); "auto" names the auto-labels' job-name metadata, not a resource.
JOB_KINDS = ("label", "train", "model", "infer-val", "infer-unl")

# ---------------------------------------------------------------- Step Functions history

HISTORY_EVENT_LIMIT = 25_000
MAX_ITERATIONS = 200  # the event budget behind it: tests/deploy/test_aws_limits.py

# ---------------------------------------------------------------- batch transform

MAX_PAYLOAD_MB = 1  # the ASL's MaxPayloadInMB for both transforms
PAYLOAD_BYTES = MAX_PAYLOAD_MB * 1024 * 1024  # read as MiB: the larger reading, so the safe one
# TorchServe's default max_response_size; the PyTorch inference container keeps it. The model's
# environment raises it too (TS_MAX_RESPONSE_SIZE), but the padding below does not rely on that.
MODEL_SERVER_REPLY_LIMIT = 6_553_500
REPLY_MARGIN = 0.9  # headroom under the limit
MAX_LINES_PER_REQUEST = 8_000  # bounds the S3 reads one request makes (see MODEL_SERVER_TIMEOUT)
MODEL_SERVER_TIMEOUT = 3600  # SAGEMAKER_MODEL_SERVER_TIMEOUT and InvocationsTimeoutInSeconds (at most 3600)
PAD_KEY = "labelloop-pad"
# json.dumps of a float in [0, 1] is at most 23 characters (1.2345678901234567e-100);
# the reply line is jsonlines_protocol.format_response's: {"probabilities": [p, p, ...]}\n
_FLOAT_CHARS = 23


def reply_line_bytes(n_classes: int) -> int:
    """Longest reply line the inference scripts write for one record with `n_classes` classes."""
    return len('{"probabilities": [') + n_classes * _FLOAT_CHARS + (n_classes - 1) * len(", ") + len("]}\n")


def max_lines_per_request(n_classes: int, reply_bytes: int | None = None) -> int:
    """Most records one request may hold so its reply fits the model server's limit.

    `reply_bytes`: the longest reply line of a task type whose algorithm answers other than with
    class probabilities (boxes); by default, the class probabilities' line.
    """
    by_reply = int(MODEL_SERVER_REPLY_LIMIT * REPLY_MARGIN) // (reply_bytes or reply_line_bytes(n_classes))
    return max(1, min(by_reply, MAX_LINES_PER_REQUEST))


def min_line_bytes(n_classes: int, reply_bytes: int | None = None) -> int:
    """Shortest transform input line (newline included) that keeps a full request within limits."""
    return math.ceil(PAYLOAD_BYTES / max_lines_per_request(n_classes, reply_bytes))


def worst_case_reply_bytes(n_classes: int, line_bytes: int) -> int:
    """Reply to a full request of `line_bytes`-long lines (newline included)."""
    return (PAYLOAD_BYTES // line_bytes) * reply_line_bytes(n_classes)


def transform_line(line: dict[str, Any], n_classes: int, reply_bytes: int | None = None) -> dict[str, Any]:
    """`line` padded, if it is short, so a full request of such lines gets a reply in time and in size.

    The padding is a string field the algorithms ignore; batch transform's join carries it
    into the output, where the steps ignore it too.
    """
    size = len(json.dumps(line, separators=(",", ":"))) + 1  # as storage.LineWriter writes it (ASCII)
    need = min_line_bytes(n_classes, reply_bytes) - size
    if need <= 0:
        return line
    overhead = len(json.dumps({PAD_KEY: ""}, separators=(",", ":"))) - 1  # ,"labelloop-pad":""
    return {**line, PAD_KEY: " " * max(0, need - overhead)}


# ---------------------------------------------------------------- settings


def derived_names(job: str, max_iterations: int) -> list[str]:
    """The longest SageMaker names a run of `job` creates (the last iteration's, a run id's length)."""
    run_id = "0" * RUN_ID_LENGTH
    return [job_name(job, run_id, iteration, kind) for iteration in (1, max_iterations + 1) for kind in JOB_KINDS]


def settings_problems(job: Any, max_iterations: Any) -> list[str]:
    """What is wrong with JobName and MaxIterations against the services' limits (parse time)."""
    problems = []
    if isinstance(job, str) and len(job) > MAX_JOB_NAME:
        problems.append(
            f"JobName {job!r} has {len(job)} characters, at most {MAX_JOB_NAME}: the SageMaker job names made from it "
            "({JobName}-{RunId}-{NNN}-{kind}) must fit in 63"
        )
    if isinstance(max_iterations, int) and not isinstance(max_iterations, bool) and max_iterations > MAX_ITERATIONS:
        problems.append(
            f"MaxIterations must be at most {MAX_ITERATIONS}, got {max_iterations}: more would run past Step "
            f"Functions' {HISTORY_EVENT_LIMIT:,} history events per execution"
        )
    if not problems and isinstance(job, str) and isinstance(max_iterations, int):
        for name in derived_names(job, min(max(1, max_iterations), MAX_ITERATIONS)):
            if not SAGEMAKER_NAME.match(name):
                problems.append(f"JobName {job!r} makes the SageMaker name {name!r}, which is longer than 63 or malformed")
                break
    return problems


# ---------------------------------------------------------------- instance types

# Which API each instance-type setting goes to, and the botocore shape of its enum.
INSTANCE_TYPE_APIS = {
    "TrainingInstanceType": ("CreateTrainingJob", ("ResourceConfig", "InstanceType")),
    "TransformInstanceType": ("CreateTransformJob", ("TransformResources", "InstanceType")),
}


def instance_types(operation: str, path: tuple[str, ...]) -> tuple[str, ...]:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    for member in path:
        shape = shape.members[member]
    return tuple(shape.enum)


def instance_type_problem(setting: str, value: str, where: str = "") -> str | None:
    """None if `value` is an instance type the API behind `setting` accepts, else why not."""
    operation, path = INSTANCE_TYPE_APIS[setting]
    allowed = instance_types(operation, path)
    if value in allowed:
        return None
    family = value.rsplit(".", 1)[0] if isinstance(value, str) else ""
    similar = [t for t in allowed if t.startswith(family + ".")][:8] if family else []
    hint = f" (this family has: {', '.join(similar)})" if similar else ""
    return f"{where}{setting} {value!r} is not an instance type {operation} accepts{hint}"


def deployment_problems(algorithm: dict[str, Any], task_type: str) -> list[str]:
    """Bootstrap: the task type's instance types, each against its own API's enum."""
    problems = []
    for setting in INSTANCE_TYPE_APIS:
        value = algorithm.get(setting)
        if value:
            problem = instance_type_problem(setting, value, f"this deployment's {task_type} ")
            if problem:
                problems.append(problem + ": redeploy with a valid one")
    return problems
