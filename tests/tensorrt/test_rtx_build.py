"""Every family through a real TensorRT: ``deploy build-engine --runtime tensorrt-rtx`` on this CPU machine.

TensorRT for RTX parses and builds without a GPU (engines for RTX-class GPUs; running them needs one).
Tiny configurations (``--set``) keep each build to seconds. Asserted: the build succeeds, the engine
sidecar's layer counts equal those of the network TensorRT-RTX makes of the graph, the attention nodes
went to their ONNX functions (no plugin form is available to TensorRT-RTX without the C++ library) and
the parser said nothing about duplicate node names.
"""

from __future__ import annotations

import importlib.util
import json

import onnx
import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                                reason="tensorrt-rtx-cu12 is not installed (the dev extra installs it)")

# family -> (variant, --set overrides): the smallest graphs that still hold every kind of block.
TINY = {
    "vit": ("vit-ti16", ["depth=1"]),
    "swin": ("swin-t", ["depths=(2,1,1,1)", "embed_dim=32", "num_heads=(1,2,4,8)"]),  # W-MSA + SW-MSA
    "swinir": ("swinir-lightweight-x2", ["depths=(2,)", "num_heads=(2,)", "embed_dim=16"]),
    "nat": ("nat-mini", ["depths=(1,1,1,1)", "embed_dim=32", "num_heads=(1,2,4,8)"]),
    "dinat": ("dinat-mini", ["depths=(1,1,1,1)", "embed_dim=32", "num_heads=(1,2,4,8)",
                             "dilations=((8,),(4,),(2,),(1,))"]),
    "transformer": ("transformer-tiny", []),
}


def export_tiny(family: str, out, *extra: str) -> None:
    """``deploy export`` of ``family``'s tiny configuration into ``out`` (``extra``: more export options)."""
    variant, settings = TINY[family]
    args = ["export", variant, "--out", out, *extra]
    for item in settings:
        args += ["--set", item]
    code, _, err = run_cli(*args)
    assert code == 0, err


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("rtx")
    made = {}

    def get(family: str):
        if family not in made:
            made[family] = root / family
            export_tiny(family, made[family])
        return made[family]

    return get


def network_layers(onnx_bytes: bytes, name: str) -> int:
    """Layers of the network TensorRT-RTX's parser makes of ``onnx_bytes`` (counted here, independently)."""
    import tensorrt_rtx as trt

    from tdeploy.tensorrt.logger import make_logger

    logger = make_logger(trt, echo="none")
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_bytes, name)
    return network.num_layers


@pytest.mark.parametrize("family", sorted(TINY))
def test_family_builds_with_tensorrt_rtx_on_cpu(family, artifacts):
    art = artifacts(family)
    code, out, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.9",
                             "--plugins", "none")
    assert code == 0, err
    assert "already exists, the output tensors" not in err  # no duplicate node names reached the parser
    sidecar = json.loads((art / "model.json").read_text())
    for graph, info in sidecar["graphs"].items():
        engine = art / f"{graph}.engine"
        assert engine.stat().st_size > 0 and str(engine) in out
        meta = json.loads((art / f"{graph}.engine.json").read_text())
        assert meta["runtime"]["name"] == "tensorrt-rtx" and meta["runtime"]["version"].startswith("1.7.1")
        assert meta["targets"] == ["8.9"] and meta["targets_default"] is False and meta["gpu"] is None
        assert meta["onnx"]["sha256"] == info["sha256"]
        assert meta["duplicate_node_warnings"] == 0
        model = onnx.load(str(art / info["file"]))
        nodes = sum(n.domain == "tdeploy" for n in model.graph.node)
        assert (nodes > 0) == bool(info["custom_ops"])
        # --plugins none: every node ran as its function (the C++ library's form: tests/cpp).
        assert meta["plugin_form"] == "none" and meta["layers"]["plugins"] == {}
        inlined = onnx.inliner.inline_local_functions(model) if nodes else model
        assert meta["layers"]["total"] == network_layers(inlined.SerializeToString(), info["file"])
        if nodes:  # the function bodies were inlined with names apart: more layers than tdeploy nodes
            assert meta["layers"]["total"] > nodes
        assert "equivalent command: tensorrt_rtx --onnx=" in err and "--saveEngine=" in err


