"""TensorRT engines as a runner (TensorRT is imported lazily, on activation).

Activation, in order: the engine's sidecar (``<engine>.json``, written by ``deploy build-engine``) names
the runtime that built it (datacenter TensorRT or TensorRT-RTX) and that runtime is imported; a GPU is
there; the sidecar says the engine was built by this exact runtime version for this GPU (a one-line
refusal otherwise, instead of a failed deserialization); the plugin form inside is made available
(the C++ library loaded, or the QDP plugins registered); the engine is deserialized. With
TensorRT-RTX a runtime cache (``<engine>.rtx-cache``) keeps the kernels it compiles for this GPU at
first run. Inference uses torch CUDA tensors as device buffers, all on one CUDA stream, and
``execute_async_v3``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from tdeploy.artifact.atomic import atomic_write_bytes
from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.runtime.base import Runner, cuda_event_timer
from tdeploy.tensorrt.logger import make_logger
from tdeploy.tensorrt.plugins import PluginChoice, register_plugins
from tdeploy.tensorrt.runtimes import LABELS, find_runtime, gpu_identity, gpu_problem
from tdeploy.tensorrt.sidecar import REBUILD_HINT, check_engine_compatible, load_engine_sidecar

RUNTIME_CACHE_SUFFIX = ".rtx-cache"


def shape_problem(name: str, shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> str | None:
    """None when ``shape`` lies within the engine's profile [lo, hi], else a one-line reason."""
    fmt = lambda s: "x".join(str(int(d)) for d in s)  # noqa: E731
    if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
        return (f"input {name} of shape {fmt(shape)} is outside the engine's profile {fmt(lo)} .. {fmt(hi)}; "
                f"rebuild with deploy build-engine --shapes {name}:MIN/OPT/MAX")
    return None


def stale_engine_problem(engine: Path, engine_sidecar: dict, onnx_sha256: str | None) -> str | None:
    """None when the engine was built from the artifact's graph as it is now (its sha256), else why not."""
    built_from = (engine_sidecar.get("onnx") or {}).get("sha256")
    if onnx_sha256 is None or built_from == onnx_sha256:
        return None
    graph = (engine_sidecar.get("onnx") or {}).get("file", "its ONNX graph")
    return (f"{engine.name} was built from another {graph} (sha256 {str(built_from)[:12]}, the artifact's is "
            f"{onnx_sha256[:12]}): it is stale; {REBUILD_HINT} {engine.parent}")


