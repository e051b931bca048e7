"""The two TensorRT runtimes tdeploy builds with, and how to find them.

- ``tensorrt``: datacenter and Jetson TensorRT (10.x, 11.x). Builds for the GPU it runs on, so it
  needs one; its Python QDP plugins (AOT, 10.9+) embed tdeploy's kernels in the engine.
- ``tensorrt-rtx`` (module ``tensorrt_rtx``): TensorRT for RTX 1.x, the TensorRT of RTX PCs and
  workstations. Its builder runs without a GPU for chosen targets (compute capability 7.5 to 12.1,
  no 9.0), networks are always strongly typed, and it takes only class-based ``IPluginV3`` plugins
  (tdeploy's C++ plugin library), not QDP. Running its engines needs an RTX-class GPU.

Everything here imports TensorRT lazily and is decided by pure functions of versions and facts, so
that the refusals are tested on machines without either runtime.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tdeploy.errors import BackendUnavailable, TdeployError

RUNTIME_CHOICES = ("auto", "tensorrt", "tensorrt-rtx")
MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
LABELS = {"tensorrt": "TensorRT", "tensorrt-rtx": "TensorRT-RTX"}
MIN_VERSION = {"tensorrt": (10, 0), "tensorrt-rtx": (1, 0)}
MIN_TENSORRT_QDP = (10, 9)  # tensorrt.plugin.aot_impl: the QDP AOT plugins
INSTALL_HINT = (
    "install it on a machine with an NVIDIA GPU: `pip install tensorrt` (10.x or 11.x), "
    "or use NVIDIA's TensorRT container"
)
RTX_INSTALL_HINT = "pip install tensorrt-rtx-cu12 (its builder runs without a GPU)"
INSTALL_HINTS = {"tensorrt": INSTALL_HINT, "tensorrt-rtx": RTX_INSTALL_HINT}
# Compute capabilities TensorRT-RTX builds for, and its default when none is given (its documentation:
# "compute capability 8.0, 8.6, 8.9, 12.0, and later"; Turing 7.5 only when asked for).
RTX_TARGETS = {"7.5": "SM75", "8.0": "SM80", "8.6": "SM86", "8.9": "SM89", "12.0": "SM120", "12.1": "SM121"}
RTX_DEFAULT_MIN = (8, 0)


@dataclass(frozen=True)
class Runtime:
    """An imported TensorRT runtime."""

    name: str  # "tensorrt" | "tensorrt-rtx"
    module: ModuleType
    version: str

    @property
    def is_rtx(self) -> bool:
        return self.name == "tensorrt-rtx"

    @property
    def label(self) -> str:
        """``TensorRT 10.13.3.9`` / ``TensorRT-RTX 1.7.1.116``."""
        return f"{LABELS[self.name]} {self.version}"

    @property
    def has_qdp(self) -> bool:
        """TensorRT's Python AOT plugins (tensorrt.plugin.aot_impl): datacenter TensorRT >= 10.9."""
        return not self.is_rtx and parse_version(self.version)[:2] >= MIN_TENSORRT_QDP


def parse_version(text: str) -> tuple[int, ...]:
    """'10.9.0.34' -> (10, 9, 0, 34); '11.0.0rc1' -> (11, 0, 0); junk -> ()."""
    parts = []
    for piece in str(text).strip().split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):  # '0rc1': keep the number, stop after it
            break
    return tuple(parts)


def version_problem(version: str, name: str = "tensorrt") -> str | None:
    """None when ``version`` of runtime ``name`` is one tdeploy builds with, else why not."""
    parsed = parse_version(version)
    hint = INSTALL_HINTS[name]
    if len(parsed) < 2:
        return f"cannot read the {LABELS[name]} version {version!r}; {hint}"
    if parsed[:2] < MIN_VERSION[name]:
        least = ".".join(map(str, MIN_VERSION[name]))
        return f"{LABELS[name]} {version} is too old: tdeploy needs {least} or newer; {hint}"
    return None


def tensorrt_major(version: str) -> int:
    parsed = parse_version(version)
    return parsed[0] if parsed else 0


def _import(name: str) -> ModuleType:
    """The runtime's module, imported by its literal name (so that tests/test_layers.py sees each import)."""
    if name == "tensorrt":
        import tensorrt

        return tensorrt
    import tensorrt_rtx

    return tensorrt_rtx


