"""Which form of tdeploy's attention plugins goes into an engine, and registering it with TensorRT.

Three forms, one kernel source (the Triton kernels of ``tdeploy/plugins``):

- ``qdp``: TensorRT's Python Quick Deployable Plugins with an AOT implementation (``plugins/<op>/trt.py``).
  Datacenter TensorRT >= 10.9 only. The engine embeds the PTX: no Python, no plugin library at run time.
- ``cpp``: the C++ ``IPluginV3`` library ``libtdeploy_plugins.so`` (``make cpp``). Any TensorRT 10.x/11.x,
  TensorRT-RTX, trtexec, Triton Inference Server; the engine needs the library at run time.
- ``none``: the tdeploy nodes run as their model-local ONNX functions (standard layers). Always
  possible; the build inlines the functions itself first (onnx's inliner names every call's nodes
  apart, where TensorRT's parser would repeat the function body's names and warn once per node).

``auto`` takes ``qdp`` where it exists, else ``cpp`` where the library is built, else ``none`` with a
one-line note on how to get the plugins: a build never fails for want of a plugin form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.plugins.registry import plugin_ops
from tdeploy.tensorrt.runtimes import LABELS, MIN_TENSORRT_QDP, Runtime, parse_version

PLUGIN_CHOICES = ("auto", "qdp", "cpp", "none")
LIBRARY_NAME = "libtdeploy_plugins.so"
LIBRARY_ENV = "TDEPLOY_PLUGIN_LIBRARY"
# `make cpp` writes the library here (relative to the repository holding this package).
DEFAULT_LIBRARY = Path(__file__).resolve().parents[2] / "build" / "cpp" / LIBRARY_NAME


@dataclass(frozen=True)
class PluginChoice:
    form: str  # "qdp" | "cpp" | "none"
    library: Path | None = None  # the C++ library, for "cpp"
    note: str = ""  # one line for the user when the form is not what they could have had


def plugin_library(path: str | Path | None = None) -> Path | None:
    """The C++ plugin library to use: ``path``, else $TDEPLOY_PLUGIN_LIBRARY, else ``build/cpp`` when built."""
    if path is not None:
        return Path(path)
    if os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    return DEFAULT_LIBRARY if DEFAULT_LIBRARY.is_file() else None


def choose_plugins(requested: str, runtime: Runtime, *, has_nodes: bool, library: Path | None) -> PluginChoice:
    """The plugin form for a graph (``has_nodes``: it has tdeploy nodes); one-line refusals."""
    if requested not in PLUGIN_CHOICES:
        raise TdeployError(f"--plugins {requested!r}: choose one of {', '.join(PLUGIN_CHOICES)}")
    if not has_nodes:
        return PluginChoice("none")
    qdp_why = None if runtime.has_qdp else (
        f"{runtime.label} takes no Python QDP plugins (only class-based IPluginV3 ones)" if runtime.is_rtx
        else f"{runtime.label} has no AOT Python plugins (they need {'.'.join(map(str, MIN_TENSORRT_QDP))} or newer)")
    if requested == "qdp":
        if qdp_why:
            raise BackendUnavailable(f"--plugins qdp: {qdp_why}; use --plugins cpp (make cpp) or --plugins none")
        return PluginChoice("qdp")
    if requested == "cpp":
        if library is None or not library.is_file():
            where = library or DEFAULT_LIBRARY
            raise BackendUnavailable(f"--plugins cpp: no {LIBRARY_NAME} at {where}; build it with `make cpp` "
                                     f"(or point ${LIBRARY_ENV} at one)")
        return PluginChoice("cpp", library=library)
    if requested == "none":
        return PluginChoice("none")
    if qdp_why is None:
        return PluginChoice("qdp")
    if library is not None and library.is_file():
        return PluginChoice("cpp", library=library)
    return PluginChoice("none", note=(
        f"plugins: none ({qdp_why}, and no {LIBRARY_NAME} is built): the attention nodes run as their ONNX "
        "functions; `make cpp` builds the C++ plugin library for --plugins cpp"))


def register_plugins(choice: PluginChoice, runtime: Runtime, *, target_cc: int | None = None,
                     ptx_version: int | None = None) -> None:
    """Make the chosen form known to ``runtime`` before parsing (the parser sends tdeploy nodes to it)."""
    if choice.form == "qdp":
        from tdeploy.plugins.qdp import set_target

        set_target(target_cc, ptx_version)
        for op in plugin_ops():
            op.register_trt()
    elif choice.form == "cpp":
        load_library(runtime, choice.library)


_LOADED: dict[tuple[str, str], object] = {}  # (runtime, library path) -> handle: TensorRT loads a library once


def library_build_info(path: Path) -> tuple[str, str]:
    """(flavour, version) of the TensorRT headers the library was compiled against, e.g. ("tensorrt", "10.14.1")."""
    import ctypes

    try:
        lib = ctypes.CDLL(str(path))
        info = lib.tdeploy_plugins_build_info
    except (OSError, AttributeError) as exc:
        raise BackendUnavailable(f"{path} is not tdeploy's plugin library ({exc}); build it with `make cpp`") from None
    info.restype = ctypes.c_char_p
    flavour, _, version = info().decode().partition(" ")
    return flavour, version


def library_problem(flavour: str, version: str, runtime: Runtime) -> str | None:
    """None when a library compiled against TensorRT headers ``flavour`` ``version`` loads into ``runtime``.

    The IPluginV3 interfaces are stable within a major version; TensorRT-RTX 1.x declares them as
    TensorRT 10 does (a library built against 10.x headers loads there: tests/cpp checks it)."""
    major = parse_version(version)[:1]
    if runtime.is_rtx:
        ok = flavour == "tensorrt-rtx" or (flavour == "tensorrt" and major == (10,))
    else:
        ok = flavour == "tensorrt" and major == parse_version(runtime.version)[:1]
    if ok:
        return None
    return (f"the plugin library was built against {LABELS.get(flavour, flavour)} {version} headers, which "
            f"{runtime.label} cannot load: rebuild it with `make cpp TENSORRT_ROOT=<this TensorRT's SDK>`")


def load_library(runtime: Runtime, path: Path):
    """Load the C++ plugin library into ``runtime``'s plugin registry (once per process); its creators
    register themselves."""
    key = (runtime.name, str(Path(path).resolve()))
    if key in _LOADED:
        return _LOADED[key]
    if why := library_problem(*library_build_info(path), runtime):
        raise BackendUnavailable(why)
    registry = runtime.module.get_plugin_registry()
    handle = registry.load_library(str(path))
    if handle is None:
        raise BackendUnavailable(f"{runtime.label} could not load {path} (the TensorRT log above says why); "
                                 "rebuild it with `make cpp` against this TensorRT")
    _LOADED[key] = handle
    return handle
