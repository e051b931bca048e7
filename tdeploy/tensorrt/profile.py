"""The optimization profile of an engine: (min, opt, max) shapes of every input.

Derived from the sidecar's dynamic axes and ``--shapes`` overrides; pure Python, tested on CPU.
"""

from __future__ import annotations

from typing import Any

from tdeploy.artifact.sidecar import Sidecar
from tdeploy.artifact.spec import ExportSpec, InputSpec
from tdeploy.errors import TdeployError

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max)


def profile_to_json(profile: Profile) -> dict[str, dict[str, list[int]]]:
    return {
        name: {"min": [int(d) for d in mn], "opt": [int(d) for d in op], "max": [int(d) for d in mx]}
        for name, (mn, op, mx) in profile.items()
    }


def profile_from_json(data: dict[str, Any]) -> Profile:
    return {name: (tuple(v["min"]), tuple(v["opt"]), tuple(v["max"])) for name, v in data.items()}

# Default upper bounds of the profile (a user widens them with --shapes).
DEFAULT_MAX_BATCH = 32
IMAGE_MAX_FACTOR = 2  # height/width up to 2x the export size
SEQUENCE_MAX_FACTOR = 4  # token/cache lengths up to 4x the export length ...
SEQUENCE_MIN_MAX = 128  # ... and at least this
# The exporter's own bounds (torch.export Dims): the ONNX graph promises nothing beyond them.
MAX_IMAGE_SIDE = 4096
MAX_OTHER_DIM = 65536
IMAGE_AXES = ("height", "width")
SHAPES_EXAMPLE = "pixel_values:1x3x224x224/8x3x224x224/32x3x384x384"


# --- the optimization profile --------------------------------------------------------------------------
def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def _axis_bounds(spec: ExportSpec, name: str) -> tuple[int, int] | None:
    """A family may pin an axis' range in ``spec.extra["axis_bounds"] = {"src_len": [1, 512]}``."""
    bounds = (spec.extra or {}).get("axis_bounds", {}).get(name)
    return (int(bounds[0]), int(bounds[1])) if bounds else None


def _is_dynamic(sidecar: Sidecar, axis_name: str) -> bool:
    if axis_name == "batch":
        return sidecar.dynamic_batch
    if axis_name in IMAGE_AXES:
        return sidecar.dynamic_size
    return True


def default_axis_range(sidecar: Sidecar, spec: ExportSpec, axis_name: str, example: int) -> tuple[int, int, int]:
    """(min, opt, max) of one named axis; opt is always the export (example) size."""
    if not _is_dynamic(sidecar, axis_name):
        return example, example, example
    bounds = _axis_bounds(spec, axis_name)
    if axis_name == "batch":
        lo, hi = 1, max(DEFAULT_MAX_BATCH, example)
    elif axis_name in IMAGE_AXES:
        m = max(1, spec.size_multiple)
        lo = _round_up(max(1, spec.min_size), m)
        hi = max(example, min(_round_up(IMAGE_MAX_FACTOR * example, m), _round_down(MAX_IMAGE_SIDE, m)))
    else:  # token / sequence / cache lengths (the exporter's Dims start at 1)
        lo, hi = 1, min(MAX_OTHER_DIM, max(SEQUENCE_MAX_FACTOR * example, SEQUENCE_MIN_MAX))
        extra = spec.extra or {}
        if ("cache" in axis_name or "past" in axis_name) and isinstance(extra.get("max_new_tokens"), int):
            hi = max(hi, extra["max_new_tokens"] + 1)  # a KV cache grows by one slot per generated token
        if isinstance(extra.get("max_len"), int):  # e.g. the positional table's length
            hi = min(hi, extra["max_len"])
    if bounds is not None:
        lo, hi = bounds
    return min(lo, example), example, max(hi, example)


def _axis_table(sidecar: Sidecar, spec: ExportSpec) -> dict[str, tuple[int, int, int]]:
    table: dict[str, tuple[int, int, int]] = {}
    for inp in spec.inputs:
        for axis, name in inp.dynamic_axes().items():
            if name not in table:
                table[name] = default_axis_range(sidecar, spec, name, int(inp.example[axis]))
    return table


def _shape_of(inp: InputSpec, table: dict[str, tuple[int, int, int]], which: int) -> Shape:
    return tuple(table[d][which] if isinstance(d, str) else int(d) for d in inp.shape)


def parse_shape_override(text: str) -> tuple[str | None, str, tuple[Shape, Shape, Shape]]:
    """``[graph:]input:MIN/OPT/MAX`` (or one shape for all three) -> (graph, input, shapes)."""
    usage = f"--shapes {text!r}: write input:min/opt/max with shapes like 1x3x224x224, e.g. {SHAPES_EXAMPLE}"
    parts = text.strip().split(":")
    if len(parts) == 2:
        graph, name, body = None, parts[0], parts[1]
    elif len(parts) == 3:
        graph, name, body = parts
    else:
        raise TdeployError(usage)
    name = name.strip()
    shapes_text = [s.strip() for s in body.split("/")]
    if not name or len(shapes_text) not in (1, 3):
        raise TdeployError(usage)
    shapes = []
    for s in shapes_text:
        try:
            dims = tuple(int(d) for d in s.lower().replace("*", "x").split("x"))
        except ValueError:
            raise TdeployError(usage) from None
        if not dims or min(dims) < 1:
            raise TdeployError(f"--shapes {text!r}: every dimension must be a positive integer")
        shapes.append(dims)
    if len(shapes) == 1:
        shapes *= 3
    return (graph.strip() if graph else None), name, (shapes[0], shapes[1], shapes[2])