class TrtRunner(Runner):
    name = "trt"

    def __init__(self, engine_path: str | Path, outputs: list[str] | None = None, onnx_sha256: str | None = None):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.output_order = list(outputs) if outputs else None  # the spec's order (engine order otherwise)
        self.onnx_sha256 = onnx_sha256  # the artifact graph's: an engine of another graph is refused
        self.engine = None
        self.context = None
        self.stream = None
        self.runtime_cache_path: Path | None = None
        self._inputs: list[str] = []
        self._bound: list = []  # device copies of the inputs last bound to the context
        self._outputs: list[str] = []

    @classmethod
    def for_artifact(cls, artifact, graph: str = "model") -> TrtRunner:
        """The engine of ``graph``: the one named as ARTIFACT, else ``<graph>.engine`` in the artifact."""
        info = artifact.sidecar.graphs[graph]
        spec = info.export_spec()
        multi = len(artifact.sidecar.graphs) > 1
        if artifact.engine is not None:
            if not multi:
                return cls(artifact.engine, list(spec.outputs), info.sha256)
            sibling = artifact.engine.parent / f"{graph}.engine"  # encoder.engine + decoder.engine
            if sibling.is_file():
                return cls(sibling, list(spec.outputs), info.sha256)
            raise TdeployError(f"no {sibling.name} beside {artifact.engine}: this artifact has one engine per graph "
                               f"({', '.join(artifact.sidecar.graphs)}); build them with `deploy build-engine`")
        engine = artifact.root / f"{graph}.engine"
        if not engine.is_file():
            raise TdeployError(
                f"no TensorRT engine for {graph} in {artifact.root}: build one with "
                f"`deploy build-engine {artifact.root}` or pass the engine file as ARTIFACT"
            )
        return cls(engine, list(spec.outputs), info.sha256)

    def activate_impl(self) -> None:
        if not self.engine_path.is_file():
            raise TdeployError(f"engine not found: {self.engine_path}; build it with deploy build-engine")
        sidecar = load_engine_sidecar(self.engine_path)
        if why := stale_engine_problem(self.engine_path, sidecar, self.onnx_sha256):
            raise TdeployError(why)
        built = sidecar["runtime"]
        name = built.get("name", "tensorrt")
        try:
            runtime = find_runtime(name)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"{self.engine_path.name} was built with {LABELS.get(name, name)} "
                                     f"{built.get('version', '')}, which cannot run here: {exc}") from None
        if problem := gpu_problem():
            raise BackendUnavailable(f"running a {runtime.label} engine needs an NVIDIA GPU: {problem}")
        gpu_name, cc = gpu_identity()
        if why := check_engine_compatible(sidecar, runtime.name, runtime.version, gpu_name, cc):
            raise TdeployError(f"{self.engine_path.name}: {why}")
        form = sidecar.get("plugin_form", "none")
        library = (sidecar.get("plugin_library") or {}).get("file")
        if form == "cpp" and (library is None or not Path(library).is_file()):
            raise BackendUnavailable(f"{self.engine_path.name} holds C++ plugin layers and needs the plugin library "
                                     f"({library}); build it with `make cpp` or point $TDEPLOY_PLUGIN_LIBRARY at it")
        register_plugins(PluginChoice(form, Path(library) if library else None), runtime)
        import torch

        trt = runtime.module
        self._trt = trt
        self._logger = make_logger(trt)  # the one logger of this TensorRT module (see logger.py)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise TdeployError(f"{runtime.label} could not load {self.engine_path} (see the TensorRT log above); "
                               f"{REBUILD_HINT} here")
        if runtime.is_rtx:
            self.context = self._rtx_context()
        else:
            self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self.output_order:
            missing = [n for n in self.output_order if n not in self._outputs]
            if missing:
                raise TdeployError(f"{self.engine_path.name} has no output {missing[0]!r} (outputs: "
                                   f"{', '.join(self._outputs)}); rebuild it from this artifact")
            self._outputs = self.output_order + [n for n in self._outputs if n not in self.output_order]

    def _rtx_context(self):
        """An execution context with a runtime cache: TensorRT-RTX compiles its kernels for this GPU at first
        run; the cache beside the engine keeps them for the next process."""
        config = self.engine.create_runtime_config()
        cache = config.create_runtime_cache()
        self.runtime_cache_path = self.engine_path.with_name(self.engine_path.name + RUNTIME_CACHE_SUFFIX)
        if self.runtime_cache_path.is_file():
            cache.deserialize(self.runtime_cache_path.read_bytes())
        config.set_runtime_cache(cache)
        self._runtime_config, self._runtime_cache = config, cache
        return self.engine.create_execution_context(config)

    def input_names(self) -> list[str]:
        return list(self._inputs)

    def _bind(self, feed: dict[str, np.ndarray]) -> dict[str, object]:
        """Copy ``feed`` to the GPU (on the runner's stream), set the shapes and bind every input and a
        fresh output buffer; the output tensors by name. The caller keeps the inputs alive through
        ``self._bound``."""
        import torch

        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise TdeployError(f"{self.engine_path.name} needs input {missing[0]!r} (inputs: {', '.join(self._inputs)})")
        self._bound = []
        for name in self._inputs:
            host = torch.from_numpy(np.ascontiguousarray(feed[name]))
            tensor = host.to(device="cuda", dtype=_torch_dtype(self._trt, self.engine.get_tensor_dtype(name)))
            tensor = tensor.contiguous()
            self._bound.append(tensor)
            lo, _, hi = self.engine.get_tensor_profile_shape(name, 0)
            if why := shape_problem(name, tuple(tensor.shape), tuple(lo), tuple(hi)):
                raise TdeployError(f"{self.engine_path.name}: {why}")
            if not self.context.set_input_shape(name, tuple(tensor.shape)):
                raise TdeployError(f"{self.engine_path.name}: TensorRT refused shape {tuple(tensor.shape)} "
                                   f"for {name}")
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise TdeployError(f"{self.engine_path.name}: output {name} has a data-dependent shape "
                                   f"{shape}, which this runner does not support")
            dtype = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        return outputs

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TdeployError(f"TensorRT failed to run {self.engine_path} (see the TensorRT log above)")

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.cuda.stream(self.stream):  # copies, kernels and read-back on one stream
            outputs = self._bind(feed)
            self._execute()
            host_out = {n: (t.float() if t.dtype == torch.bfloat16 else t).to("cpu", non_blocking=False)
                        for n, t in outputs.items()}
        self.stream.synchronize()
        return {n: t.numpy() for n, t in host_out.items()}

    def device_timer(self, feed: dict[str, np.ndarray]):
        """The engine alone: inputs copied and buffers bound once, CUDA events around execute_async_v3."""
        import torch

        with torch.cuda.stream(self.stream):
            self._bind(feed)
        self.stream.synchronize()
        return cuda_event_timer(self._execute, self.stream)

    def deactivate_impl(self) -> None:
        if self.runtime_cache_path is not None and getattr(self, "_runtime_cache", None) is not None:
            with contextlib.suppress(Exception):  # a cache that cannot be written only costs a recompile
                atomic_write_bytes(self.runtime_cache_path, bytes(memoryview(self._runtime_cache.serialize())))
        self._bound = []
        self.context = None
        self.engine = None
        self.stream = None
        self._runtime = None


def _torch_dtype(trt, trt_dtype):
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.bfloat16: torch.bfloat16,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    if trt_dtype not in table:
        raise TdeployError(f"engine I/O dtype {trt_dtype} is not supported by the tdeploy runner")
    return table[trt_dtype]
