"""Engine cache key, engine sidecars, compatibility and TensorRT refusals: pure Python, CPU."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tdeploy.errors import TdeployError
from tdeploy.tensorrt.cache import cache_key, cached_engine, install_from_cache, store_in_cache
from tdeploy.tensorrt.network import format_parser_error, network_flag_names
from tdeploy.tensorrt.runner import TrtRunner, shape_problem
from tdeploy.tensorrt.runtimes import parse_version, version_problem
from tdeploy.tensorrt.sidecar import (
    check_engine_compatible,
    engine_sidecar_path,
    load_engine_sidecar,
    write_engine,
)

BASE = dict(
    onnx_sha256="a" * 64,
    plugins_hash="b" * 64,
    runtime="tensorrt",
    runtime_version="10.13.0.35",
    targets=["9.0"],
    profile={"pixel_values": ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 384, 384))},
    precision="fp16",
    builder_options={"workspace_gb": 4.0, "opt_level": 3},
    plugin_form="qdp",
    plugin_library_sha256=None,
)

CHANGED = {
    "onnx_sha256": "c" * 64,
    "plugins_hash": "d" * 64,
    "runtime": "tensorrt-rtx",
    "runtime_version": "10.13.1.3",
    "targets": ["8.9"],
    "profile": {"pixel_values": ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 384, 384))},
    "precision": "int8",
    "builder_options": {"workspace_gb": 4.0, "opt_level": 5},
    "plugin_form": "cpp",
    "plugin_library_sha256": "e" * 64,
}


def test_cache_key_is_stable():
    key = cache_key(**BASE)
    assert key == cache_key(**BASE)
    assert len(key) == 64 and int(key, 16) >= 0
    reordered = dict(BASE, builder_options={"opt_level": 3, "workspace_gb": 4.0},
                     targets=("9.0",),
                     profile={"pixel_values": ([1, 3, 224, 224], [8, 3, 224, 224], [32, 3, 384, 384])})
    assert cache_key(**reordered) == key
    # An option left unset is the default, whether or not the key is present.
    assert cache_key(**dict(BASE, builder_options={"workspace_gb": 4.0, "opt_level": 3, "x": None})) == key


def test_cache_key_profile_order_irrelevant():
    two = {"a": ((1,), (2,), (3,)), "b": ((1, 1), (2, 2), (3, 3))}
    flipped = {"b": ((1, 1), (2, 2), (3, 3)), "a": ((1,), (2,), (3,))}
    assert cache_key(**dict(BASE, profile=two)) == cache_key(**dict(BASE, profile=flipped))


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_cache_key_changes_with_every_field(field):
    assert cache_key(**dict(BASE, **{field: CHANGED[field]})) != cache_key(**BASE)


def test_cache_key_sees_a_new_builder_option():
    assert cache_key(**dict(BASE, builder_options={**BASE["builder_options"], "aux_streams": 2})) != cache_key(**BASE)


# --- compatibility ---------------------------------------------------------------------------------------
SIDECAR = {"runtime": {"name": "tensorrt", "version": "10.13.0.35"}, "targets": ["9.0"],
           "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}}
RTX_SIDECAR = {"runtime": {"name": "tensorrt-rtx", "version": "1.7.1.116"}, "targets": ["8.6", "8.9"],
               "targets_default": False, "gpu": None}


def test_same_machine_is_compatible():
    assert check_engine_compatible(SIDECAR, "tensorrt", "10.13.0.35", "NVIDIA H100 80GB HBM3", (9, 0)) is None


def test_same_capability_other_name_loads():
    assert check_engine_compatible(SIDECAR, "tensorrt", "10.13.0.35", "NVIDIA H100 PCIe", (9, 0)) is None


@pytest.mark.parametrize("trt_version, gpu, cc, words", [
    ("10.14.1.48", "NVIDIA H100 80GB HBM3", (9, 0), "engine built with TensorRT 10.13.0.35, this machine has TensorRT 10.14.1.48"),
    ("11.0.0.10", "NVIDIA H100 80GB HBM3", (9, 0), "this machine has TensorRT 11.0.0.10"),
    ("10.13.0.35", "NVIDIA A100-SXM4-80GB", (8, 0), "engine built on NVIDIA H100 80GB HBM3 for sm 9.0; this GPU, NVIDIA A100-SXM4-80GB, is sm 8.0"),
    ("10.9.0.34", "NVIDIA GeForce RTX 4090", (8, 9), "this machine has TensorRT 10.9.0.34"),
])
def test_other_gpu_or_tensorrt_is_refused_in_one_line(trt_version, gpu, cc, words):
    why = check_engine_compatible(SIDECAR, "tensorrt", trt_version, gpu, cc)
    assert why is not None and "\n" not in why
    assert words in why
    assert "rebuild with deploy build-engine" in why


def test_an_engine_of_the_other_runtime_is_refused():
    why = check_engine_compatible(RTX_SIDECAR, "tensorrt", "10.13.0.35", "NVIDIA RTX 4090", (8, 9))
    assert "engine built with TensorRT-RTX 1.7.1.116, which this runner (TensorRT 10.13.0.35) cannot load" in why
    why = check_engine_compatible(SIDECAR, "tensorrt-rtx", "1.7.1.116", "NVIDIA RTX 4090", (8, 9))
    assert "engine built with TensorRT 10.13.0.35" in why and "--runtime tensorrt-rtx" in why


def test_rtx_engine_runs_on_its_targets_only():
    assert check_engine_compatible(RTX_SIDECAR, "tensorrt-rtx", "1.7.1.116", "NVIDIA RTX 4090", (8, 9)) is None
    assert check_engine_compatible(RTX_SIDECAR, "tensorrt-rtx", "1.7.1.116", "NVIDIA RTX 3090", (8, 6)) is None
    why = check_engine_compatible(RTX_SIDECAR, "tensorrt-rtx", "1.7.1.116", "NVIDIA RTX 5090", (12, 0))
    assert "built for sm 8.6, 8.9; this GPU, NVIDIA RTX 5090, is sm 12.0" in why
    assert why.endswith("rebuild with deploy build-engine --compute-capability 12.0")
    default = {**RTX_SIDECAR, "targets": [], "targets_default": True}
    for cc in ((8, 0), (8, 6), (8, 9), (12, 0), (12, 1)):
        assert check_engine_compatible(default, "tensorrt-rtx", "1.7.1.116", "GPU", cc) is None, cc
    for cc in ((7, 5), (9, 0)):
        assert "TensorRT-RTX's default targets" in check_engine_compatible(default, "tensorrt-rtx", "1.7.1.116", "GPU", cc)


def test_sidecar_without_fields_is_refused():
    assert check_engine_compatible({"runtime": {}, "targets": []}, "tensorrt", "10.13.0.35", "X", (9, 0)) is not None


def test_missing_or_broken_engine_sidecar(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(TdeployError, match="no model.engine.json beside .*rebuild with deploy build-engine"):
        load_engine_sidecar(engine)
    engine_sidecar_path(engine).write_text("{not json")
    with pytest.raises(TdeployError, match="is not an engine sidecar"):
        load_engine_sidecar(engine)
    engine_sidecar_path(engine).write_text(json.dumps({"gpu": {}}))
    with pytest.raises(TdeployError, match="missing runtime, targets"):
        load_engine_sidecar(engine)
    # A schema-1 sidecar (datacenter TensorRT only) still reads.
    engine_sidecar_path(engine).write_text(json.dumps({"tensorrt_version": "10.9.0.34",
                                                       "gpu": {"name": "G", "compute_capability": [8, 9]}}))
    assert load_engine_sidecar(engine)["runtime"] == {"name": "tensorrt", "version": "10.9.0.34"}
    assert load_engine_sidecar(engine)["targets"] == ["8.9"]


def test_runner_refuses_an_engine_of_a_runtime_that_is_not_here(tmp_path):
    """The runner reads the sidecar first: an engine of a runtime this machine lacks is one line."""
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    engine = tmp_path / "model.engine"
    write_engine(engine, b"engine", SIDECAR)
    with pytest.raises(TdeployError, match=r"built with TensorRT 10\.13\.0\.35, which cannot run here: .*not installed"):
        TrtRunner(engine).activate()
    with pytest.raises(TdeployError, match="engine not found"):
        TrtRunner(tmp_path / "missing.engine").activate()


def test_runner_refuses_a_stale_engine(tmp_path):
    """An engine whose sidecar records another ONNX sha256 than the artifact's graph is refused before
    any TensorRT or GPU is looked for; the one built from this graph passes that check."""
    engine = tmp_path / "model.engine"
    write_engine(engine, b"engine", {**SIDECAR, "onnx": {"file": "model.onnx", "sha256": "1" * 64}})
    with pytest.raises(TdeployError, match=r"model.engine was built from another model.onnx .* stale; rebuild"):
        TrtRunner(engine, onnx_sha256="2" * 64).activate()
    with pytest.raises(TdeployError) as caught:
        TrtRunner(engine, onnx_sha256="1" * 64).activate()
    assert "stale" not in str(caught.value)


# --- the cache folder ----------------------------------------------------------------------------------
def test_write_store_and_install(tmp_path):
    engine = tmp_path / "a" / "model.engine"
    meta = {**SIDECAR, "cache_key": "k" * 64}
    write_engine(engine, b"\x00engine-bytes", meta)
    assert engine.read_bytes() == b"\x00engine-bytes"
    assert load_engine_sidecar(engine)["cache_key"] == "k" * 64
    cache = tmp_path / "cache"
    assert cached_engine(cache, "k" * 64) is None
    stored = store_in_cache(cache, "k" * 64, engine, meta)
    assert cached_engine(cache, "k" * 64) == stored
    dest = tmp_path / "b" / "model.engine"
    install_from_cache(stored, dest, {**meta, "from_cache": str(stored)})
    assert dest.read_bytes() == b"\x00engine-bytes"
    assert load_engine_sidecar(dest)["from_cache"] == str(stored)
    # Rewriting the destination later must not touch the cached copy (atomic replace, new inode).
    write_engine(dest, b"rebuilt", meta)
    assert stored.read_bytes() == b"\x00engine-bytes"


# --- versions and small pure helpers -------------------------------------------------------------------
@pytest.mark.parametrize("text, parsed", [
    ("10.9.0.34", (10, 9, 0, 34)), ("11.0.0rc1", (11, 0, 0)), ("8.6.1", (8, 6, 1)), ("", ()), ("abc", ()),
])
def test_parse_version(text, parsed):
    assert parse_version(text) == parsed


@pytest.mark.parametrize("version, ok", [
    ("10.9.0.34", True), ("10.13.0.35", True), ("11.0.0", True), ("11.4.1.2", True), ("10.3.0.30", True),
    ("10.0.1", True), ("8.6.1.6", False), ("9.2.0", False), ("garbage", False),
])
def test_tensorrt_version_check(version, ok):
    """10.0+ builds (the QDP plugins need 10.9: that is the plugin form's check); older is refused."""
    why = version_problem(version)
    assert (why is None) == ok
    if not ok:
        assert "\n" not in why and "pip install tensorrt" in why
        if version[0].isdigit():
            assert "too old: tdeploy needs 10.0 or newer" in why


def _runtime(name: str, version: str):
    from tdeploy.tensorrt.runtimes import Runtime

    return Runtime(name=name, module=None, version=version)


def test_network_flags_per_version():
    members = {"STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"}
    assert network_flag_names(_runtime("tensorrt", "10.9.0.34"), members) == ["STRONGLY_TYPED",
                                                                              "PREFER_AOT_PYTHON_PLUGINS"]
    # 11.x and TensorRT-RTX: always strongly typed (the flag is ignored): pass none.
    assert network_flag_names(_runtime("tensorrt", "11.0.0.10"), members) == ["PREFER_AOT_PYTHON_PLUGINS"]
    assert network_flag_names(_runtime("tensorrt", "10.13.0"), {"STRONGLY_TYPED"}) == ["STRONGLY_TYPED"]
    assert network_flag_names(_runtime("tensorrt-rtx", "1.7.1.116"), {"STRONGLY_TYPED"}) == []


def test_parser_error_line():
    line = format_parser_error("model.onnx", "/blocks.0/attn/Softmax", "Softmax", "Unsupported\n  axis")
    assert line == "model.onnx: node /blocks.0/attn/Softmax (Softmax): Unsupported axis"
    plugin = format_parser_error("model.onnx", "/layers.0/attn/WindowAttention", "WindowAttention", "no creator")
    assert "tdeploy plugin" in plugin and "--no-plugins" in plugin


def test_shape_problem():
    assert shape_problem("x", (8, 3, 224, 224), (1, 3, 16, 16), (32, 3, 448, 448)) is None
    why = shape_problem("x", (64, 3, 224, 224), (1, 3, 16, 16), (32, 3, 448, 448))
    assert "outside the engine's profile 1x3x16x16 .. 32x3x448x448" in why and "--shapes x:" in why
    assert shape_problem("x", (1, 3, 224), (1, 3, 16, 16), (32, 3, 448, 448)) is not None


def test_kernel_hash_covers_what_decides_the_kernels(tmp_path, monkeypatch):
    """Shared plugin sources (triton_aot.py rewrites the PTX entry), the Triton version, the kernel
    graph writer (cpp) and the driver's PTX ISA (qdp) each change the hash in the engine cache key."""
    import importlib.metadata
    import shutil

    from tdeploy.plugins import registry
    from tdeploy.tensorrt import build

    copy = tmp_path / "plugins"
    shutil.copytree(registry.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = registry.plugins_hash(copy)
    assert before == registry.plugins_hash(copy)
    (copy / "triton_aot.py").write_text((copy / "triton_aot.py").read_text() + "\n# changed\n")
    assert registry.plugins_hash(copy) != before

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "triton" else real_version(name))
    with_other_triton = registry.plugins_hash()
    monkeypatch.setattr(importlib.metadata, "version", real_version)
    assert registry.plugins_hash() != with_other_triton

    assert len({build.kernels_hash("none"), build.kernels_hash("cpp")}) == 2
    import tdeploy.plugins.qdp as qdp

    monkeypatch.setattr(qdp, "driver_ptx_version", lambda: 85)
    at_85 = build.kernels_hash("qdp")
    monkeypatch.setattr(qdp, "driver_ptx_version", lambda: 87)
    assert build.kernels_hash("qdp") != at_85
