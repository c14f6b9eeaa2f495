"""Shared by the semantic-segmentation algorithm's tests: its extracted source dir, the colour map."""

from __future__ import annotations

from pathlib import Path

from algorithm_helpers import extract_source

COLORS = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "square", "hex-color": "#ff0000"},
          "2": {"class-name": "disc", "hex-color": "#00ff00"}}


def source_dir(workdir: Path) -> Path:
    """The source dir SageMaker extracts for semantic segmentation (the packaged tarball, unpacked)."""
    return extract_source("semantic-segmentation", workdir)
