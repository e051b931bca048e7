"""The C++ plugin library ``libtdeploy_plugins.so`` (``make cpp``): built against TensorRT 10.14's headers,
loaded into a real TensorRT (TensorRT-RTX, on this CPU machine), and carrying every attention node of the
four families as a plugin layer of an engine TensorRT-RTX builds. On a GPU (marked ``gpu``), its kernels
against the PyTorch reference through ``plugin_harness`` (no TensorRT needed there).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tdeploy.plugins.cpp_kernels import KernelRecord, parse, serialize
from tests.helpers import run_cli
from tests.tensorrt.test_rtx_build import export_tiny

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "cpp"
LIBRARY = BUILD / "libtdeploy_plugins.so"
HAS_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="tensorrt-rtx-cu12 is not installed (the dev extra installs it)")


@pytest.fixture(scope="session")
def built() -> Path:
    """build/cpp after `make cpp` (run here when the library is not built yet)."""
    if not LIBRARY.is_file():
        if shutil.which("cmake") is None or (shutil.which("g++") or shutil.which("c++")) is None:
            pytest.skip("cmake or a C++ compiler is missing: the plugin library cannot be built here")
        result = subprocess.run(["make", "cpp"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return BUILD


def test_library_exports_the_entry_points_and_needs_no_tensorrt_or_cuda(built):
    exported = subprocess.run(["nm", "-D", "--defined-only", str(LIBRARY)], capture_output=True, text=True).stdout
    names = sorted(line.split()[-1] for line in exported.splitlines() if " T " in line)
    assert names == ["getCreators", "setLoggerFinder", "tdeploy_plugins_build_info"]
    needed = subprocess.run(["readelf", "-d", str(LIBRARY)], capture_output=True, text=True).stdout
    for lib in ("libnvinfer", "libtensorrt", "libcuda", "libcudart"):
        assert lib not in needed, needed  # it loads on a machine without a GPU (CUDA is dlopen'ed at launch)


def test_autoload_library_registers_only_into_datacenter_tensorrt(built):
    """libtdeploy_plugins_autoload.so (Triton Inference Server, LD_PRELOAD) loads anywhere; without libnvinfer
    in reach it says so in one line instead of crashing, and it never touches TensorRT-RTX's registry."""
    code = ("import ctypes, importlib.util\n"
            "if importlib.util.find_spec('tensorrt_rtx'): import tensorrt_rtx\n"
            f"ctypes.CDLL({str(BUILD / 'libtdeploy_plugins_autoload.so')!r})\nprint('loaded')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr
    if importlib.util.find_spec("tensorrt") is None:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("[tdeploy]")]
        assert len(lines) == 1 and "no TensorRT library (libnvinfer.so.10 or .11)" in lines[0]


def test_runner_compiles_against_the_headers(built):
    """tdeploy_run.cpp is compiled against the same headers (linked only where a TensorRT library is given)."""
    assert list(built.glob("CMakeFiles/tdeploy_run_object.dir/tdeploy_run.cpp.o"))
    assert "tdeploy_run: " in (ROOT / "build" / "cpp.log").read_text()


def test_build_info_and_which_runtimes_take_the_library(built):
    from tdeploy.tensorrt.plugins import library_build_info, library_problem
    from tdeploy.tensorrt.runtimes import Runtime

    flavour, version = library_build_info(LIBRARY)
    assert (flavour, version.split(".")[0]) == ("tensorrt", "10")
    runtime = lambda name, v: Runtime(name=name, module=None, version=v)  # noqa: E731
    assert library_problem("tensorrt", "10.14.1", runtime("tensorrt-rtx", "1.7.1.116")) is None
    assert library_problem("tensorrt", "10.14.1", runtime("tensorrt", "10.3.0.30")) is None  # JetPack 6
    why = library_problem("tensorrt", "10.14.1", runtime("tensorrt", "11.0.0.114"))
    assert "built against TensorRT 10.14.1 headers" in why and "make cpp TENSORRT_ROOT=" in why
    assert library_problem("tensorrt-rtx", "1.6.0", runtime("tensorrt", "10.13.3.9")) is not None
    assert library_problem("tensorrt", "11.4.0", runtime("tensorrt-rtx", "1.7.1.116")) is not None


