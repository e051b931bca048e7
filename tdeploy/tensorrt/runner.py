"""TensorRT engines as a runner (tensorrt is imported lazily, on activation).

Activation, in order: TensorRT and a GPU are there; the engine's sidecar (``<engine>.json``, written
by ``deploy build-engine``) says it was built for this GPU's compute capability and this TensorRT
version (a one-line refusal otherwise, instead of a failed deserialization); tdeploy's plugins are
registered; the engine is deserialized. Inference uses torch CUDA tensors as device buffers, all on
one CUDA stream, and ``execute_async_v3`` (TensorRT 10+/11).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdeploy.errors import BackendUnavailable, TdeployError
from tdeploy.runtime.base import Runner
from tdeploy.tensorrt.runtimes import gpu_identity, gpu_problem, import_tensorrt
from tdeploy.tensorrt.sidecar import check_engine_compatible, load_engine_sidecar


def shape_problem(name: str, shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> str | None:
    """None when ``shape`` lies within the engine's profile [lo, hi], else a one-line reason."""
    fmt = lambda s: "x".join(str(int(d)) for d in s)
    if len(shape) != len(lo) or any(not (a <= d <= b) for d, a, b in zip(shape, lo, hi)):
        return (f"input {name} of shape {fmt(shape)} is outside the engine's profile {fmt(lo)} .. {fmt(hi)}; "
                f"rebuild with deploy build-engine --shapes {name}:MIN/OPT/MAX")
    return None


class TrtRunner(Runner):
    name = "trt"

    def __init__(self, engine_path: str | Path, outputs: list[str] | None = None):
        super().__init__()
        self.engine_path = Path(engine_path)
        self.output_order = list(outputs) if outputs else None  # the spec's order (engine order otherwise)
        self.engine = None
        self.context = None
        self.stream = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []

    @classmethod
    def for_artifact(cls, artifact, graph: str = "model") -> TrtRunner:
        spec = artifact.sidecar.graphs[graph].export_spec()
        multi = len(artifact.sidecar.graphs) > 1
        if artifact.engine is not None:
            if not multi:
                return cls(artifact.engine, list(spec.outputs))
            sibling = artifact.engine.parent / f"{graph}.engine"  # encoder.engine + decoder.engine
            if sibling.is_file():
                return cls(sibling, list(spec.outputs))
            raise TdeployError(f"no {sibling.name} beside {artifact.engine}: this artifact has one engine per graph "
                               f"({', '.join(artifact.sidecar.graphs)}); build them with `deploy build-engine`")
        exact = artifact.root / f"{graph}.engine"
        candidates = [exact] if exact.is_file() else sorted(artifact.root.glob(f"{graph}*.engine"))
        if not candidates:
            raise TdeployError(
                f"no TensorRT engine for {graph} in {artifact.root}: build one with "
                f"`deploy build-engine {artifact.root}` or pass the engine file as ARTIFACT"
            )
        return cls(candidates[-1], list(spec.outputs))

    def activate_impl(self) -> None:
        trt = import_tensorrt()
        if problem := gpu_problem():
            raise BackendUnavailable(f"TensorRT needs an NVIDIA GPU: {problem}")
        if not self.engine_path.is_file():
            raise TdeployError(f"engine not found: {self.engine_path}; build it with deploy build-engine")
        sidecar = load_engine_sidecar(self.engine_path)
        gpu_name, cc = gpu_identity()
        if why := check_engine_compatible(sidecar, trt.__version__, gpu_name, cc):
            raise TdeployError(f"{self.engine_path.name}: {why}")
        import torch

        from tdeploy.plugins.registry import plugin_ops

        for op in plugin_ops():  # harmless for AOT engines; needed if an engine embeds a JIT plugin
            op.register_trt()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise TdeployError(
                f"TensorRT could not load {self.engine_path} (see the TensorRT log above); rebuild it here with "
                "deploy build-engine"
            )
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

    def input_names(self) -> list[str]:
        return list(self._inputs)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise TdeployError(f"{self.engine_path.name} needs input {missing[0]!r} (inputs: {', '.join(self._inputs)})")
        keep = []
        with torch.cuda.stream(self.stream):  # copies, kernels and read-back on one stream
            for name in self._inputs:
                host = torch.from_numpy(np.ascontiguousarray(feed[name]))
                tensor = host.to(device="cuda", dtype=_torch_dtype(self.engine.get_tensor_dtype(name)))
                tensor = tensor.contiguous()
                keep.append(tensor)
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
                dtype = _torch_dtype(self.engine.get_tensor_dtype(name))
                outputs[name] = torch.empty(shape, dtype=dtype, device="cuda")
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise TdeployError(f"TensorRT failed to run {self.engine_path} (see the TensorRT log above)")
            host_out = {n: (t.float() if t.dtype == torch.bfloat16 else t).to("cpu", non_blocking=False)
                        for n, t in outputs.items()}
        self.stream.synchronize()
        return {n: t.numpy() for n, t in host_out.items()}

    def deactivate_impl(self) -> None:
        self.context = None
        self.engine = None
        self.stream = None
        self._runtime = None


def _torch_dtype(trt_dtype):
    import tensorrt as trt
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
