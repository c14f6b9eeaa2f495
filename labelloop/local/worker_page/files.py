"""The only files the worker page serves: each item's image, pinned at job start, and its own assets.

An item's image is the file its manifest line names. It is resolved once when the job starts
(`pin`) and remembered by device and inode; at serve time (`read_pinned`) the name is resolved
again and must lead to the same place, and the file opened there (never through a symlink) must
be that same regular file. So a symlink re-pointed after the job started, or a file swapped
for another, serves nothing: the page shows only what the batch listed.

The page's HTML, CSS and JS (and the per-task-type widgets) ship as package data under
`static/`; they are read once into memory, and only those names can be asked for.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources

from labelloop.local.worker_page.errors import PageError

STATIC_PACKAGE = "labelloop.local.worker_page"
PAGE_FILE = "page.html"


@dataclass(frozen=True)
class Pinned:
    """An item's image as it was when the job started."""

    path: str  # fully resolved, no symlink left in it
    device: int
    inode: int


def pin(ref: object) -> Pinned | str:
    """The image `ref` names, resolved now; or why it cannot be shown (a sentence)."""
    if not isinstance(ref, str):
        return f"image reference {ref!r} is not a file name"
    if ref.startswith("s3://"):
        return f"image is on S3 ({ref}); the local page shows local files only"
    try:
        real = os.path.realpath(ref, strict=True)
        info = os.stat(real, follow_symlinks=False)
    except (OSError, ValueError):
        return f"image {ref} does not exist"
    if not stat.S_ISREG(info.st_mode):
        return f"image {ref} is not a regular file"
    return Pinned(real, info.st_dev, info.st_ino)


def read_pinned(ref: str, pinned: Pinned) -> bytes:
    """The bytes of the pinned image, if `ref` still leads to that very file (else PageError 404)."""
    changed = PageError(404, f"image {ref} changed since the batch started; it is not served")
    try:
        if os.path.realpath(ref, strict=True) != pinned.path:
            raise changed
        # O_NOFOLLOW: the last step is not a symlink; O_NONBLOCK: a FIFO put there cannot hang us.
        fd = os.open(pinned.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        raise changed from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (pinned.device, pinned.inode):
            raise changed
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def static_files() -> dict[str, bytes]:
    """Every asset under static/ by its relative name ("page.js", "widgets/classification.js")."""
    found: dict[str, bytes] = {}

    def walk(folder, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.is_file() and not entry.name.startswith("."):
                found[prefix + entry.name] = entry.read_bytes()

    walk(resources.files(STATIC_PACKAGE).joinpath("static"), "")
    if PAGE_FILE not in found:
        raise RuntimeError(f"the worker page's {PAGE_FILE} is missing from the installed package")
    return found
