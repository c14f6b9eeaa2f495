"""Shared by the semantic-segmentation algorithm's tests: its flattened source dir, its modules, the colour map."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLORS = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}, "1": {"class-name": "square", "hex-color": "#ff0000"},
          "2": {"class-name": "disc", "hex-color": "#00ff00"}}


def source_dir(workdir: Path) -> Path:
    """The flattened source dir SageMaker extracts: algorithms/common + algorithms/semantic_segmentation."""
    src = workdir / "src"
    src.mkdir(parents=True)
    for folder in ("common", "semantic_segmentation"):
        for path in (ROOT / "algorithms" / folder).glob("*.py"):
            shutil.copyfile(path, src / path.name)
    return src


def load_module(src: Path, name: str):
    sys.path.insert(0, str(src))
    try:
        spec = importlib.util.spec_from_file_location(f"_segmenter_{name}", src / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(src))
        for shared in ("confidence", "image_input", "jsonlines_protocol", "object_loader", "unet", "mask_labels",
                       "regions", "region_head", "crop_net"):
            sys.modules.pop(shared, None)
