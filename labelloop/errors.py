"""Named errors of the loop's steps: the state machine's Retry/Catch match these class names."""

from __future__ import annotations


class InputManifestError(ValueError):
    """The input manifest cannot be used (empty, or too many invalid lines)."""


class LabelingOutputError(ValueError):
    """A labeling job's output manifest has a line the loop cannot use."""


class AlgorithmOutputError(ValueError):
    """A batch transform's output is missing items or is not what the algorithm contract says."""
