"""FP32 ONNX graph -> INT8 explicit-quantization graph (QuantizeLinear/DequantizeLinear) for TensorRT.

Built on ``onnxruntime.quantization.quantize_static`` in QDQ format with the settings TensorRT's
explicit quantization takes:

- INT8 activations and weights, symmetric (zero point 0 everywhere);
- weights per output channel (MatMul ``[in, out]`` -> axis 1, Gemm ``transB=1`` -> axis 0,
  Conv ``[out, in, kh, kw]`` -> axis 0), activations per tensor;
- biases left FP32 (TensorRT fuses them itself), Q/DQ only on the inputs of the quantized layers.

Which layers are quantized is a policy (:class:`LayerPolicy`), chosen by measurement on trained
models (see docs/precision.md and docs/accuracy.md): weight layers (MatMul/Gemm with a constant
weight, Conv) are quantized; the activation x activation matmuls of attention (q.k^T and
softmax.v), whose per-tensor INT8 costs the most accuracy and little time, and the first layer
(patch embedding / conv_first, which sees raw pixels) and the last layer (classifier head /
conv_last / generator) stay in FP32 by default. Every choice and its reason goes into the sidecar.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from tdeploy.artifact.onnx_file import save_onnx
from tdeploy.errors import TdeployError

QUANTIZABLE = ("MatMul", "Gemm", "Conv", "ConvTranspose")
CALIB_METHODS = ("entropy", "percentile", "max")


@dataclass
class LayerPolicy:
    """Which weight/activation layers get Q/DQ."""

    attention_matmuls: bool = False  # activation x activation MatMul (q.k^T, attn.v)
    first_layer: bool = False  # the first quantizable layer after the graph inputs
    last_layer: bool = False  # quantizable layers whose output reaches a graph output with no layer between
    exclude: tuple[str, ...] = ()  # node names kept FP32 in addition


@dataclass
class Int8Settings:
    method: str = "entropy"  # entropy | percentile | max
    samples: int = 64
    percentile: float = 99.99  # for method="percentile"
    policy: LayerPolicy = field(default_factory=LayerPolicy)


def choose_layers(model: onnx.ModelProto, policy: LayerPolicy) -> tuple[list[str], dict[str, str]]:
    """(names of nodes to quantize, {excluded node name: reason}) under ``policy``."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    consts = inits | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    nodes = list(graph.node)
    # A weight reached through a Transpose/Cast/DequantizeLinear of a constant is still a weight.
    const_like = set(consts)
    for n in nodes:
        if n.op_type in ("Transpose", "Cast", "Reshape", "Identity", "Unsqueeze") and n.input and n.input[0] in const_like:
            const_like.update(n.output)
    layers = [n for n in nodes if n.op_type in QUANTIZABLE]
    # First layer: quantizable nodes not downstream of any other quantizable node.
    downstream: set[str] = set()
    first: set[str] = set()
    for n in nodes:
        upstream_layer = any(i in downstream for i in n.input)
        if n.op_type in QUANTIZABLE:
            if not upstream_layer:
                first.add(n.name)
            downstream.update(n.output)
        elif upstream_layer:
            downstream.update(n.output)
    # Last layer: quantizable nodes from which a graph output is reachable without another layer.
    reaches_out = {o.name for o in graph.output}
    last: set[str] = set()
    for n in reversed(nodes):
        if any(o in reaches_out for o in n.output):
            if n.op_type in QUANTIZABLE:
                last.add(n.name)
            else:
                reaches_out.update(i for i in n.input if i)
    chosen, excluded = [], {}
    for n in layers:
        is_attention = n.op_type == "MatMul" and not any(i in const_like for i in n.input[:2])
        if n.name in policy.exclude:
            excluded[n.name] = "excluded by the caller"
        elif is_attention and not policy.attention_matmuls:
            excluded[n.name] = "attention matmul (activation x activation): per-tensor INT8 on q.k^T / softmax.v"
        elif n.name in first and not policy.first_layer:
            excluded[n.name] = "first layer (sees the raw input: patch embedding / conv_first / embedding)"
        elif n.name in last and not policy.last_layer:
            excluded[n.name] = "last layer (logits / output pixels)"
        else:
            chosen.append(n.name)
    return chosen, excluded