def test_without_the_cpp_library_auto_builds_with_the_functions_and_says_how(artifacts, monkeypatch):
    """TensorRT-RTX takes no QDP plugins; without the C++ library a build does not fail: one note."""
    monkeypatch.setenv("TDEPLOY_PLUGIN_LIBRARY", "/nowhere/libtdeploy_plugins.so")
    art = artifacts("swin")
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--out", art / "auto.engine")
    assert code == 0, err
    notes = [ln for ln in err.splitlines() if ln.startswith("plugins: none")]
    assert len(notes) == 1 and "takes no Python QDP plugins" in notes[0] and "make cpp" in notes[0]
    assert json.loads((art / "auto.engine.json").read_text())["plugin_form"] == "none"
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--plugins", "cpp", "--out",
                           art / "cpp.engine")
    assert code == 2 and err.count("\n") == 1 and "no libtdeploy_plugins.so at /nowhere" in err and "make cpp" in err
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--plugins", "qdp", "--out",
                           art / "qdp.engine")
    assert code == 2 and err.count("\n") == 1 and "takes no Python QDP plugins" in err


def test_default_targets_and_several_targets(artifacts):
    art = artifacts("vit")
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--out", art / "default.engine")
    assert code == 0, err
    meta = json.loads((art / "default.engine.json").read_text())
    assert meta["targets"] == [] and meta["targets_default"] is True
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "12.0,8.6",
                           "--compute-capability", "8.9", "--out", art / "three.engine")
    assert code == 0, err
    assert json.loads((art / "three.engine.json").read_text())["targets"] == ["8.6", "8.9", "12.0"]


def test_no_target_9_0_in_tensorrt_rtx(artifacts):
    art = artifacts("vit")
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "9.0",
                           "--out", art / "h100.engine")
    assert code == 2 and err.count("\n") == 1, err
    assert "TensorRT-RTX has no target 9.0: it builds for 7.5, 8.0, 8.6, 8.9, 12.0, 12.1" in err
    assert not (art / "h100.engine").exists()
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "eight")
    assert code == 2 and "write MAJOR.MINOR" in err


def test_cache_dir_reuses_an_rtx_engine(artifacts, tmp_path):
    art = artifacts("vit")
    args = ["build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.6", "--cache-dir", tmp_path,
            "--out", art / "cached.engine"]
    assert run_cli(*args)[0] == 0
    code, _, err = run_cli(*args)
    assert code == 0 and "reused" in err
    meta = json.loads((art / "cached.engine.json").read_text())
    assert meta["from_cache"] and meta["layers"]["total"] > 0
    # Another target is another key.
    code, _, err = run_cli(*args[:5], "8.9", *args[6:])
    assert code == 0 and "reused" not in err


def test_an_rtx_engine_needs_a_gpu_to_run(artifacts):
    art = artifacts("vit")
    assert run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.9")[0] == 0
    code, _, err = run_cli("validate", art / "model.engine", "--backends", "trt")
    assert code == 2 and err.count("\n") == 1, err
    assert "running a TensorRT-RTX 1.7.1" in err and "needs an NVIDIA GPU" in err


def test_an_engine_of_the_other_runtime_is_refused(artifacts):
    """A datacenter TensorRT engine given where only TensorRT-RTX is: one line naming both."""
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("datacenter TensorRT is installed here")
    art = artifacts("vit")
    assert run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.9")[0] == 0
    meta_path = art / "model.engine.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "runtime": {"name": "tensorrt", "version": "10.13.3.9"}}))
    code, _, err = run_cli("validate", art / "model.engine", "--backends", "trt")
    assert code == 2 and err.count("\n") == 1, err
    assert "model.engine was built with TensorRT 10.13.3.9, which cannot run here" in err


def test_inspect_an_engine(artifacts, tmp_path):
    """deploy inspect on an engine describes the engine (its sidecar; the engine itself needs a GPU here),
    and names an engine of another graph as stale."""
    art = artifacts("vit")
    engine = art / "inspect.engine"
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.6",
                           "--out", engine)
    assert code == 0, err
    code, out, err = run_cli("inspect", engine)
    assert code == 0, err
    assert "runtime: tensorrt-rtx 1.7.1" in out and "targets sm 8.6" in out and "STALE" not in out
    assert "input: pixel_values: float[?, 3, ?, ?]" in out and "output: logits" in out
    assert "not opened here: " in out and "needs an NVIDIA GPU" in out
    assert "LayerNormalization" not in out  # not the ONNX graph's description
    info = json.loads(run_cli("inspect", engine, "--json")[1])
    assert info["runtime"]["name"] == "tensorrt-rtx" and info["layers"]["total"] > 0

    other = tmp_path / "other"
    export_tiny("vit", other, "--static-size", "--size", "32x32")  # another graph of the same variant
    for name in ("inspect.engine", "inspect.engine.json"):
        (other / name).write_bytes((art / name).read_bytes())
    code, out, err = run_cli("inspect", other / "inspect.engine")
    assert code == 0, err
    assert "STALE" in out and "was built from another model.onnx" in out
