"""Precision passes over an exported FP32 graph: FP16 with FP32 islands, INT8 explicit Q/DQ.

TensorRT 11 has no FP16/INT8 builder flags and no calibrators; TensorRT 10 builds the same graphs as
strongly typed networks. So the precision lives in the ONNX graph, made here and checked on CPU with
ONNX Runtime before any GPU is involved:

- :mod:`.fp16`: FP16 graph, FP32 islands (norms, softmax, reductions, boundary arithmetic), Casts.
- :mod:`.int8`: symmetric INT8 Q/DQ (zero point 0, per-channel weights, per-tensor activations),
  calibrated with ``onnxruntime.quantization`` on :mod:`.calibration`'s data.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from tdeploy.errors import TdeployError

PRECISIONS = ("fp32", "fp16", "int8")
IO_DTYPES = ("fp32", "fp16")


def check_precision_options(options, graphs: dict) -> None:
    """One-line errors for option combinations that cannot work (before anything is exported)."""
    from tdeploy.export.precision.int8 import CALIB_METHODS

    if options.precision not in PRECISIONS:
        raise TdeployError(f"precision {options.precision!r} is not one of {', '.join(PRECISIONS)}")
    if options.io_dtype not in IO_DTYPES:
        raise TdeployError(f"io dtype {options.io_dtype!r} is not one of {', '.join(IO_DTYPES)}")
    if options.io_dtype == "fp16" and options.precision != "fp16":
        raise TdeployError("--io-dtype fp16 needs --precision fp16 (INT8 and FP32 graphs keep FP32 inputs/outputs)")
    if options.precision == "int8":
        if options.calib is None:
            raise TdeployError("--precision int8 needs calibration data: --calib FOLDER (images) or --calib FILE "
                               "(token-id lines)")
        if options.calib_method not in CALIB_METHODS:
            raise TdeployError(f"calibration method {options.calib_method!r} is not one of {', '.join(CALIB_METHODS)}")
        if options.calib_samples < 1:
            raise TdeployError(f"--calib-samples must be >= 1 (got {options.calib_samples})")
    elif options.calib is not None:
        raise TdeployError(f"--calib is for --precision int8 (this export is {options.precision})")


def prepare_calibration(options, graphs: dict) -> dict[str, list]:
    """Calibration feeds per graph for an INT8 export (read and checked before exporting)."""
    if options.precision != "int8":
        return {}
    from tdeploy.export.precision.calibration import calibration_feeds

    return calibration_feeds(graphs, Path(options.calib), options.calib_samples, options.size)


def apply_precision(model: onnx.ModelProto, options, calib_feeds: list | None = None,
                    desc: str = "calibrating") -> tuple[onnx.ModelProto, dict]:
    """The final FP32 graph -> the graph of ``options.precision`` and a report for the sidecar."""
    if options.precision == "fp32":
        return model, {}
    if options.precision == "fp16":
        from tdeploy.export.precision.fp16 import convert_to_fp16

        out, report = convert_to_fp16(model, io_dtype=options.io_dtype)
        return out, report.to_json()
    if options.precision == "int8":
        from tdeploy.export.precision.int8 import Int8Settings, quantize_int8

        if not calib_feeds:
            raise TdeployError("--precision int8 needs calibration data (--calib)")
        settings = Int8Settings(method=options.calib_method, samples=options.calib_samples)
        return quantize_int8(model, calib_feeds, settings, desc=desc)
    raise TdeployError(f"precision {options.precision!r} is not one of {', '.join(PRECISIONS)}")


__all__ = ["IO_DTYPES", "PRECISIONS", "apply_precision", "check_precision_options", "prepare_calibration"]
