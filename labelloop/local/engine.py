"""Run `statemachine/active_learning.asl.json` on this machine: no AWS account, no Docker.

The ASL is executed by moto's Step Functions interpreter (moto is pinned exactly: what follows
binds to its internals, and `tests/unit/test_engine_internals.py` imports each of them so an
upgrade fails loudly). Two bindings replace the cloud:

- Lambda Task states call the handlers in `functions/` in-process (moto's no-Docker Lambda
  backend only echoes; its `invoke` is the one place to dispatch).
- `sagemaker:*` Task states, which moto does not run, go to `LocalSageMaker` (training, models,
  batch transform in subprocesses) and to the local workforce (labeling jobs). `.sync` results
  are Describe*-shaped; a Failed job ends the state with `States.TaskFailed` and the Describe*
  JSON as cause, as on AWS.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from unittest import mock

from labelloop import locks, tasks
from labelloop.local.lambda_host import (  # noqa: F401 - FUNCTIONS, LambdaContext, load_handlers: the engine's API
    FUNCTIONS,
    REGION,
    REPO,
    EngineError,
    LambdaContext,
    engine_log,
    function_arn,
    load_handlers,
)
from labelloop.local.sagemaker_jobs import ACCOUNT, NAME_KEYS, LocalJobError, LocalSageMaker, ResponseLostError

DEFINITION = REPO / "statemachine" / "active_learning.asl.json"


@dataclass
class ExecutionResult:
    status: str  # SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    history: list[dict[str, Any]]
    seconds: float

    @property
    def summary(self) -> dict[str, Any] | None:
        return (self.output or {}).get("summary")


def substitute(definition: str, values: dict[str, str]) -> str:
    """Apply DefinitionSubstitutions as Step Functions does: `${Name}` → value."""
    out = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: values.get(m.group(1), m.group(0)), definition)
    missing = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", out)))
    if missing:
        raise EngineError(f"no value for definition substitutions: {', '.join(missing)}")
    return out


@dataclass
class LocalEngine:
    """Runs executions of the labeling state machine locally."""

    workdir: Path
    workforce: Any  # anything with run_labeling_job(params) -> DescribeLabelingJob dict
    on_step: Callable[[str, dict[str, Any]], None] | None = None  # (state name, handler result)
    poll_seconds: float = 0.2
    debug: bool = False  # moto's log of each failed state also goes to stderr (always to workdir/engine.log)
    sagemaker: LocalSageMaker = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.sagemaker = LocalSageMaker(self.workdir / "jobs", region=REGION)
        self.created: dict[str, dict[str, Any]] = {}  # Create* action -> {name: its Describe* answer}
        # Powertools reads these when the handler modules are imported. Locally the per-iteration
        # metrics go to files and the terminal rather than to EMF on stdout.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        # A step that raises has published no metrics; Powertools warns so on every failure, which
        # on a terminal would bury the one line that says what failed (on Lambda it is a log line).
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
        self._handlers = load_handlers()
        # Set by an interrupt (Ctrl-C): no step starts or reports after it; the one running finishes.
        self._stopping = threading.Event()
        self._step_lock = threading.Lock()

    # ------------------------------------------------------------ substitutions

    def substitutions(self) -> dict[str, str]:
        values = {f"{state}FunctionArn": function_arn(state) for state in FUNCTIONS}
        values.update(
            Region=REGION,
            SageMakerRoleArn=f"arn:aws:iam::{ACCOUNT}:role/labelloop-local-sagemaker",
            WorkteamArn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelloop-local",
        )
        return values

    def algorithms(self, task_type: str | None = None) -> dict[str, dict[str, str]]:
        """The run's task type's algorithm (every registered one's without `task_type`): its source
        dir packaged here, run in a subprocess.

        On AWS the stack gives Bootstrap the same document (LABELLOOP_ALGORITHMS) for the
        framework images and the uploaded source dirs. Locally a run packages only what it uses:
        packaging costs time, and a task type's sources need not be here to run another's.
        """
        from labelloop.algorithm_source import package_source

        out = {}
        for task in tasks.all_types():
            if task_type is not None and task.name != task_type:
                continue
            source = package_source(task.name, self.workdir / "source" / task.name)
            image = f"labelloop-local/{task.framework.name}"
            out[task.name] = {
                "TrainingImage": image, "InferenceImage": image, "SourceDirUri": str(source),
                # Instance types SageMaker takes (Bootstrap checks them); the local jobs run here whatever they say.
                "TrainingInstanceType": "ml.m5.xlarge", "TransformInstanceType": "ml.m5.xlarge",
            }
        return out

    # ------------------------------------------------------------ bindings

    def _invoke_lambda(self, backend, function_name, qualifier, body, headers, response_headers):
        name = function_name.split(":")[6] if function_name.startswith("arn:") else function_name
        handler = self._handlers.get(name)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": f"no handler for {name}"}).encode()
        event = json.loads(body) if body else {}
        context = LambdaContext(name, function_arn(name.removeprefix("labelloop-")), f"local-{time.time_ns()}")
        with self._step_lock:
            if not self._stopping.is_set():
                try:
                    result = handler(event, context)
                except Exception as exc:  # reported as Lambda does, so Retry/Catch match the class name
                    response_headers["x-amz-function-error"] = "Unhandled"
                    return json.dumps(
                        {"errorType": type(exc).__name__, "errorMessage": str(exc),
                         "stackTrace": traceback.format_exc().splitlines()}
                    ).encode()
        self._halt_if_stopping()  # interrupted before or while the step ran: it reports nothing
        if self.on_step:
            self.on_step(name.removeprefix("labelloop-"), result)
        return json.dumps(result).encode()

    def _run_sagemaker(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action == "createTrainingJob":
            return self.sagemaker.create_training_job(params)
        if action == "createModel":
            return self.sagemaker.create_model(params)
        if action == "createTransformJob":
            return self.sagemaker.create_transform_job(params)
        if action == "createLabelingJob":
            self.sagemaker.validate("CreateLabelingJob", params)
            return self.workforce.run_labeling_job(params)
        raise LocalJobError(f"the local engine does not run sagemaker:{action}")

    def _create(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """A Create* request: names are unique, as on SageMaker, even when the first answer was lost."""
        name = params[NAME_KEYS[action]]
        created = self.created.setdefault(action, {})
        if name in created:
            raise LocalJobError(f"ResourceInUse: {action.removeprefix('create')} {name} already exists")
        try:
            created[name] = self._run_sagemaker(action, params)
        except ResponseLostError as exc:
            created[name] = exc.describe
            raise
        # A job the interrupt's SIGINT killed would be reported Failed and send the loop down its
        # failure path; after an interrupt nothing is reported, so the rerun finds it unfinished.
        self._halt_if_stopping()
        return created[name]

    def _halt_if_stopping(self) -> None:
        """In the interpreter's (daemon) thread after an interrupt: wait here until the process exits."""
        if self._stopping.is_set():
            threading.Event().wait()

    def _stop(self, grace_seconds: float = 60.0) -> None:
        """After an interrupt: let no further step start, and wait for the one in progress to finish
        (a step's writes are each atomic, but a finished step leaves the least to redo)."""
        self._stopping.set()
        if self._step_lock.acquire(timeout=grace_seconds):
            self._step_lock.release()

    def _describe(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """aws-sdk:sagemaker:describe*Job: what the Create* of that name answered."""
        name = next(iter(params.values()))
        described = self.created.get(action.replace("describe", "create"), {}).get(name)
        if described is None:
            raise LocalJobError(f"ResourceNotFound: {action.removeprefix('describe')} {name} does not exist")
        return described

    def _sagemaker_task_factory(self):
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
            FailureEventException,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_factory
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
            StateTaskServiceAwsSdk,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
            StateTaskServiceCallback,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
            StateTaskServiceUnsupported,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
        from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

        engine = self
        original = state_task_service_factory.state_task_service_for

        class LocalSageMakerTask(StateTaskServiceUnsupported):
            """sagemaker:* Task states, served by the local binding."""

            def __init__(self):
                # .sync only: moto's base class would refuse it before the state even starts.
                StateTaskServiceCallback.__init__(self, supported_integration_patterns={ResourceCondition.Sync})

            def _validate_service_integration_is_supported(self):
                pass

            def _fail(self, env, error_name, error: str, cause: str):
                raise FailureEventException(
                    FailureEvent(
                        env=env,
                        error_name=error_name,
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(
                            taskFailedEventDetails=TaskFailedEventDetails(
                                resource=self._get_sfn_resource(),
                                resourceType=self._get_sfn_resource_type(),
                                error=error,
                                cause=cause,
                            )
                        ),
                    )
                )

            def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
                action = self.resource.api_action
                try:
                    result = engine._create(action, normalised_parameters)
                except LocalJobError as exc:
                    # What SageMaker answers to a request it refuses.
                    self._fail(env, CustomErrorName("SageMaker.AmazonSageMakerException"),
                               "SageMaker.AmazonSageMakerException", str(exc))
                self._describe = result
                if self.resource.condition is None:
                    env.stack.append(result)
                else:  # the Create* answer; the .sync pattern then yields the Describe*
                    arn_key = next((k for k in result if k.endswith("Arn") and k != "ModelArn"), None)
                    env.stack.append({arn_key: result[arn_key]} if arn_key else {})

            def _eval_integration_pattern(self, env, resource_runtime_part, normalised_parameters, state_credentials):
                env.stack.pop()
                describe = self._describe
                status = next((v for k, v in describe.items() if k.endswith("JobStatus")), "Completed")
                if status in ("Failed", "Stopped"):
                    self._fail(env, StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                               StatesErrorNameType.StatesTaskFailed.to_name(), to_json_str(describe))
                env.stack.append(describe)

        class LocalSdkTask(StateTaskServiceAwsSdk):
            """aws-sdk:sagemaker:describe* Task states, answered from the local jobs; other SDK calls as moto does."""

            def _eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):
                if self.resource.api_name != "sagemaker":
                    return super()._eval_service_task(env, resource_runtime_part, normalised_parameters, state_credentials)
                env.stack.append(engine._describe(self.resource.api_action, normalised_parameters))

        def factory(service_name: str):
            if service_name == "aws-sdk":
                return LocalSdkTask()
            return LocalSageMakerTask() if service_name == "sagemaker" else original(service_name)

        return factory

    # ------------------------------------------------------------ execution

    def run(self, execution_input: dict[str, Any], name: str, timeout_seconds: float | None = None) -> ExecutionResult:
        """Start one execution and wait for it to end."""
        import boto3
        from moto import mock_aws
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

        definition = substitute(DEFINITION.read_text(), self.substitutions())
        env = {"AWS_DEFAULT_REGION": REGION, "LABELLOOP_ALGORITHMS": json.dumps(self.algorithms(str(execution_input.get("TaskType"))))}
        started = time.monotonic()
        engine = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return engine._invoke_lambda(backend, function_name, qualifier, body, headers, response_headers)

        with (
            engine_log(self.workdir / "engine.log", echo=self.debug),
            locks.running_here(name),  # a second execution on this output, in this process, sees it alive
            mock.patch.dict(os.environ, env),
            mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}),
            mock.patch.object(LambdaSimpleBackend, "invoke", invoke),
            mock.patch.object(state_task_factory, "state_task_service_for", self._sagemaker_task_factory()),
        ):
            iam = boto3.client("iam", region_name=REGION)
            role = iam.create_role(
                RoleName="labelloop-local",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
            )["Role"]["Arn"]
            lam = boto3.client("lambda", region_name=REGION)
            code = io.BytesIO()
            with zipfile.ZipFile(code, "w") as z:
                z.writestr("handler.py", "# the local engine dispatches to functions/ in-process\n")
            for state, module in FUNCTIONS.items():
                lam.create_function(
                    FunctionName=f"labelloop-{state}", Runtime="python3.11", Role=role,
                    Handler=f"{module}.lambda_handler", Code={"ZipFile": code.getvalue()},
                )
            sfn = boto3.client("stepfunctions", region_name=REGION)
            machine = sfn.create_state_machine(name="labelloop-active-learning", definition=definition, roleArn=role)
            execution = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=name, input=json.dumps(execution_input)
            )["executionArn"]
            try:
                while True:
                    described = sfn.describe_execution(executionArn=execution)
                    if described["status"] != "RUNNING":
                        break
                    if timeout_seconds and time.monotonic() - started > timeout_seconds:
                        sfn.stop_execution(executionArn=execution, error="LocalTimeout", cause="the local run took too long")
                    time.sleep(self.poll_seconds)
            except KeyboardInterrupt:
                # The lock stays, naming this process: once it exits the lock is stale, and the same
                # command takes it over and resumes. Job processes die with it (die_with_parent).
                self._stop()
                raise
            history = [
                event
                for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
                for event in page["events"]
            ]
        output = json.loads(described["output"]) if described.get("output") else None
        return ExecutionResult(
            status=described["status"],
            output=output,
            error=described.get("error"),
            cause=described.get("cause"),
            history=history,
            seconds=time.monotonic() - started,
        )