def _check_override(sidecar: Sidecar, spec: ExportSpec, inp: InputSpec, text: str,
                    shapes: tuple[Shape, Shape, Shape]) -> None:
    mn, op, mx = shapes
    rank = len(inp.shape)
    if any(len(s) != rank for s in shapes):
        raise TdeployError(
            f"--shapes {text!r}: {inp.name} has {rank} dimensions {_pretty(inp.shape)}, "
            f"got {'/'.join(str(len(s)) for s in shapes)}"
        )
    for axis, dim in enumerate(inp.shape):
        values = (mn[axis], op[axis], mx[axis])
        if isinstance(dim, int) or not _is_dynamic(sidecar, dim):
            fixed = dim if isinstance(dim, int) else int(inp.example[axis])
            if any(v != fixed for v in values):
                why = "" if isinstance(dim, int) else f" (the artifact was exported with a static {dim}; re-export dynamic)"
                raise TdeployError(
                    f"--shapes {text!r}: axis {axis} of {inp.name} ({dim}) is fixed at {fixed}{why}"
                )
            continue
        if not values[0] <= values[1] <= values[2]:
            raise TdeployError(f"--shapes {text!r}: axis {axis} of {inp.name} ({dim}) needs min <= opt <= max, "
                               f"got {values[0]}/{values[1]}/{values[2]}")
        if dim in IMAGE_AXES:
            m, lo = max(1, spec.size_multiple), spec.min_size
            bad = [v for v in values if v % m or v < lo]
            if bad:
                raise TdeployError(f"--shapes {text!r}: {dim} {bad[0]} of {inp.name} is not supported: it must be a "
                                   f"multiple of {m} >= {max(lo, m)}")
            if values[2] > MAX_IMAGE_SIDE:
                raise TdeployError(f"--shapes {text!r}: {dim} {values[2]} is above the {MAX_IMAGE_SIDE} the exported "
                                   "graph allows")
        elif values[2] > MAX_OTHER_DIM:
            raise TdeployError(f"--shapes {text!r}: {dim} {values[2]} is above the {MAX_OTHER_DIM} the exported "
                               "graph allows")


def _pretty(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def derive_profile(sidecar: Sidecar, overrides: list[str] | tuple[str, ...] = (), *,
                   graph: str | None = None) -> Profile:
    """input name -> (min, opt, max) shapes of one graph's optimization profile.

    Defaults come from the spec in the sidecar: batch 1 / example / 32; height and width from
    ``min_size`` (rounded up to ``size_multiple``) / example / 2x example; other named axes (tokens,
    cache lengths) 1 / example / max(4x example, 128), unless the spec pins them in
    ``extra["axis_bounds"]``; fixed axes, and axes the artifact was exported static, are fixed.
    Sequence axes are capped by ``extra["max_len"]``; cache axes reach ``extra["max_new_tokens"] + 1``.
    Overrides (``--shapes``, ``[graph:]input:min/opt/max``) replace whole inputs; a named axis
    (``batch``, ``src_len``) takes the overridden range in every input and graph that has it, and two
    overrides that disagree on it are refused.
    """
    graph = graph or next((g for g, info in sidecar.graphs.items() if info is sidecar.main), "model")
    if graph not in sidecar.graphs:
        raise TdeployError(f"no graph {graph!r} in this artifact (it has {', '.join(sidecar.graphs)})")
    specs = {g: info.export_spec() for g, info in sidecar.graphs.items()}
    spec = specs[graph]
    table = _axis_table(sidecar, spec)

    # Named axes mean the same thing in every graph (the encoder's src_len is the decoder's), so an
    # override of one input sets its named axes for the whole artifact.
    axis_source: dict[str, tuple[str, tuple[int, int, int]]] = {}
    for text in overrides:
        target_graph, name, shapes = parse_shape_override(text)
        if target_graph is not None and target_graph not in specs:
            raise TdeployError(f"--shapes {text!r}: no graph {target_graph!r} (this artifact has {', '.join(specs)})")
        owners = [g for g in ([target_graph] if target_graph else specs) if any(i.name == name for i in specs[g].inputs)]
        if not owners:
            names = [i.name for g in ([target_graph] if target_graph else specs) for i in specs[g].inputs]
            raise TdeployError(f"--shapes {text!r}: no input {name!r} (inputs: {', '.join(dict.fromkeys(names))})")
        for owner in owners:
            inp = specs[owner].input(name)
            _check_override(sidecar, specs[owner], inp, text, shapes)
            for axis, dim in enumerate(inp.shape):
                if not isinstance(dim, str):
                    continue
                rng = (shapes[0][axis], shapes[1][axis], shapes[2][axis])
                if dim in axis_source and axis_source[dim][1] != rng:
                    other, prev = axis_source[dim]
                    raise TdeployError(
                        f"--shapes: axis {dim!r} is {'/'.join(map(str, prev))} for {other} but "
                        f"{'/'.join(map(str, rng))} for {name}; inputs sharing an axis need the same range"
                    )
                axis_source[dim] = (name, rng)
    for dim, (_, rng) in axis_source.items():
        if dim in table:
            table[dim] = rng
    return {inp.name: (_shape_of(inp, table, 0), _shape_of(inp, table, 1), _shape_of(inp, table, 2))
            for inp in spec.inputs}


def format_profile(profile: Profile) -> str:
    """One line: ``pixel_values 1x3x16x16/1x3x224x224/32x3x448x448; ...``."""
    fmt = lambda s: "x".join(str(d) for d in s)
    return "; ".join(f"{n} {fmt(a)}/{fmt(b)}/{fmt(c)}" for n, (a, b, c) in profile.items())