def probe(name: str = "tensorrt") -> tuple[str | None, str | None]:
    """(version, import error) of runtime ``name``; (None, None) when it is not installed. Never raises."""
    if importlib.util.find_spec(MODULES[name]) is None:
        return None, None
    try:
        module = _import(name)
    except Exception as exc:  # noqa: BLE001 - e.g. the libraries are there but CUDA is not
        text = str(exc).strip()
        return None, (text.splitlines()[0][:200] if text else type(exc).__name__)
    return getattr(module, "__version__", None), None


def probe_tensorrt() -> tuple[str | None, str | None]:
    """:func:`probe` of datacenter TensorRT (what ``deploy doctor`` reports as ``tensorrt``)."""
    return probe("tensorrt")


def runtime_problem(name: str) -> str | None:
    """None when runtime ``name`` imports and is new enough, else why not (one sentence)."""
    version, error = probe(name)
    hint = INSTALL_HINTS[name]
    if error:
        return f"{LABELS[name]} failed to import: {error}; {hint}"
    if version is None:
        return f"{LABELS[name]} ({MODULES[name]}) is not installed; {hint}"
    return version_problem(version, name)


def find_runtime(name: str = "auto") -> Runtime:
    """The runtime to build or run with. ``auto``: ``tensorrt`` when it imports, else ``tensorrt-rtx``."""
    if name not in RUNTIME_CHOICES:
        raise TdeployError(f"--runtime {name!r}: choose one of {', '.join(RUNTIME_CHOICES)}")
    if name == "auto":
        problems = {n: runtime_problem(n) for n in ("tensorrt", "tensorrt-rtx")}
        usable = [n for n, why in problems.items() if why is None]
        if not usable:
            raise BackendUnavailable(f"no TensorRT runtime here: {problems['tensorrt']} Or: {problems['tensorrt-rtx']}")
        name = usable[0]
    elif why := runtime_problem(name):
        if name == "tensorrt" and runtime_problem("tensorrt-rtx") is None:
            why += f"; TensorRT-RTX {probe('tensorrt-rtx')[0]} is installed and builds here: --runtime tensorrt-rtx"
        raise BackendUnavailable(why)
    module = _import(name)
    if name == "tensorrt-rtx":
        ensure_rtx_plugin_loader()
    return Runtime(name=name, module=module, version=str(module.__version__))


def ensure_rtx_plugin_loader() -> Path | None:
    """Make ``libtensorrt_rtx.so`` (unversioned) resolvable next to the wheel's ``libtensorrt_rtx.so.1``.

    TensorRT-RTX's ONNX parser dlopens ``libtensorrt_rtx.so`` when it creates a plugin, and the
    ``tensorrt-rtx-cu12-libs`` wheel ships only ``.so.1``: without the link the process aborts
    ("terminate called without an active exception") at the first plugin node. The parser's RPATH is
    ``$ORIGIN``, so a link in the wheel's folder is found. Returns the link, or None when the libraries
    are not in a wheel (a system install has the unversioned name).
    """
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    link, target = folder / "libtensorrt_rtx.so", folder / "libtensorrt_rtx.so.1"
    if link.exists() or not target.exists():
        return link if link.exists() else None
    try:
        os.symlink(target.name, link)
    except FileExistsError:
        pass
    except OSError as exc:
        raise BackendUnavailable(
            f"TensorRT-RTX's parser needs {link} (it dlopens the unversioned name when it creates a plugin) and "
            f"it cannot be created ({exc.strerror}): run `ln -s {target.name} {link}` once"
        ) from None
    return link


# --- compute capabilities ---------------------------------------------------------------------------------
def parse_compute_capabilities(values) -> list[str]:
    """``("8.9", "12.0,8.6")`` -> ``["8.6", "8.9", "12.0"]`` (sorted, unique); one-line errors."""
    out = set()
    for value in values or ():
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            if not re.fullmatch(r"\d+\.\d+", item):
                raise TdeployError(f"--compute-capability {item!r}: write MAJOR.MINOR, e.g. 8.9 or 12.0")
            out.add(item)
    return sorted(out, key=capability_tuple)


def rtx_target_problem(capability: str) -> str | None:
    """None when TensorRT-RTX builds for ``capability`` (e.g. "8.9"), else which targets it has."""
    if capability in RTX_TARGETS:
        return None
    extra = " (H100/H200 are 9.0: build for them with --runtime tensorrt on the GPU)" if capability == "9.0" else ""
    return (f"TensorRT-RTX has no target {capability}: it builds for {', '.join(RTX_TARGETS)}{extra}")


def capability_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


# --- the GPU --------------------------------------------------------------------------------------------
def gpu_problem() -> str | None:
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


def gpu_identity(device: int = 0) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of the CUDA device, as recorded in engine sidecars."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), (int(major), int(minor))
