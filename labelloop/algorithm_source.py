"""Packaging an algorithm as a SageMaker script-mode source dir (`sourcedir.tar.gz`).

The source dir of a task type is the files of `algorithms/<task>/` plus the files of
`algorithms/common/`, flattened into one top-level folder, so the scripts import the shared
modules by plain name (`import manifest_channels`). SageMaker runs `TRAIN_PROGRAM` in it for
training and loads `INFERENCE_PROGRAM` from it for batch transform; the local runtime extracts
the same tarball and does the same.

The tarball is deterministic: sorted names, fixed mtime, owner and modes, and a gzip header
without a timestamp, so the same sources always give the same bytes (and the same S3 ETag).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from labelloop import tasks
from labelloop.storage import atomic_file

TRAIN_PROGRAM = "train.py"
INFERENCE_PROGRAM = "inference.py"
ARCHIVE_NAME = "sourcedir.tar.gz"

COMMON_FOLDER = "common"
FIXED_MTIME = 946684800  # 2000-01-01T00:00:00Z

_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def algorithms_dir() -> Path:
    """The `algorithms/` folder: $LABELLOOP_ALGORITHMS_DIR, else the one next to this package."""
    configured = os.environ.get("LABELLOOP_ALGORITHMS_DIR")
    path = Path(configured) if configured else Path(__file__).resolve().parent.parent / "algorithms"
    if not (path / COMMON_FOLDER).is_dir():
        raise FileNotFoundError(
            f"algorithm sources not found at {path} (set LABELLOOP_ALGORITHMS_DIR to the repository's algorithms/ folder)"
        )
    return path


def _files(folder: Path) -> dict[str, Path]:
    """Relative POSIX name -> file, for the files under `folder` (caches and dotfiles skipped)."""
    out: dict[str, Path] = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            out[rel.as_posix()] = path
    return out


def source_files(task_type: str, root: str | Path | None = None) -> dict[str, Path]:
    """Archive name -> file for the flattened source dir of `task_type`."""
    task_folder = tasks.get(task_type).algorithm_folder  # ValueError names the known task types
    base = Path(root) if root is not None else algorithms_dir()
    task_files = _files(base / task_folder)
    common_files = _files(base / COMMON_FOLDER)
    clash = sorted(set(task_files) & set(common_files))
    if clash:
        raise ValueError(f"{task_folder}/ and {COMMON_FOLDER}/ both have {', '.join(clash)}")
    files = {**common_files, **task_files}
    for program in (TRAIN_PROGRAM, INFERENCE_PROGRAM):
        if program not in files:
            raise FileNotFoundError(f"{base / task_folder} has no {program}")
    return files


def package_source(task_type: str, dest_dir: str | Path, *, root: str | Path | None = None) -> Path:
    """Write `dest_dir/sourcedir.tar.gz` for `task_type` and return its path."""
    files = source_files(task_type, root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name).parent.as_posix()) for name in files} - {"."})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            _normalise(info)
            tar.addfile(info)
        for name in sorted(files):
            data = files[name].read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            _normalise(info)
            tar.addfile(info, io.BytesIO(data))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / ARCHIVE_NAME
    with atomic_file(target) as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(buffer.getvalue())
    return target


def _normalise(info: tarfile.TarInfo) -> None:
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
