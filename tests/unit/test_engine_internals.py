"""The local engine binds to moto internals; an upgrade that moves one must fail here, loudly."""

import importlib
import inspect

import moto

PATCHED = {
    "moto.awslambda_simple.models": ["LambdaSimpleBackend"],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_factory": ["state_task_service_for"],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory": [
        "state_task_service_for"
    ],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported": [
        "StateTaskServiceUnsupported"
    ],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource": ["ResourceCondition"],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk": [
        "StateTaskServiceAwsSdk"
    ],
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback": [
        "StateTaskServiceCallback"
    ],
    "moto.stepfunctions.parser.asl.component.common.error_name.failure_event": ["FailureEvent", "FailureEventException"],
    "moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name": ["CustomErrorName"],
    "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name": ["StatesErrorName"],
    "moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type": ["StatesErrorNameType"],
    "moto.stepfunctions.parser.asl.eval.event.event_detail": ["EventDetails"],
    "moto.stepfunctions.parser.asl.utils.encoding": ["to_json_str"],
    "moto.stepfunctions.parser.api": ["HistoryEventType", "TaskFailedEventDetails"],
}


def test_moto_is_the_pinned_version():
    assert moto.__version__ == "5.2.5"


def test_every_patched_internal_exists():
    for module_name, names in PATCHED.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name} is gone"


def test_patched_signatures_are_the_ones_the_engine_overrides():
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )

    assert list(inspect.signature(LambdaSimpleBackend.invoke).parameters) == [
        "self", "function_name", "qualifier", "body", "headers", "response_headers"
    ]
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    for cls, method in (
        (StateTaskServiceUnsupported, "_eval_service_task"),
        (StateTaskServiceUnsupported, "_eval_integration_pattern"),
        (StateTaskServiceAwsSdk, "_eval_service_task"),  # aws-sdk:sagemaker:describe*Job
    ):
        params = list(inspect.signature(getattr(cls, method)).parameters)
        assert params == ["self", "env", "resource_runtime_part", "normalised_parameters", "state_credentials"]
    assert "sagemaker" in importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory"
    )._UNSUPPORTED_SERVICE_NAMES
