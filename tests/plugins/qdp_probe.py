"""Run TensorRT's own Python plugin code (``tensorrt.plugin``, from a ``tensorrt-cu12-bindings`` wheel) on
tdeploy's QDP plugins, as far as it can run without datacenter TensorRT's libraries.

    python -m tests.plugins.qdp_probe PLUGIN_DIR VERSION CASES_JSON [--module=NAME=FILE ...]

PLUGIN_DIR is the wheel's ``tensorrt_bindings/plugin`` folder: TensorRT's ``_validate.py`` (which
accepts or rejects a registration), ``_lib.py`` (how ONNX attributes become a plugin's attributes),
``_plugin_class.py`` (the AOT plugin TensorRT builds with) and ``_tensor.py`` (ShapeExpr, launch
parameters). That code needs a ``tensorrt`` module; the real one is a TensorRT-RTX binding
(``tensorrt_rtx``: the same Python API, and its plugin registry and shape machinery run on CPU), under
the wheel's version number. Three names of datacenter TensorRT's AOT path are not in TensorRT-RTX and
are given as plain stand-ins that the checked code only subclasses or compares: ``ISymExpr``,
``IPluginV3QuickAOTBuild`` (base classes) and ``QuickPluginCreationRequest`` (an enum, with the
enumerators datacenter TensorRT's ``tensorrt.so`` lists). Nothing here builds an engine.

For each case the probe: registers tdeploy's plugin through ``tensorrt.plugin`` (its validation);
creates it through TensorRT's creator from fields made as TensorRT's ONNX parser makes them (INT ->
kINT32, FLOAT -> kFLOAT32, length-1 arrays); then, inside the shape calculation of a TensorRT-RTX
network (which provides a real ``IExprBuilder``), calls the plugin's output types and shapes, its
format combinations and its ``get_launch_params``, i.e. tdeploy's ``aot_impl``, which compiles the PTX,
and evaluates the launch grid, block, shared memory and extra arguments. One JSON line per case on stdout.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import sys
import traceback
import types
from pathlib import Path

import numpy as np
import onnx

AOT_ONLY_NAMES = ("ISymExpr", "IPluginV3QuickAOTBuild", "QuickPluginCreationRequest")


def install_tensorrt(plugin_dir: Path, version: str) -> types.ModuleType:
    """``tensorrt`` = TensorRT-RTX's binding + the AOT-only stand-ins; ``tensorrt.plugin`` = the wheel's code."""
    import tensorrt_rtx as rtx

    trt = types.ModuleType("tensorrt")
    trt.__dict__.update({k: getattr(rtx, k) for k in dir(rtx) if not k.startswith("__")})
    trt.__version__ = version
    trt.__path__ = []  # a package, so that `import tensorrt.plugin` resolves below

    class ISymExpr:  # noqa: N801 - TensorRT's names
        def __init__(self):
            pass

    class IPluginV3QuickAOTBuild:  # noqa: N801
        def __init__(self):
            pass

    class QuickPluginCreationRequest(enum.IntEnum):
        UNKNOWN = 0
        PREFER_JIT = 1
        PREFER_AOT = 2
        STRICT_JIT = 3
        STRICT_AOT = 4

    for cls in (ISymExpr, IPluginV3QuickAOTBuild, QuickPluginCreationRequest):
        assert not hasattr(rtx, cls.__name__), cls.__name__  # only what TensorRT-RTX lacks
        setattr(trt, cls.__name__, cls)
    sys.modules["tensorrt"] = trt
    spec = importlib.util.spec_from_file_location("tensorrt.plugin", plugin_dir / "__init__.py",
                                                  submodule_search_locations=[str(plugin_dir)])
    plugin = importlib.util.module_from_spec(spec)
    sys.modules["tensorrt.plugin"] = plugin
    trt.plugin = plugin
    spec.loader.exec_module(plugin)
    return trt


def load_module(name: str, path: Path) -> types.ModuleType:
    """A tdeploy module from another file (a copy with a defect put back), under its own name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parser_fields(trt, creator, attributes: dict):
    """A PluginFieldCollection as TensorRT's ONNX parser fills it (onnx-tensorrt's ``loadFields``): for each
    field the creator lists, the node's attribute, typed by the ONNX attribute (INT -> a kINT32 array of
    length 1, FLOAT -> kFLOAT32) whatever type the creator declared. Returns (collection, arrays): a
    PluginField points into its array without holding it, so the caller keeps ``arrays`` alive."""
    fields, arrays = [], []
    for f in creator.field_names:
        value = attributes[f.name]
        if isinstance(value, int):
            arrays.append(np.array([value], np.int32))
            kind = trt.PluginFieldType.INT32
        else:
            arrays.append(np.array([value], np.float32))
            kind = trt.PluginFieldType.FLOAT32
        fields.append(trt.PluginField(f.name, arrays[-1], kind))
    return trt.PluginFieldCollection(fields), arrays