def quantize_int8(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], settings: Int8Settings,
                  desc: str = "calibrating", progress: bool = True) -> tuple[onnx.ModelProto, dict]:
    """Calibrate on ``feeds`` and return (the Q/DQ model, a report for the sidecar)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from tdeploy.export.precision.calibration import FeedReader

    if settings.method not in CALIB_METHODS:
        raise TdeployError(f"calibration method {settings.method!r} is not one of {', '.join(CALIB_METHODS)}")
    if not feeds:
        raise TdeployError("no calibration samples")
    chosen, excluded = choose_layers(model, settings.policy)
    if not chosen:
        raise TdeployError("INT8: no layer is left to quantize under the layer policy")

    class Reader(FeedReader, CalibrationDataReader):
        pass

    method = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
              "max": CalibrationMethod.MinMax}[settings.method]
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,  # TensorRT takes FP32 biases and fuses them
        "CalibTensorRangeSymmetric": True,
        "CalibPercentile": settings.percentile,
        "DedicatedQDQPair": False,
        # Q/DQ on layer inputs only: TensorRT fuses input Q/DQ into the INT8 kernel and runs the
        # bias/residual after it in higher precision; an output Q/DQ would only add rounding.
        "OpTypesToExcludeOutputQuantization": list(QUANTIZABLE),
    }
    with tempfile.TemporaryDirectory(prefix="tdeploy-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        large = save_onnx(model, src) is not None  # past 2 GiB: weights beside it, in and out
        logger = logging.getLogger()
        level = logger.level
        logger.setLevel(logging.ERROR)  # the quantizer logs a warning per tensor it skips
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                quantize_static(
                    str(src), str(dst), Reader(feeds, desc, progress), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZABLE), nodes_to_quantize=chosen, per_channel=True,
                    reduce_range=False, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=method, extra_options=extra, use_external_data_format=large,
                )
        except TdeployError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise TdeployError(f"INT8 calibration failed: {first}") from exc
        finally:
            logger.setLevel(level)
        out = onnx.load(str(dst))
    # The quantizer drops nothing we need, but keep the original producer and local functions.
    out.producer_name, out.producer_version = model.producer_name, model.producer_version
    present = {(f.domain, f.name) for f in out.functions}
    out.functions.extend(f for f in model.functions if (f.domain, f.name) not in present)
    check_qdq(out)
    report = {
        "pass": "onnxruntime.quantization.quantize_static (QDQ, symmetric int8, per-channel weights)",
        "calibration": {"method": settings.method, "samples": len(feeds),
                        **({"percentile": settings.percentile} if settings.method == "percentile" else {})},
        "quantized_layers": chosen,
        "excluded_layers": excluded,
        "policy": {"attention_matmuls": settings.policy.attention_matmuls,
                   "first_layer": settings.policy.first_layer, "last_layer": settings.policy.last_layer},
    }
    return out, report


def check_qdq(model: onnx.ModelProto) -> dict[str, int]:
    """Raise unless every Q/DQ is INT8 with zero point 0; return counts of Q, DQ, per-channel DQ."""
    inits = {i.name: i for i in model.graph.initializer}
    counts = {"QuantizeLinear": 0, "DequantizeLinear": 0, "per_channel": 0}
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        counts[n.op_type] += 1
        if len(n.input) < 3 or n.input[2] not in inits:
            raise TdeployError(f"{n.name}: Q/DQ without a constant zero point")
        zp = numpy_helper.to_array(inits[n.input[2]])
        if zp.dtype != np.int8 or np.any(zp != 0):
            raise TdeployError(f"{n.name}: zero point must be int8 0 for TensorRT (got {zp.dtype} {zp.ravel()[:3]})")
        scale = numpy_helper.to_array(inits[n.input[1]])
        if scale.size > 1:
            counts["per_channel"] += 1
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise TdeployError(f"{n.name}: non-positive or non-finite scale")
    return counts
