"""Every `$.…` path the ASL reads or writes resolves against the typed contracts.

A key renamed in a step (or in the ASL) fails here, not in an execution halfway through a paid
labeling job.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import botocore.session
import pytest
from pydantic import BaseModel

from labelloop import contracts

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "active_learning.asl.json"
# Task results a ResultSelector reads: the Describe* response of each .sync integration.
SYNC_RESULTS = {
    "arn:aws:states:::sagemaker:createTrainingJob.sync": "DescribeTrainingJobResponse",
    "arn:aws:states:::sagemaker:createLabelingJob.sync": "DescribeLabelingJobResponse",
    "arn:aws:states:::sagemaker:createTransformJob.sync": "DescribeTransformJobResponse",
    # the refusal path's look-ups of a job a step created
    "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob": "DescribeTrainingJobResponse",
    "arn:aws:states:::aws-sdk:sagemaker:describeLabelingJob": "DescribeLabelingJobResponse",
    "arn:aws:states:::aws-sdk:sagemaker:describeTransformJob": "DescribeTransformJobResponse",
}
# The model a ResultPath's value is: what a ResultSelector must produce.
RESULT_MODELS = {
    "$.training": contracts.TrainingResult,
    "$.labeling": contracts.LabelingResult,
    "$.awaiting.Described": contracts.DescribedJob,
}


def _states(states: dict) -> typing.Iterator[tuple[str, dict]]:
    for name, state in states.items():
        yield name, state
        for nested in ("Iterator", "ItemProcessor"):
            if nested in state:
                yield from _states(state[nested]["States"])


def _paths(value, found: list[str]) -> list[str]:
    """Every JSONPath in a Parameters / ResultSelector template (values of keys ending in .$)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith(".$") and isinstance(item, str) and item.startswith("$") and not item.startswith("$$"):
                found.append(item)
            else:
                _paths(item, found)
    elif isinstance(value, list):
        for item in value:
            _paths(item, found)
    return found


def _unwrap(annotation):
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def resolve(model: type[BaseModel], path: str) -> None:
    """Walk `$.a.b` through the model's fields by alias; raise KeyError naming the first unknown key."""
    current = model
    for key in [k for k in path.removeprefix("$").split(".") if k]:
        key = key.split("[")[0]
        current = _unwrap(current)
        if current is typing.Any or typing.get_origin(current) is dict:
            return  # a free-form object: any key is its own
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            raise KeyError(f"{path}: {key!r} reads into a {current!r}, which has no keys")
        by_alias = {(f.alias or name): f for name, f in current.model_fields.items()}
        if key not in by_alias:
            raise KeyError(f"{path}: {current.__name__} has no key {key!r} (keys: {sorted(by_alias)})")
        current = by_alias[key].annotation


def resolve_shape(shape, path: str) -> None:
    for key in [k for k in path.removeprefix("$").split(".") if k]:
        if shape.type_name != "structure" or key not in shape.members:
            raise KeyError(f"{path}: {shape.name} has no member {key!r}")
        shape = shape.members[key]


def asl_paths() -> list[tuple[str, str, str]]:
    """(state, where, path) for every path the ASL's states read or write."""
    definition = json.loads(ASL.read_text())
    out = []
    for name, state in _states(definition["States"]):
        for where in ("InputPath", "OutputPath", "ResultPath", "CausePath", "ErrorPath", "ItemsPath"):
            if isinstance(state.get(where), str) and state[where].startswith("$") and not state[where].startswith("$$"):
                out.append((name, where, state[where]))
        for path in _paths(state.get("Parameters"), []):
            out.append((name, "Parameters", path))
        for choice in state.get("Choices", []):
            for rule in [choice, *choice.get("And", []), *choice.get("Or", [])]:
                if "Variable" in rule:
                    out.append((name, "Choices", rule["Variable"]))
        for catch in state.get("Catch", []):
            if "ResultPath" in catch:
                out.append((name, "Catch.ResultPath", catch["ResultPath"]))
    return out


@pytest.mark.parametrize("state,where,path", asl_paths(), ids=lambda v: str(v))
def test_every_asl_path_resolves_against_the_contracts(state, where, path):
    if path.startswith("$.ModelArtifacts") or path.startswith("$.LabelingJobOutput"):
        pytest.fail(f"{state}.{where}: {path} reads a job result outside a ResultSelector")
    resolve(contracts.Execution, path)


def test_result_selectors_read_real_describe_fields_and_fill_the_contracts():
    sagemaker = botocore.session.get_session().get_service_model("sagemaker")
    definition = json.loads(ASL.read_text())
    checked = 0
    for name, state in _states(definition["States"]):
        selector = state.get("ResultSelector")
        if not selector:
            continue
        shape = sagemaker.shape_for(SYNC_RESULTS[state["Resource"]])
        for path in _paths(selector, []):
            resolve_shape(shape, path)
        model = RESULT_MODELS[state["ResultPath"]]
        for key in selector:
            resolve(model, "$." + key.removesuffix(".$"))
        checked += 1
    assert checked >= 2


def test_a_renamed_key_is_caught():
    with pytest.raises(KeyError, match="LedgerURI"):
        resolve(contracts.Execution, "$.state.LedgerURI")
    with pytest.raises(KeyError, match="nothing"):
        resolve_shape(botocore.session.get_session().get_service_model("sagemaker")
                      .shape_for("DescribeTrainingJobResponse"), "$.ModelArtifacts.nothing")


def test_the_settings_contract_is_job_settings_own_fields():
    from labelloop.config import JobSettings

    aliases = {f.alias for f in contracts.Settings.model_fields.values()}
    assert aliases == set(JobSettings.FIELDS)