def _records(tmp_path: Path) -> tuple[Path, Path]:
    """One fp32 record per op (their PTX is never loaded by the CPU checks)."""
    wa = KernelRecord({"op": "WindowAttention", "dtype": "fp32", "arch": 80, "target": "sm_80", "name": "k",
                       "threads": 128, "shared": 1024, "block_m": 16, "n": 16, "c": 32, "heads": 2, "has_mask": 1},
                      "// PTX of window attention")
    na = KernelRecord({"op": "NeighborhoodAttention2D", "dtype": "fp32", "arch": 80, "target": "sm_80", "name": "k",
                       "threads": 128, "shared": 1024, "block_r": 4, "block_q": 16, "heads": 2, "head_dim": 16,
                       "kernel_size": 3, "dilation": 2}, "// PTX of neighborhood attention")
    (tmp_path / "wa.kernels").write_text(serialize([wa]))
    (tmp_path / "na.kernels").write_text(serialize([na]))
    assert parse(serialize([wa, na]))[1].fields["dilation"] == 2
    return tmp_path / "wa.kernels", tmp_path / "na.kernels"


def test_build_time_methods_and_the_serialization_round_trip(built, tmp_path):
    """cpp/tests/plugin_checks.cpp: creators and fields, formats (fp32 / fp16 / int8 / layouts), configure
    against the kernel's configuration, workspace, clone, fields -> plugin -> fields, refusals."""
    wa, na = _records(tmp_path)
    result = subprocess.run([str(built / "plugin_checks"), str(wa), str(na)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = [ln for ln in result.stdout.splitlines() if ln.startswith("ok ")]
    assert len(checks) >= 25 and not [ln for ln in result.stdout.splitlines() if ln.startswith("FAIL")]
    # The refusals say why, naming what the node carries and how to get the right kernels.
    assert "no kernel for fp16 in this node (it carries: fp32 sm_80 k)" in result.stderr
    assert "the graph has N=49, 3C=96, a mask; the kernel N=16, C=32, a mask" in result.stderr
    assert "build with deploy build-engine --plugins cpp" in result.stderr


_LIST_CREATORS = """
import json, tensorrt_rtx as trt
from tdeploy.tensorrt.runtimes import ensure_rtx_plugin_loader
ensure_rtx_plugin_loader()
registry = trt.get_plugin_registry()
assert registry.load_library({library!r}) is not None
print(json.dumps({{c.name: [c.plugin_namespace, c.plugin_version, [[f.name, str(f.type)] for f in c.field_names]]
                  for c in registry.all_creators if c.plugin_namespace == "tdeploy"}}))
"""


@needs_rtx
def test_library_loads_into_tensorrt_rtx(built):
    proc = subprocess.run([sys.executable, "-c", _LIST_CREATORS.format(library=str(LIBRARY))], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    creators = json.loads(proc.stdout.strip().splitlines()[-1])
    assert creators["WindowAttention"] == ["tdeploy", "1", [["num_heads", "PluginFieldType.INT32"],
                                                           ["scale", "PluginFieldType.FLOAT32"],
                                                           ["kernels", "PluginFieldType.CHAR"]]]
    assert [f[0] for f in creators["NeighborhoodAttention2D"][2]] == ["num_heads", "kernel_size", "dilation",
                                                                      "scale", "kernels"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpp-plugins")
    made = {}

    def get(family: str, *extra: str):
        key = (family, extra)
        if key not in made:
            made[key] = root / f"{family}{len(made)}"
            export_tiny(family, made[key], *extra)
        return made[key]

    return get


def _tdeploy_nodes(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if node.domain == "tdeploy":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@needs_rtx
@pytest.mark.parametrize("family, extra", [("swin", ()), ("swinir", ()), ("nat", ()), ("dinat", ()),
                                           ("swin", ("--precision", "fp16"))])
def test_every_attention_node_is_a_cpp_plugin_layer(family, extra, built, tiny):
    """TensorRT-RTX builds each plugin-bearing family on CPU with every tdeploy node a C++ plugin layer:
    output shapes over dynamic batch and H/W, dtype, formats and workspace asked of the plugin, and its
    fields (kernels included) serialized into the engine."""
    art = tiny(family, *extra)
    code, out, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.6,8.9",
                             "--plugins", "cpp", "--plugin-library", LIBRARY)
    assert code == 0, err
    meta = json.loads((art / "model.engine.json").read_text())
    assert meta["plugin_form"] == "cpp" and meta["plugin_library"]["sha256"]
    assert meta["layers"]["plugins"] == _tdeploy_nodes(art / "model.onnx") != {}
    kernels = onnx.load(str(art / meta["kernels_onnx"]))
    records = [parse(onnx.helper.get_attribute_value(a)) for n in kernels.graph.node if n.domain == "tdeploy"
               for a in n.attribute if a.name == "kernels"]
    dtype = "fp16" if "fp16" in extra else "fp32"
    assert records and all({r.fields["arch"] for r in rs} == {86, 89} and {r.fields["dtype"] for r in rs} == {dtype}
                           for rs in records)
    assert f"--dynamicPlugins={LIBRARY}" in err and f"--onnx={art / meta['kernels_onnx']}" in err
    assert "[tdeploy]" not in err  # no refusal, no warning from the plugins


@needs_rtx
def test_a_kernel_graph_in_another_folder_reaches_its_weights(built, tmp_path, monkeypatch):
    """Past 2 GiB (lowered here) the weights live in model.onnx.data. The graph with kernels written beside
    an engine in another folder, and the one installed from --cache-dir into a third, must still reach
    them: TensorRT's parser (and onnx's loader) refuse a location outside the graph's folder ("../")."""
    import onnx.numpy_helper
    import tensorrt_rtx as trt

    import tdeploy.artifact.onnx_file as onnx_file

    monkeypatch.setattr(onnx_file, "EXTERNAL_DATA_BYTES", 1 << 14)
    art = tmp_path / "art"
    export_tiny("swin", art)
    assert (art / "model.onnx.data").is_file()
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(art / "model.onnx")).graph.initializer}
    for folder in ("built", "from-cache"):
        engine = tmp_path / folder / "model.engine"
        code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--compute-capability", "8.9",
                               "--plugins", "cpp", "--plugin-library", LIBRARY, "--out", engine,
                               "--cache-dir", tmp_path / "cache")
        assert code == 0, err
        assert ("reused" in err) == (folder == "from-cache")
        graph = engine.parent / json.loads((engine.parent / "model.engine.json").read_text())["kernels_onnx"]
        assert f"--onnx={graph}" in err
        loaded = onnx.load(str(graph))
        assert {t.name for t in loaded.graph.initializer} == set(weights)
        assert all(np.array_equal(onnx.numpy_helper.to_array(t), weights[t.name]) for t in loaded.graph.initializer)
        # What trtexec --onnx does with the file: TensorRT-RTX's parser, reading the weights beside it
        # (the library is in this process's registry since the build).
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(0)  # held: the parser writes into it
        parser = trt.OnnxParser(network, logger)
        assert parser.parse_from_file(str(graph)), [str(parser.get_error(i)) for i in range(parser.num_errors)]


@needs_rtx
def test_auto_takes_the_built_library_on_tensorrt_rtx(built, tiny, monkeypatch):
    monkeypatch.setenv("TDEPLOY_PLUGIN_LIBRARY", str(LIBRARY))
    art = tiny("nat")
    code, _, err = run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--out", art / "auto.engine")
    assert code == 0, err
    meta = json.loads((art / "auto.engine.json").read_text())
    assert meta["plugin_form"] == "cpp" and meta["layers"]["plugins"] == {"NeighborhoodAttention2D": 4}


@needs_rtx
def test_a_node_without_its_kernel_is_refused_with_the_reason(built, tiny, tmp_path, capfd):
    """A graph whose attention node lost its kernels: TensorRT-RTX's build fails and the plugin says why
    (on stderr: TensorRT-RTX's logger for plugin libraries does not reach the user's, cpp/plugins/logging.h)."""
    from tdeploy.tensorrt.logger import make_logger
    from tdeploy.tensorrt.network import layer_counts, parse_onnx
    from tdeploy.tensorrt.plugins import PluginChoice, register_plugins
    from tdeploy.tensorrt.runtimes import find_runtime

    art = tiny("swin")
    assert run_cli("build-engine", art, "--runtime", "tensorrt-rtx", "--plugins", "cpp",
                   "--plugin-library", LIBRARY)[0] == 0
    model = onnx.load(str(art / "model.kernels.onnx"))
    node = next(n for n in model.graph.node if n.domain == "tdeploy")
    kept = [a for a in node.attribute if a.name != "kernels"]
    del node.attribute[:]
    node.attribute.extend(kept)
    runtime = find_runtime("tensorrt-rtx")
    register_plugins(PluginChoice("cpp", LIBRARY), runtime)
    logger = make_logger(runtime.module, echo="none")
    parsed = parse_onnx(runtime, art / "model.onnx", logger, model_bytes=model.SerializeToString())
    assert layer_counts(runtime, parsed.network)["plugins"]["WindowAttention"] >= 1
    config = parsed.builder.create_builder_config()
    profile = parsed.builder.create_optimization_profile()
    profile.set_shape("pixel_values", (1, 3, 224, 224), (1, 3, 224, 224), (1, 3, 224, 224))
    config.add_optimization_profile(profile)
    assert parsed.builder.build_serialized_network(parsed.network, config) is None
    said = capfd.readouterr().err
    assert "[tdeploy] tdeploy::WindowAttention (node " in said and "the node carries no kernels" in said, said
    assert "no kernel for fp32 in this node (it carries: none)" in said


# --- CMake ------------------------------------------------------------------------------------------------
def _fake_headers(root: Path, version_text: str) -> Path:
    include = root / "include"
    include.mkdir(parents=True)
    (include / "NvInferRuntime.h").write_text("// placeholder: configure reads only NvInferVersion.h\n")
    (include / "NvInferVersion.h").write_text(version_text)
    return include


@pytest.mark.parametrize("text, found", [
    ("#define NV_TENSORRT_MAJOR 10 //!< TensorRT major version.\n#define NV_TENSORRT_MINOR 9 //!< minor\n"
     "#define NV_TENSORRT_PATCH 0 //!< patch\n", "tensorrt 10.9.0"),  # 10.9: trailing comments
    ("#define TRT_MAJOR_ENTERPRISE 10\n#define TRT_MINOR_ENTERPRISE 13\n#define TRT_PATCH_ENTERPRISE 3\n"
     "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< TensorRT major version.\n"
     "#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE //!< minor\n"
     "#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE //!< patch\n", "tensorrt 10.13.3"),  # 10.13+: indirection
    ("#define TRT_MAJOR_RTX 1\n#define TRT_MINOR_RTX 6\n#define TRT_PATCH_RTX 0\n"
     "#define NV_TENSORRT_MAJOR TRT_MAJOR_RTX\n#define NV_TENSORRT_MINOR TRT_MINOR_RTX\n", "tensorrt-rtx 1.6.0"),
])
def test_cmake_reads_the_version_of_real_header_layouts(text, found, tmp_path, built):
    include = _fake_headers(tmp_path / "trt", text)
    cuda = ROOT / "build/cpp/deps/nvidia/cuda_runtime/include"
    if not cuda.is_dir():
        pytest.skip("the CUDA headers of `make cpp` are not here")
    result = subprocess.run(["cmake", "-S", str(ROOT / "cpp"), "-B", str(tmp_path / "build"),
                             f"-DTENSORRT_INCLUDE={include}", f"-DCUDA_INCLUDE={cuda}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"TensorRT headers: {found} ({include}" in result.stdout, result.stdout


def test_cmake_without_headers_is_one_message_naming_tensorrt_root(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is missing")
    env = {k: v for k, v in os.environ.items() if k not in ("TENSORRT_ROOT", "TENSORRT_INCLUDE")}
    result = subprocess.run(["cmake", "-S", str(ROOT / "cpp"), "-B", str(tmp_path / "build"),
                             f"-DTENSORRT_INCLUDE={tmp_path / 'nowhere'}"], capture_output=True, text=True,
                            timeout=300, env=env)
    if result.returncode == 0:
        pytest.skip("TensorRT headers are installed on this system: nothing to refuse")
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("CMake Error")]
    assert len(errors) == 1, result.stderr
    text = " ".join(result.stderr.split())
    assert "needs TensorRT headers (NvInferRuntime.h)" in text and "point TENSORRT_ROOT at a TensorRT" in text


# --- on a GPU: the kernels against the PyTorch reference, without TensorRT ------------------------------
def _harness(built, op, ints, floats, records, inputs, tmp_path):
    (tmp_path / "kernels.txt").write_text(serialize(records))
    args = [str(built / "plugin_harness"), op, "--kernels", str(tmp_path / "kernels.txt"), "--output",
            str(tmp_path / "out.npy")]
    for k, v in ints.items():
        args += ["--int", f"{k}={v}"]
    for k, v in floats.items():
        args += ["--float", f"{k}={v!r}"]
    for i, x in enumerate(inputs):
        np.save(tmp_path / f"in{i}.npy", x)
        args += ["--input", str(tmp_path / f"in{i}.npy")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return np.load(tmp_path / "out.npy")


def _device_cc() -> int:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n, heads, head_dim, n_win", [(49, 3, 32, 4), (64, 6, 30, 0), (144, 4, 32, 2)])
def test_window_attention_kernels_match_the_reference(dtype, n, heads, head_dim, n_win, built, tmp_path):
    from tdeploy.plugins.window_attention import window_attention
    from tdeploy.plugins.window_attention.cpp import kernel_records

    if not (built / "plugin_harness").is_file():
        pytest.skip("plugin_harness was not built (no libcudart)")
    g = torch.Generator().manual_seed(n * heads)
    windows, c = 2 * max(n_win, 1), heads * head_dim
    qkv = torch.randn(windows, n, 3 * c, generator=g).to(getattr(torch, dtype))
    bias = torch.randn(heads, n, n, generator=g).to(qkv.dtype)
    mask = torch.where(torch.rand(n_win, n, n, generator=g) > 0.3, 0.0, -100.0).to(qkv.dtype) if n_win else None
    records = kernel_records({"num_heads": heads, "scale": head_dim**-0.5},
                             {"qkv": tuple(qkv.shape), "mask": tuple(mask.shape) if n_win else (1, 1, 1)},
                             [dtype], [_device_cc()])
    sentinel = np.zeros((1, 1, 1), qkv.numpy().dtype)
    got = _harness(built, "WindowAttention", {"num_heads": heads}, {"scale": head_dim**-0.5}, records,
                   [qkv.numpy(), bias.numpy(), mask.numpy() if n_win else sentinel], tmp_path)
    want = window_attention(qkv.float(), bias.float(), None if mask is None else mask.float(), num_heads=heads,
                            backend="reference")
    tol = 2e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(got.astype(np.float32), want.numpy(), atol=tol, rtol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape, heads, head_dim, k, d", [((2, 14, 14), 2, 32, 7, 1), ((1, 20, 23), 2, 32, 7, 3),
                                                          ((2, 5, 6), 4, 16, 3, 2), ((1, 56, 56), 2, 64, 7, 8)])
def test_neighborhood_attention_kernels_match_the_reference(dtype, shape, heads, head_dim, k, d, built, tmp_path):
    from tdeploy.plugins.neighborhood_attention import neighborhood_attention
    from tdeploy.plugins.neighborhood_attention.cpp import kernel_records

    if not (built / "plugin_harness").is_file():
        pytest.skip("plugin_harness was not built (no libcudart)")
    g = torch.Generator().manual_seed(heads * k * d)
    qkv = torch.randn(*shape, 3 * heads * head_dim, generator=g).to(getattr(torch, dtype))
    rpb = torch.randn(heads, 2 * k - 1, 2 * k - 1, generator=g).to(qkv.dtype)
    attrs = {"num_heads": heads, "kernel_size": k, "dilation": d, "scale": head_dim**-0.5}
    records = kernel_records(attrs, {"qkv": tuple(qkv.shape)}, [dtype], [_device_cc()])
    got = _harness(built, "NeighborhoodAttention2D", {"num_heads": heads, "kernel_size": k, "dilation": d},
                   {"scale": head_dim**-0.5}, records, [qkv.numpy(), rpb.numpy()], tmp_path)
    want = neighborhood_attention(qkv.float(), rpb.float(), num_heads=heads, kernel_size=k, dilation=d,
                                  backend="reference")
    tol = 2e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(got.astype(np.float32), want.numpy(), atol=tol, rtol=tol)
