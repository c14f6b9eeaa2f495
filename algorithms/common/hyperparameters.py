"""Hyperparameters the way SageMaker script mode hands them over.

SageMaker's training toolkit puts the job's hyperparameters in the `SM_HPS` environment variable
(a JSON object) and also passes them as command-line arguments (`--epochs 10`). Values may
arrive as strings, and a string may itself be JSON-encoded (`"\\"label\\""`, `"10"`), because the
CreateTrainingJob API only carries strings. `parse` merges both sources (the command line wins),
decodes each value to the declared type and checks it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

AUTO = "auto"
REQUIRED = object()


class HyperparameterError(ValueError):
    """A hyperparameter is missing or has a value of the wrong type or range."""


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: its name as SageMaker spells it (`learning-rate`), type and default.

    `kind` is one of int, float, str, bool. `allow_auto` lets the value be the string "auto"
    (returned as None: the script picks a value from the data). `minimum`/`maximum` bound
    numbers, `choices` bounds strings.
    """

    name: str
    kind: type
    default: Any = REQUIRED
    help: str = ""
    allow_auto: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: Sequence[str] | None = None

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")


def _decode(spec: Spec, raw: Any) -> Any:
    value = raw
    if isinstance(value, str):
        text = value.strip()
        if spec.allow_auto and text.lower() == AUTO:
            return None
        if spec.kind is str:
            # A JSON-encoded string ('"label"') is decoded; anything else is taken as is.
            if len(text) >= 2 and text[0] == text[-1] == '"':
                try:
                    decoded = json.loads(text)
                except json.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, str):
                    return _decode(spec, decoded)
            return value
        if spec.kind is bool:
            lowered = text.strip('"').lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise HyperparameterError(f"hyperparameter {spec.name}: expected true or false, got {raw!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise HyperparameterError(f"hyperparameter {spec.name}: expected {spec.kind.__name__}, got {raw!r}") from None
        if isinstance(value, str):  # a JSON-encoded string holding the number: '"10"'
            return _decode(spec, value)
    if value is None and spec.allow_auto:
        return None
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        raise HyperparameterError(f"hyperparameter {spec.name}: expected true or false, got {raw!r}")
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise HyperparameterError(f"hyperparameter {spec.name}: expected an integer, got {raw!r}")
        return int(value)
    if spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HyperparameterError(f"hyperparameter {spec.name}: expected a number, got {raw!r}")
        return float(value)
    if spec.kind is str:
        if isinstance(value, (dict, list)) or value is None:
            raise HyperparameterError(f"hyperparameter {spec.name}: expected a string, got {raw!r}")
        return str(value)
    raise TypeError(f"unsupported hyperparameter kind {spec.kind!r}")


def _check(spec: Spec, value: Any) -> Any:
    if value is None:
        return value
    if spec.minimum is not None and value < spec.minimum:
        raise HyperparameterError(f"hyperparameter {spec.name} must be at least {spec.minimum}, got {value}")
    if spec.maximum is not None and value > spec.maximum:
        raise HyperparameterError(f"hyperparameter {spec.name} must be at most {spec.maximum}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        raise HyperparameterError(f"hyperparameter {spec.name} must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def _from_argv(argv: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise HyperparameterError(f"unexpected command-line argument {token!r} (expected --name value)")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not (argv[i + 1].startswith("--") and len(argv[i + 1]) > 2):
            value = argv[i + 1]
            i += 2
        else:
            raise HyperparameterError(f"command-line argument --{key} has no value")
        out[key] = value
    return out


def _canonical(key: str) -> str:
    return key.strip().replace("_", "-")


def parse(
    specs: Sequence[Spec],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Hyperparameter values by attribute name (`learning_rate`), from SM_HPS and the command line."""
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else argv
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    raw: dict[str, Any] = {}
    text = environ.get("SM_HPS", "").strip()
    if text:
        try:
            hps = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HyperparameterError(f"SM_HPS is not JSON ({exc.msg})") from None
        if not isinstance(hps, dict):
            raise HyperparameterError("SM_HPS must be a JSON object")
        raw.update({_canonical(k): v for k, v in hps.items()})
    raw.update({_canonical(k): v for k, v in _from_argv(argv).items()})

    by_name = {spec.name: spec for spec in specs}
    for key in sorted(raw):
        if key not in by_name and not key.startswith("sagemaker-"):
            warn(f"ignoring unknown hyperparameter {key!r}")
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in raw:
            values[spec.attribute] = _check(spec, _decode(spec, raw[spec.name]))
        elif spec.default is REQUIRED:
            raise HyperparameterError(f"hyperparameter {spec.name} is required")
        else:
            values[spec.attribute] = spec.default
    return values


def describe(values: Mapping[str, Any]) -> str:
    """One line for the log: the values the script runs with."""
    return "hyperparameters: " + json.dumps({k.replace("_", "-"): v for k, v in values.items()}, sort_keys=True)
