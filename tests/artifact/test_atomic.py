"""An artifact folder holds one export, whole: publishing killed at every step, stale files, the lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tdeploy.artifact.atomic import PUBLISH_STEPS, atomic_write_text, staged_dir
from tdeploy.artifact.folder import open_artifact
from tdeploy.errors import TdeployError
from tdeploy.export import export


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    """Two exports of the same variant with different graphs (one block, two blocks)."""
    root = tmp_path_factory.mktemp("exports")
    export("vit-ti16", root / "old", depth=1)
    export("vit-ti16", root / "new", depth=2)
    old, new = open_artifact(root / "old"), open_artifact(root / "new")
    assert old.sidecar.main.sha256 != new.sidecar.main.sha256
    return root / "old", root / "new"


def which_export(folder, old, new) -> str:
    """'old', 'new' or 'none' (not an artifact); fails on anything else, e.g. a sidecar of one export
    beside a graph of the other, which open_artifact must refuse."""
    try:
        art = open_artifact(folder)
    except TdeployError as exc:
        assert "no model.json" in str(exc), exc
        return "none"
    sha = art.sidecar.main.sha256
    return {open_artifact(old).sidecar.main.sha256: "old", open_artifact(new).sidecar.main.sha256: "new"}[sha]


KILLED_PUBLISH = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    from tdeploy.artifact.atomic import publish

    new, dest, stage, at = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    shutil.copytree(new, stage)

    def kill(step):
        if step == at:
            os.kill(os.getpid(), signal.SIGKILL)

    publish(stage, dest, on_step=kill)
""")


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_kill_at_any_step_leaves_one_export_or_none(two_exports, tmp_path, step):
    """SIGKILL after each step of publishing the new export over the old one (with an engine of the old
    graph beside it and a user's file): the folder is the old export, no artifact, or the new export,
    never a mix; the next export to it cleans up and the user's file survives."""
    old, new = two_exports
    dest = tmp_path / "artifact"
    shutil.copytree(old, dest)
    (dest / "model.engine").write_bytes(b"engine of the old graph")
    (dest / "model.engine.json").write_text("{}")
    (dest / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, str(new), str(dest), str(tmp_path / "stage"), step],
                          capture_output=True, text=True)
    assert done.returncode == -9, done.stderr
    state = which_export(dest, old, new)
    assert state == {"sidecar removed": "none", "stale files removed": "none", "files moved": "none",
                     "sidecar moved": "new"}[step]
    if state == "new" or step != "sidecar removed":
        assert not (dest / "model.engine").exists(), "an engine of the old graph stayed beside the new one"

    with staged_dir(dest) as stage:  # the next export
        shutil.copytree(new, stage, dirs_exist_ok=True)
    assert which_export(dest, old, new) == "new"
    assert sorted(p.name for p in dest.iterdir()) == ["model.json", "model.onnx", "notes.txt"]
    assert not list(tmp_path.glob(".artifact.staging-*"))


def test_reexport_removes_what_the_new_set_does_not_hold(two_exports, tmp_path):
    """A folder that held an encoder/decoder export and engines, re-exported as a one-graph model."""
    old, new = two_exports
    dest = tmp_path / "art"
    dest.mkdir()
    for name in ("encoder.onnx", "decoder.onnx", "encoder.engine", "encoder.engine.json", "model.rtx-cache",
                 "model.kernels.onnx", "report.md"):
        (dest / name).write_text("x")
    with staged_dir(dest) as stage:
        shutil.copytree(new, stage, dirs_exist_ok=True)
    assert sorted(p.name for p in dest.iterdir()) == ["model.json", "model.onnx", "report.md"]


def test_a_failed_export_leaves_the_old_one(two_exports, tmp_path):
    old, new = two_exports
    dest = tmp_path / "art"
    shutil.copytree(old, dest)
    with pytest.raises(RuntimeError, match="mid-export"), staged_dir(dest) as stage:
        shutil.copytree(new, stage, dirs_exist_ok=True)
        raise RuntimeError("mid-export")
    assert which_export(dest, old, new) == "old"
    assert not list(tmp_path.glob(".art.staging-*"))


def test_a_sidecar_beside_another_exports_graph_is_refused(two_exports, tmp_path):
    old, new = two_exports
    dest = tmp_path / "mixed"
    shutil.copytree(old, dest)
    shutil.copy(new / "model.onnx", dest / "model.onnx")
    with pytest.raises(TdeployError, match="is not the graph model.json describes .* re-export"):
        open_artifact(dest)


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tdeploy.artifact.atomic import staged_dir

    with staged_dir(Path(sys.argv[1])) as stage:
        print(stage, flush=True)
        time.sleep(60)
""")


def test_a_running_export_keeps_its_staging_folder(tmp_path):
    """A second export to the same folder is refused while the first stages, and does not delete its
    staging folder; staging folders of killed exports are removed by the next one."""
    dest = tmp_path / "art"
    other = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(dest)], stdout=subprocess.PIPE, text=True)
    try:
        stage = other.stdout.readline().strip()
        assert stage and (tmp_path / stage).is_dir()
        with pytest.raises(TdeployError, match="another export is writing .* right now"), staged_dir(dest):
            pass
        assert (tmp_path / stage).is_dir()
    finally:
        other.kill()
        other.wait()
    assert (tmp_path / stage).is_dir()  # killed mid-staging: left behind ...
    with staged_dir(dest) as mine:
        (mine / "model.onnx").write_text("x")
    assert not (tmp_path / stage).exists()  # ... and removed by the next export


def test_atomic_write_replaces_whole(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_atomic_write_gives_the_mode_open_would(tmp_path, umask):
    # An engine a Triton server (another user) must read: mkstemp's 0600 would lock it out.
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "model.engine.json", "{}")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(previous)
    mode = (tmp_path / "model.engine.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~umask