def _value(expr):
    """An IDimensionExpr (or SymExprImpl) -> int when constant, else None."""
    expr = getattr(expr, "expr", expr)
    if hasattr(expr, "_expr"):
        expr = expr._expr
    if isinstance(expr, int):
        return expr
    return int(expr.get_constant_value()) if expr.is_constant() else None


class _SymExprSetter:
    """What ``get_launch_params`` writes the extra arguments into."""

    def __init__(self):
        self.nbSymExprs = 0
        self.items = {}

    def __setitem__(self, index, value):
        self.items[index] = value


def drive(trt, plugin, case: dict) -> dict:
    """Shape calculation, format combinations and launch parameters of ``plugin``, inside a TensorRT-RTX
    network's shape inference (the only place an IExprBuilder exists on CPU)."""
    result: dict = {}
    dtype = {"float32": trt.float32, "float16": trt.float16, "bfloat16": trt.bfloat16}[case["dtype"]]

    class Driver(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        def __init__(self):
            trt.IPluginV3.__init__(self)
            trt.IPluginV3OneCore.__init__(self)
            trt.IPluginV3OneBuild.__init__(self)
            trt.IPluginV3OneRuntime.__init__(self)
            self.plugin_name, self.plugin_namespace, self.plugin_version = "QdpDriver", "tdeploy_probe", "1"
            self.num_outputs = 1

        def get_capability_interface(self, kind):
            return self

        def get_output_data_types(self, input_types):
            return plugin.get_output_data_types(input_types, [len(s) for s in case["inputs"]])

        def get_output_shapes(self, inputs, shape_inputs, builder):
            try:
                out = plugin.get_output_shapes(inputs, shape_inputs, builder)
                result["output_shape"] = [_value(d) for d in out[0]]
                in_out = []
                for shape in [*case["inputs"], result["output_shape"]]:
                    desc = trt.DynamicPluginTensorDesc()
                    desc.desc.dims = trt.Dims(shape)
                    desc.desc.type = dtype
                    desc.desc.format = trt.TensorFormat.LINEAR
                    desc.min, desc.opt, desc.max = trt.Dims(shape), trt.Dims(shape), trt.Dims(shape)
                    in_out.append(desc)
                combos = plugin.get_supported_format_combinations(in_out, len(case["inputs"]))
                result["format_combinations"] = len(combos) // len(in_out)
                plugin.configure_plugin(in_out[: len(case["inputs"])], in_out[len(case["inputs"]):])
                plugin.set_tactic(0)
                launch, setter = types.SimpleNamespace(), _SymExprSetter()
                plugin.get_launch_params(inputs, in_out, len(case["inputs"]), launch, setter, builder)
                result["launch"] = {k: _value(getattr(launch, k)) for k in
                                    ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")}
                result["extra_args"] = [_value(setter.items[i]) for i in range(setter.nbSymExprs)]
                name, ptx = next(iter(plugin.kernel_map.values()))
                text = lambda v: v if isinstance(v, str) else bytes(v).decode()  # noqa: E731
                result["kernel"] = {"name": text(name), "ptx": text(ptx)}
                return out
            except Exception as exc:  # noqa: BLE001 - reported to the test, which names the stage
                result["error"] = {"stage": "launch", "type": type(exc).__name__, "message": str(exc),
                                   "traceback": traceback.format_exc(limit=6)}
                return [trt.DimsExprs(inputs[0])]

        def supports_format_combination(self, pos, in_out, num_inputs):
            return True

        def configure_plugin(self, inp, out):
            pass

        def get_workspace_size(self, inp, out):
            return 0

        def get_valid_tactics(self):
            return []

        def on_shape_change(self, inp, out):
            pass

        def attach_to_context(self, context):
            return self.clone()

        def get_fields_to_serialize(self):
            return trt.PluginFieldCollection([])

        def enqueue(self, *args):
            raise RuntimeError("the probe runs nothing")

        def clone(self):  # TensorRT owns (and deletes) what clone returns: a new object every time
            twin = Driver()
            twin.__dict__.update(self.__dict__)
            return twin

    class DriverCreator(trt.IPluginCreatorV3One):
        def __init__(self):
            trt.IPluginCreatorV3One.__init__(self)
            self.name, self.plugin_namespace, self.plugin_version = "QdpDriver", "tdeploy_probe", "1"
            self.field_names = trt.PluginFieldCollection([])

        def create_plugin(self, name, fc, phase):
            return Driver()

    # TensorRT-RTX's Python API has no add_plugin_v3: the driver enters the network through the ONNX parser.
    from tdeploy.tensorrt.runtimes import ensure_rtx_plugin_loader

    ensure_rtx_plugin_loader()
    creator = DriverCreator()
    trt.get_plugin_registry().register_creator(creator, "tdeploy_probe")
    elem = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16,
            "bfloat16": onnx.TensorProto.BFLOAT16}[case["dtype"]]
    names = [f"in{i}" for i in range(len(case["inputs"]))]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("QdpDriver", names, ["out"], domain="tdeploy_probe", plugin_namespace="tdeploy_probe")],
        "probe", [onnx.helper.make_tensor_value_info(n, elem, s) for n, s in zip(names, case["inputs"])],
        [onnx.helper.make_tensor_value_info("out", elem, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                         onnx.helper.make_opsetid("tdeploy_probe", 1)])
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), "probe.onnx") and "error" not in result:
        result["error"] = {"stage": "parse", "type": "ParserError",
                           "message": "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))}
    trt.get_plugin_registry().deregister_creator(creator)
    return result


def run_case(trt, case: dict) -> dict:
    from tensorrt.plugin import _lib

    out = {"case": case["id"]}
    try:
        module = sys.modules[case["module"]]
        module.register()
    except Exception as exc:  # noqa: BLE001
        return {**out, "error": {"stage": "register", "type": type(exc).__name__, "message": str(exc)}}
    name = module.PLUGIN_ID.split("::")[1]
    # TensorRT's own table of the creators it registered (keyed name::namespace up to 11.0, then reversed)
    creator = _lib.QDP_CREATORS.get(f"{name}::tdeploy") or _lib.QDP_CREATORS[f"tdeploy::{name}"]
    try:
        fields, _arrays = parser_fields(trt, creator, case["attributes"])
        plugin = creator.create_plugin(name, "tdeploy", fields, trt.TensorRTPhase.BUILD,
                                       trt.QuickPluginCreationRequest.STRICT_AOT)
    except Exception as exc:  # noqa: BLE001
        return {**out, "error": {"stage": "create", "type": type(exc).__name__, "message": str(exc)}}
    return {**out, **drive(trt, plugin, case)}


def main(argv: list[str]) -> None:
    plugin_dir, version, cases_file, *rest = argv
    trt = install_tensorrt(Path(plugin_dir), version)
    from tdeploy.plugins.qdp import set_target

    set_target(90)  # sm_90 (H100/H200) PTX: what a datacenter build compiles for
    replacements = dict(item.removeprefix("--module=").split("=", 1) for item in rest)
    for name, path in replacements.items():
        load_module(name, Path(path))
    for case in json.loads(Path(cases_file).read_text()):
        importlib.import_module(case["module"])  # the tdeploy module, unless replaced above
        print(json.dumps(run_case(trt, case)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
