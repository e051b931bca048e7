"""Writing an artifact folder so that a reader sees the old export, the new one, or none: never a mix.

An export writes every file into a staging folder beside the destination, then publishes it in four
steps (:data:`PUBLISH_STEPS`), fsyncing each file and the folder between them:

1. ``model.json`` leaves the destination first: from here on the folder is not an artifact, and
   ``open_artifact`` says so in one line ("no model.json ... re-export") instead of pairing the old
   sidecar with new graphs;
2. the files an export owns (:data:`OWNED_PATTERNS`: graphs, their external data, engines, engine
   sidecars, runtime caches) that are not part of the new set are removed: an engine of the old graph
   must not sit beside the new one;
3. the new graphs are moved in (``os.replace``: atomic per file on one filesystem);
4. the new ``model.json`` is moved in last.

A kill at any point leaves either the old artifact whole (before step 1), a folder without a sidecar
(steps 1-3; the next export to it cleans it), or the new artifact whole. Files an export does not own
(reports, images, a user's notes) are never touched. One export at a time per destination: the
staging happens under an exclusive lock (``.<name>.lock`` beside the folder), so the staging folders
found while holding it are leftovers of killed exports and are removed; a second export to the same
folder is refused in one line while the first runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tdeploy.artifact.sidecar import SIDECAR_NAME as SIDECAR
from tdeploy.errors import TdeployError

PUBLISH_STEPS = ("sidecar removed", "stale files removed", "files moved", "sidecar moved")
# What an export owns in its folder: files it, or deploy build-engine, writes there.
OWNED_PATTERNS = ("*.onnx", "*.onnx.data", "*.onnx_data", "*.engine", "*.engine.json", "*.plan", "*.trt",
                  "*.rtx-cache", SIDECAR)


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owned(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in OWNED_PATTERNS)


def publish(stage: Path, dest: Path, *, on_step: Callable[[str], None] | None = None) -> None:
    """Move the files of ``stage`` into ``dest`` in the four steps of the module docstring.

    ``on_step(name)`` is called after each step (tests interrupt publishing there)."""
    step = on_step or (lambda name: None)
    files = sorted(p for p in stage.iterdir() if p.is_file())
    for path in files:
        fsync_path(path)
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (dest / SIDECAR).unlink()
    fsync_path(dest)
    step(PUBLISH_STEPS[0])
    new = {p.name for p in files}
    for path in dest.iterdir():
        if path.is_file() and owned(path.name) and path.name not in new:
            path.unlink()
    fsync_path(dest)
    step(PUBLISH_STEPS[1])
    for path in files:
        if path.name != SIDECAR:
            os.replace(path, dest / path.name)
    fsync_path(dest)
    step(PUBLISH_STEPS[2])
    if (stage / SIDECAR).is_file():
        os.replace(stage / SIDECAR, dest / SIDECAR)
    fsync_path(dest)
    step(PUBLISH_STEPS[3])


@contextlib.contextmanager
def destination_lock(dest: Path) -> Iterator[None]:
    """Hold ``.<dest name>.lock`` beside ``dest`` exclusively; one line when another export holds it."""
    lock_path = dest.parent / f".{dest.name}.lock"
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TdeployError(f"another export is writing {dest} right now: wait for it to finish, or export "
                               "to another --out") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def staged_dir(dest: Path, *, on_step: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield a staging folder for ``dest``; when the block succeeds, :func:`publish` it into ``dest``.

    When the block raises, ``dest`` is left as it was and the staging folder is removed."""
    dest = Path(dest).resolve()  # `--out .` has a name to stage and lock beside
    dest.parent.mkdir(parents=True, exist_ok=True)
    with destination_lock(dest):
        for leftover in dest.parent.glob(f".{dest.name}.staging-*"):  # of killed exports: we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
        try:
            yield stage
            publish(stage, dest, on_step=on_step)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def temp_file_beside(path: Path) -> tuple[int, str]:
    """``mkstemp`` in ``path``'s folder, with the mode a plain ``open(path, "w")`` would give.

    ``mkstemp`` creates 0600 files: an engine renamed into place from one could not be read by a
    server running as another user (Triton Inference Server's container, a shared model repository)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)  # the only portable way to read it
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def write_atomically(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write one file atomically and durably: ``fill(f)`` writes a temp file in the same folder, which is
    fsynced and renamed over ``path``, then the folder is fsynced. On any error ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    write_atomically(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def link_or_copy(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` atomically (same filesystem: no second copy of a large file), else
    copy it atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(dest)
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(src, tmp)
        os.replace(tmp, dest)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        atomic_copy(src, dest)


def atomic_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` atomically and durably, streaming (a weights file may be many GiB)."""
    with open(src, "rb") as source:
        write_atomically(dest, lambda f: shutil.copyfileobj(source, f, 1 << 24))
