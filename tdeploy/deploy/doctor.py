"""What this machine can run, and exactly why not when it cannot (``deploy doctor``).

Two steps, as in NATTEN's per-backend checks: :func:`gather_facts` looks at the machine (imports,
versions, GPU, driver) and never raises; :func:`assess` turns facts into one :class:`BackendStatus`
per backend and is a pure function, tested with hand-written facts.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.metadata
import importlib.util
import platform
from dataclasses import asdict, dataclass, field

from tdeploy.errors import TdeployError
from tdeploy.tensorrt.plugins import (
    LIBRARY_ENV,
    LIBRARY_NAME,
    library_build_info,
    library_problem,
    plugin_library,
)
from tdeploy.tensorrt.runtimes import (
    INSTALL_HINT,
    RTX_DEFAULT_MIN,
    RTX_INSTALL_HINT,
    RTX_TARGETS,
    Runtime,
    capability_tuple,
    probe,
    version_problem,
)

TRITON_HINT = "pip install 'tdeploy[triton]'"
PACKAGES = ("torch", "onnx", "onnxruntime", "onnxscript", "triton", "tensorrt", "tensorrt_rtx")
# Distribution names that provide each import (onnxruntime-gpu provides `onnxruntime`).
_DISTRIBUTIONS = {"onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
                  "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
                  "tensorrt_rtx": ("tensorrt-rtx-cu12", "tensorrt_rtx_cu12", "tensorrt-rtx")}


@dataclass
class Facts:
    """Everything doctor looked at; each field None/empty when it could not be found."""

    python: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)  # package -> version (None: absent)
    import_errors: dict[str, str] = field(default_factory=dict)  # installed but failed to import
    torch_cuda: str | None = None  # torch.version.cuda (None: a CPU-only build)
    gpu_name: str | None = None  # CUDA device 0 as torch sees it
    gpu_capability: tuple[int, int] | None = None
    cuda_driver: str | None = None  # e.g. "12.8", from libcuda
    ort_providers: list[str] = field(default_factory=list)
    triton_nvidia_backend: bool = False  # Triton's CUDA backend (PTX generation) is importable
    plugin_library: str | None = None  # the C++ plugin library --plugins cpp would use (None: not built)
    plugin_library_headers: tuple[str, str] | None = None  # (flavour, version) of the headers it was built with
    plugin_library_error: str | None = None  # why that file is not a usable library


@dataclass
class BackendStatus:
    name: str
    available: bool
    reason: str = ""  # why not (empty when available)
    detail: str = ""  # e.g. the device or version it would use


@dataclass
class DoctorReport:
    backends: list[BackendStatus]
    versions: dict[str, str | None]
    facts: Facts

    def status(self, name: str) -> BackendStatus:
        return next(b for b in self.backends if b.name == name)

    def to_json(self) -> dict:
        return {"backends": [asdict(b) for b in self.backends], "versions": self.versions, "facts": asdict(self.facts)}


# --- looking at the machine ----------------------------------------------------------------------------
def _version(package: str) -> str | None:
    for dist in _DISTRIBUTIONS.get(package, (package,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def cuda_driver_version() -> str | None:
    """The CUDA driver's version from libcuda (no GPU context is created), e.g. '12.8'."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    value = ctypes.c_int(0)
    try:
        if lib.cuDriverGetVersion(ctypes.byref(value)) != 0 or value.value <= 0:
            return None
    except AttributeError:
        return None
    return f"{value.value // 1000}.{value.value % 1000 // 10}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def gather_facts() -> Facts:
    facts = Facts(python=platform.python_version())
    for package in PACKAGES:
        facts.versions[package] = _version(package)
    try:
        import torch

        facts.torch_cuda = torch.version.cuda
        if torch.cuda.is_available():
            facts.gpu_name = torch.cuda.get_device_name(0)
            facts.gpu_capability = tuple(int(c) for c in torch.cuda.get_device_capability(0))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        if facts.versions.get("torch"):
            facts.import_errors["torch"] = _first_line(exc)
    if facts.versions.get("onnxruntime"):
        try:
            import onnxruntime

            facts.ort_providers = list(onnxruntime.get_available_providers())
        except Exception as exc:  # noqa: BLE001
            facts.import_errors["onnxruntime"] = _first_line(exc)
    if facts.versions.get("triton"):
        try:
            importlib.import_module("triton")
            importlib.import_module("triton.backends.nvidia.compiler")
            facts.triton_nvidia_backend = True
        except Exception as exc:  # noqa: BLE001
            facts.import_errors["triton"] = _first_line(exc)
    for package, runtime in (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt-rtx")):
        version, error = probe(runtime)
        if version:
            facts.versions[package] = version
        if error:
            facts.import_errors[package] = error
    facts.cuda_driver = cuda_driver_version()
    if (library := plugin_library()) is not None:
        facts.plugin_library = str(library)
        if not library.is_file():
            facts.plugin_library_error = f"${LIBRARY_ENV} names {library}, which does not exist"
        else:
            try:
                facts.plugin_library_headers = library_build_info(library)
            except TdeployError as exc:
                facts.plugin_library_error = _first_line(exc)
    return facts


# --- deciding ------------------------------------------------------------------------------------------
def _no_gpu(facts: Facts) -> str:
    if facts.cuda_driver is None:
        return "no CUDA GPU: no NVIDIA driver (libcuda.so.1) on this machine"
    if facts.versions.get("torch") and facts.torch_cuda is None:
        return (f"no CUDA GPU usable: torch {facts.versions['torch']} is a CPU-only build (the CUDA driver "
                f"{facts.cuda_driver} is there: install a CUDA build of torch)")
    return "no CUDA GPU visible (torch.cuda.is_available() is False)"


def assess(facts: Facts) -> list[BackendStatus]:
    """One status per backend, each unavailable one with the exact reason."""
    out: list[BackendStatus] = []
    gpu = facts.gpu_name
    gpu_detail = f"{gpu} (sm {'.'.join(map(str, facts.gpu_capability or ()))})" if gpu else ""

    torch_v = facts.versions.get("torch")
    if not torch_v or "torch" in facts.import_errors:
        why = f"torch failed to import: {facts.import_errors['torch']}" if "torch" in facts.import_errors \
            else "PyTorch is not installed (pip install torch)"
        out += [BackendStatus("torch CPU", False, why), BackendStatus("torch CUDA", False, why)]
    else:
        out.append(BackendStatus("torch CPU", True, detail=f"torch {torch_v}"))
        out.append(BackendStatus("torch CUDA", True, detail=gpu_detail) if gpu
                   else BackendStatus("torch CUDA", False, _no_gpu(facts)))

    ort_v = facts.versions.get("onnxruntime")
    if not ort_v or "onnxruntime" in facts.import_errors:
        why = f"onnxruntime failed to import: {facts.import_errors['onnxruntime']}" \
            if "onnxruntime" in facts.import_errors else "onnxruntime is not installed (pip install onnxruntime-gpu)"
        out += [BackendStatus("onnxruntime CPU", False, why), BackendStatus("onnxruntime CUDA", False, why)]
    else:
        cpu_ok = "CPUExecutionProvider" in facts.ort_providers
        out.append(BackendStatus("onnxruntime CPU", cpu_ok, "" if cpu_ok else
                                 f"onnxruntime {ort_v} lists no CPUExecutionProvider", detail=f"onnxruntime {ort_v}"))
        if "CUDAExecutionProvider" not in facts.ort_providers:
            out.append(BackendStatus("onnxruntime CUDA", False,
                                     f"onnxruntime {ort_v} has no CUDAExecutionProvider (install onnxruntime-gpu "
                                     "instead of onnxruntime)"))
        elif not gpu:
            out.append(BackendStatus("onnxruntime CUDA", False,
                                     f"onnxruntime {ort_v} has the CUDA provider but {_no_gpu(facts)}"))
        else:
            out.append(BackendStatus("onnxruntime CUDA", True, detail=gpu_detail))

    trt_v = facts.versions.get("tensorrt")
    if "tensorrt" in facts.import_errors:
        out.append(BackendStatus("TensorRT", False, f"TensorRT failed to import: {facts.import_errors['tensorrt']}; "
                                                    f"{INSTALL_HINT}"))
    elif not trt_v:
        out.append(BackendStatus("TensorRT", False, f"TensorRT is not installed; {INSTALL_HINT}"))
    elif why := version_problem(trt_v):
        out.append(BackendStatus("TensorRT", False, why))
    elif not gpu:
        out.append(BackendStatus("TensorRT", False, f"TensorRT {trt_v} is installed but {_no_gpu(facts)}"))
    else:
        out.append(BackendStatus("TensorRT", True, detail=f"TensorRT {trt_v} on {gpu_detail}: builds and runs"))

    rtx_v = facts.versions.get("tensorrt_rtx")
    if "tensorrt_rtx" in facts.import_errors:
        why = f"TensorRT-RTX failed to import: {facts.import_errors['tensorrt_rtx']}; {RTX_INSTALL_HINT}"
        out += [BackendStatus("TensorRT-RTX build", False, why), BackendStatus("TensorRT-RTX run", False, why)]
    elif not rtx_v:
        why = f"TensorRT-RTX is not installed; {RTX_INSTALL_HINT}"
        out += [BackendStatus("TensorRT-RTX build", False, why), BackendStatus("TensorRT-RTX run", False, why)]
    elif why := version_problem(rtx_v, "tensorrt-rtx"):
        out += [BackendStatus("TensorRT-RTX build", False, why), BackendStatus("TensorRT-RTX run", False, why)]
    else:
        out.append(BackendStatus("TensorRT-RTX build", True,
                                 detail=f"TensorRT-RTX {rtx_v}, no GPU needed: --compute-capability {', '.join(RTX_TARGETS)}"))
        if not gpu:
            out.append(BackendStatus("TensorRT-RTX run", False, f"running its engines needs an RTX-class GPU: "
                                                                f"{_no_gpu(facts)}"))
        elif (cc := ".".join(map(str, facts.gpu_capability or ()))) not in RTX_TARGETS:
            out.append(BackendStatus("TensorRT-RTX run", False,
                                     f"{gpu_detail} is not a TensorRT-RTX target (it runs on {', '.join(RTX_TARGETS)}); "
                                     "build with TensorRT for this GPU"))
        else:
            default = capability_tuple(cc) >= RTX_DEFAULT_MIN
            note = "" if default else f" (build with --compute-capability {cc}: not a default target)"
            out.append(BackendStatus("TensorRT-RTX run", True, detail=f"TensorRT-RTX {rtx_v} on {gpu_detail}{note}"))

    triton_v = facts.versions.get("triton")
    if not triton_v or "triton" in facts.import_errors:
        why = f"Triton failed to import: {facts.import_errors['triton']}" if "triton" in facts.import_errors \
            else f"Triton is not installed ({TRITON_HINT})"
        out += [BackendStatus("Triton GPU", False, why), BackendStatus("Triton interpreter", False, why),
                BackendStatus("PTX for AOT plugins", False, why)]
    else:
        out.append(BackendStatus("Triton GPU", True, detail=gpu_detail) if gpu else
                   BackendStatus("Triton GPU", False, f"{_no_gpu(facts)}; kernels run in Triton's interpreter "
                                                      "(TRITON_INTERPRET=1) instead"))
        out.append(BackendStatus("Triton interpreter", True, detail=f"triton {triton_v}, TRITON_INTERPRET=1 (slow)"))
        out.append(BackendStatus("PTX for AOT plugins", True, detail=f"triton {triton_v} (no GPU needed)")
                   if facts.triton_nvidia_backend else
                   BackendStatus("PTX for AOT plugins", False, f"triton {triton_v} has no NVIDIA backend "
                                                               "(triton.backends.nvidia)"))
    out.append(_plugin_library_status(facts))
    return out


def _plugin_library_status(facts: Facts) -> BackendStatus:
    name = "C++ plugin library"
    if facts.plugin_library is None:
        return BackendStatus(name, False, f"{LIBRARY_NAME} is not built: `make cpp` builds it (for --plugins cpp, "
                                          f"trtexec and Triton Inference Server), or set ${LIBRARY_ENV}")
    if facts.plugin_library_error or facts.plugin_library_headers is None:
        return BackendStatus(name, False, facts.plugin_library_error or f"{facts.plugin_library} is unreadable")
    flavour, version = facts.plugin_library_headers
    installed = [Runtime(runtime, None, facts.versions[package])  # type: ignore[arg-type] - only names are read
                 for package, runtime in (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt-rtx"))
                 if facts.versions.get(package) and package not in facts.import_errors]
    problems = [why for runtime in installed if (why := library_problem(flavour, version, runtime))]
    if installed and len(problems) == len(installed):
        return BackendStatus(name, False, problems[0])
    built = "TensorRT-RTX" if flavour == "tensorrt-rtx" else "TensorRT"
    loads = ", ".join(r.label for r in installed if not library_problem(flavour, version, r))
    return BackendStatus(name, True, detail=f"{facts.plugin_library} ({built} {version} headers"
                                            + (f"; loads into {loads})" if loads else ")"))


def versions(facts: Facts) -> dict[str, str | None]:
    table: dict[str, str | None] = {"python": facts.python}
    table.update({p: facts.versions.get(p) for p in PACKAGES})
    table["torch CUDA build"] = facts.torch_cuda
    table["CUDA driver"] = facts.cuda_driver
    table["GPU"] = (f"{facts.gpu_name} (sm {'.'.join(map(str, facts.gpu_capability or ()))})"
                    if facts.gpu_name else None)
    return table


def diagnose(facts: Facts | None = None) -> DoctorReport:
    facts = facts if facts is not None else gather_facts()
    return DoctorReport(backends=assess(facts), versions=versions(facts), facts=facts)
