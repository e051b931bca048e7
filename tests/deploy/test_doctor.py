"""`deploy doctor`: the pure assessment from hand-written facts, and the command on this machine."""

from __future__ import annotations

import dataclasses

import pytest

from tdeploy.deploy.doctor import BackendStatus, DoctorReport, Facts, assess, diagnose
from tests.helpers import run_cli

NAMES = ["torch CPU", "torch CUDA", "onnxruntime CPU", "onnxruntime CUDA", "TensorRT", "TensorRT-RTX build",
         "TensorRT-RTX run", "Triton GPU", "Triton interpreter", "PTX for AOT plugins", "C++ plugin library"]

GPU_BOX = Facts(
    python="3.11.7",
    versions={"torch": "2.13.0+cu128", "onnx": "1.19.0", "onnxruntime": "1.23.0", "onnxscript": "0.5.0",
              "triton": "3.5.1", "tensorrt": "10.13.0.35", "tensorrt_rtx": "1.7.1.116"},
    torch_cuda="12.8", gpu_name="NVIDIA H100 80GB HBM3", gpu_capability=(9, 0), cuda_driver="12.8",
    ort_providers=["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    triton_nvidia_backend=True, plugin_library="/opt/tdeploy/libtdeploy_plugins.so",
    plugin_library_headers=("tensorrt", "10.14.1"),
)
CPU_BOX = dataclasses.replace(
    GPU_BOX, versions={**GPU_BOX.versions, "torch": "2.13.0+cpu", "tensorrt": None}, torch_cuda=None,
    gpu_name=None, gpu_capability=None, cuda_driver=None,
)


def by_name(facts: Facts) -> dict[str, BackendStatus]:
    statuses = assess(facts)
    assert [s.name for s in statuses] == NAMES
    for s in statuses:
        assert s.available == (s.reason == ""), s
        assert "\n" not in s.reason
    return {s.name: s for s in statuses}


def test_gpu_machine_runs_everything():
    """An H100 runs everything but TensorRT-RTX engines (no SM90 target); an RTX 4090 runs those too."""
    s = by_name(GPU_BOX)
    assert all(v.available for k, v in s.items() if k != "TensorRT-RTX run")
    assert "is not a TensorRT-RTX target" in s["TensorRT-RTX run"].reason
    rtx_box = dataclasses.replace(GPU_BOX, gpu_name="NVIDIA GeForce RTX 4090", gpu_capability=(8, 9))
    assert all(v.available for v in by_name(rtx_box).values())
    turing = by_name(dataclasses.replace(GPU_BOX, gpu_name="NVIDIA GeForce RTX 2080 Ti", gpu_capability=(7, 5)))
    assert turing["TensorRT-RTX run"].available and "--compute-capability 7.5" in turing["TensorRT-RTX run"].detail


def test_cpu_machine_says_why():
    s = by_name(CPU_BOX)
    assert s["torch CPU"].available and s["onnxruntime CPU"].available and s["Triton interpreter"].available
    assert s["PTX for AOT plugins"].available  # PTX needs no GPU
    assert "no NVIDIA driver" in s["torch CUDA"].reason
    assert "has the CUDA provider but" in s["onnxruntime CUDA"].reason
    assert "TensorRT is not installed" in s["TensorRT"].reason and "pip install tensorrt" in s["TensorRT"].reason
    assert s["TensorRT-RTX build"].available and "no GPU needed" in s["TensorRT-RTX build"].detail
    assert "needs an RTX-class GPU" in s["TensorRT-RTX run"].reason
    assert "interpreter" in s["Triton GPU"].reason
    no_rtx = by_name(dataclasses.replace(CPU_BOX, versions={**CPU_BOX.versions, "tensorrt_rtx": None}))
    assert "pip install tensorrt-rtx-cu12" in no_rtx["TensorRT-RTX build"].reason


def test_cpu_only_torch_with_a_driver():
    s = by_name(dataclasses.replace(CPU_BOX, cuda_driver="12.8"))
    assert "CPU-only build" in s["torch CUDA"].reason and "12.8" in s["torch CUDA"].reason


@pytest.mark.parametrize("version, words", [("9.2.0.5", "too old"), ("8.6.1.6", "too old")])
def test_old_tensorrt(version, words):
    s = by_name(dataclasses.replace(GPU_BOX, versions={**GPU_BOX.versions, "tensorrt": version}))
    assert not s["TensorRT"].available and words in s["TensorRT"].reason


def test_tensorrt_without_gpu_and_broken_import():
    s = by_name(dataclasses.replace(CPU_BOX, versions={**CPU_BOX.versions, "tensorrt": "10.13.0.35"}))
    assert "is installed but no CUDA GPU" in s["TensorRT"].reason
    broken = dataclasses.replace(GPU_BOX, import_errors={"tensorrt": "libcudart.so.12: cannot open shared object"})
    assert "failed to import: libcudart" in by_name(broken)["TensorRT"].reason


def test_onnxruntime_without_cuda_provider():
    s = by_name(dataclasses.replace(GPU_BOX, ort_providers=["CPUExecutionProvider"]))
    assert "no CUDAExecutionProvider" in s["onnxruntime CUDA"].reason and "onnxruntime-gpu" in s["onnxruntime CUDA"].reason


def test_triton_missing():
    s = by_name(dataclasses.replace(GPU_BOX, versions={**GPU_BOX.versions, "triton": None}))
    for name in ("Triton GPU", "Triton interpreter", "PTX for AOT plugins"):
        assert "Triton is not installed" in s[name].reason


def test_plugin_library():
    """Not built, a broken file, built for a TensorRT that is not here, and built for what is."""
    s = by_name(dataclasses.replace(GPU_BOX, plugin_library=None, plugin_library_headers=None))
    assert "not built: `make cpp`" in s["C++ plugin library"].reason
    broken = dataclasses.replace(GPU_BOX, plugin_library_headers=None, plugin_library_error="x.so is not tdeploy's")
    assert by_name(broken)["C++ plugin library"].reason == "x.so is not tdeploy's"
    trt11 = dataclasses.replace(GPU_BOX, versions={**GPU_BOX.versions, "tensorrt": "11.0.0.114", "tensorrt_rtx": None})
    assert "rebuild it with `make cpp TENSORRT_ROOT" in by_name(trt11)["C++ plugin library"].reason
    ok = by_name(GPU_BOX)["C++ plugin library"]
    assert ok.available and "loads into TensorRT 10.13.0.35, TensorRT-RTX 1.7.1.116" in ok.detail
    # TensorRT 11 here, TensorRT-RTX too: it still loads into one of them
    mixed = dataclasses.replace(GPU_BOX, versions={**GPU_BOX.versions, "tensorrt": "11.0.0.114"})
    assert by_name(mixed)["C++ plugin library"].detail.endswith("loads into TensorRT-RTX 1.7.1.116)")


def test_diagnose_this_machine():
    report = diagnose()
    assert isinstance(report, DoctorReport)
    assert [b.name for b in report.backends] == NAMES
    for key in ("python", "torch", "onnx", "onnxruntime", "onnxscript", "triton", "tensorrt", "tensorrt_rtx",
                "CUDA driver"):
        assert key in report.versions
    assert report.status("torch CPU").available
    data = report.to_json()
    assert {"backends", "versions", "facts"} <= set(data)


def test_doctor_command_exits_0():
    code, out, err = run_cli("doctor")
    assert code == 0, err
    for name in NAMES:
        assert name in out
    assert "versions:" in out and "tensorrt" in out
    code, out, _ = run_cli("doctor", "--json")
    assert code == 0 and '"backends"' in out
