"""ONNX Runtime as a runner; CUDA only when a GPU is actually present."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tdeploy.errors import TdeployError
from tdeploy.runtime.base import Runner

_ORT_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _gpu_present() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def default_providers() -> list[str]:
    """CUDA first where onnxruntime has it and a GPU is visible, else CPU only."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available and _gpu_present():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtRunner(Runner):
    name = "ort"

    def __init__(self, onnx_path: str | Path, threads: int = 0, providers: list[str] | None = None,
                 optimization: str = "all"):
        super().__init__()
        self.path = Path(onnx_path)
        self.threads = threads  # 0: ONNX Runtime's default (one per physical core)
        self.providers = providers
        self.optimization = optimization
        self.session = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # ONNX Runtime's worker threads busy-wait after each run by default; on a machine where
        # PyTorch runs in turn with it (bench interleaves backends) they would steal its cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=self.providers or default_providers())
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise TdeployError(f"ONNX Runtime cannot load {self.path}: {first}") from None

    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        # An FP16-IO graph (export --io-dtype fp16) takes float16: cast float inputs to what it declares.
        dtypes = {i.name: _ORT_FLOAT_TYPES.get(i.type) for i in self.session.get_inputs()}
        feed = {k: np.ascontiguousarray(v.astype(dtypes[k]) if dtypes.get(k) is not None and v.dtype.kind == "f"
                                        else v) for k, v in feed.items()}
        outs = self.session.run(names, feed)
        return dict(zip(names, outs))

    def deactivate_impl(self) -> None:
        self.session = None
