"""The definition as the stack deploys it (template.yaml's substitutions applied), through
statelint (Amazon States Language schema, transitions, reachability, ARN formats)."""

from __future__ import annotations

import json
import re

from statelint.config import Config
from statelint.linter import Linter
from template_model import DEFINITION, Resolver

from labelloop.local.engine import substitute


def _lint(text: str) -> list[str]:
    return [str(p) for p in Linter.validate(text, Config(None, False, False))]


def deployed_definition() -> str:
    return substitute(DEFINITION.read_text(), Resolver().substitutions())


def test_the_deployed_definition_is_valid_asl():
    text = deployed_definition()
    assert "${" not in text
    assert _lint(text) == []


def test_statelint_is_live():
    """The same check fails a definition with a dangling transition and a malformed Resource."""
    broken = json.loads(deployed_definition())
    states = broken["States"]
    choice = next(name for name, s in states.items() if s["Type"] == "Choice")
    states[choice]["Default"] = "NoSuchState"
    task = next(name for name, s in states.items() if s["Type"] == "Task")
    states[task]["Resource"] = "not-an-arn"
    problems = "\n".join(_lint(json.dumps(broken)))
    assert "NoSuchState" in problems and "not-an-arn" in problems


def test_task_resources_are_the_stack_functions_or_sagemaker_integrations():
    resolver = Resolver()
    functions = {
        resolver.get_att(f"{logical}", "Arn")
        for logical, r in resolver.resources().items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    for name, state in json.loads(deployed_definition())["States"].items():
        if state["Type"] == "Task":
            resource = state["Resource"]
            assert resource in functions or re.fullmatch(r"arn:aws:states:::sagemaker:create\w+(\.sync)?", resource) or re.fullmatch(
                r"arn:aws:states:::aws-sdk:sagemaker:describe(Training|Transform|Labeling)Job", resource
            ), (
                name
            )
