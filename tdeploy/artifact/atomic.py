"""Write a set of files so that either all of them appear or none does.

Files are written into a staging folder beside the destination, then moved into place with
``os.replace`` (atomic per file on one filesystem); the sidecar goes last, so a reader that finds a
sidecar finds the files it describes. An interrupted export leaves only the staging folder, which
the next export removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_dir(dest: Path) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``dest`` (last: ``*.json``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:
        yield stage
        dest.mkdir(parents=True, exist_ok=True)
        files = sorted(p for p in stage.iterdir() if p.is_file())
        for path in sorted(files, key=lambda p: p.suffix == ".json"):
            os.replace(path, dest / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write one file atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
