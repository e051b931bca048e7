"""Build a small ONNX graph into a datacenter-TensorRT engine with tdeploy's QDP plugins and run it.

For the ``trt``-marked plugin tests (a GPU and datacenter TensorRT): the engine's outputs are compared
by the callers with the PyTorch *reference* backend on CPU, never with the Triton kernel the engine
embeds.
"""

from __future__ import annotations

import onnx
import torch

from tdeploy.tensorrt.logger import make_logger
from tdeploy.tensorrt.network import layer_counts, parse_onnx
from tdeploy.tensorrt.plugins import PluginChoice, register_plugins
from tdeploy.tensorrt.runtimes import find_runtime


def build_qdp_engine(model: onnx.ModelProto, profile: dict[str, tuple]) -> tuple[bytes, dict]:
    """(serialized engine, layer counts) of ``model`` with the QDP plugins; ``profile``: input -> (min, opt, max)."""
    from pathlib import Path

    runtime = find_runtime("tensorrt")
    register_plugins(PluginChoice("qdp"), runtime)
    trt = runtime.module
    logger = make_logger(trt)
    parsed = parse_onnx(runtime, Path("model.onnx"), logger, model_bytes=model.SerializeToString())
    config = parsed.builder.create_builder_config()
    trt_profile = parsed.builder.create_optimization_profile()
    for name, shapes in profile.items():
        trt_profile.set_shape(name, *shapes)
    config.add_optimization_profile(trt_profile)
    data = parsed.builder.build_serialized_network(parsed.network, config)
    assert data is not None, logger.of("error")
    return bytes(memoryview(data)), layer_counts(runtime, parsed.network)


def run_engine(data: bytes, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Run a serialized engine on CUDA tensors (in the engine's input dtypes); its outputs, in engine order."""
    import tensorrt as trt

    logger = make_logger(trt)
    engine = trt.Runtime(logger).deserialize_cuda_engine(data)
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    dtypes = {trt.float32: torch.float32, trt.float16: torch.float16}
    outputs, keep = [], []
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            x = inputs[name].to(device="cuda", dtype=dtypes[engine.get_tensor_dtype(name)]).contiguous()
            keep.append(x)
            context.set_input_shape(name, tuple(x.shape))
            context.set_tensor_address(name, x.data_ptr())
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtypes[engine.get_tensor_dtype(name)],
                              device="cuda")
            outputs.append(out)
            context.set_tensor_address(name, out.data_ptr())
    assert context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    return outputs
