"""tdeploy's QDP plugins through TensorRT's own ``tensorrt.plugin`` code, every supported release (10.9 ... 11.4).

``qdp_probe.py`` says how: TensorRT's pure-Python plugin package from each ``tensorrt-cu12-bindings``
wheel (the code that accepts or rejects a registration, turns ONNX attributes into plugin attributes
and evaluates the AOT launch), on TensorRT-RTX's binding of the same API. The wheels are downloaded by
``make test`` (``make qdp-wheels``). For the configurations the models produce, the check registers
each plugin, creates it from parser-made fields, and evaluates its output shape, launch grid, block,
shared memory and extra arguments against the PyTorch launcher's. It is also run on copies of the
plugin modules with each of four known defects put back, and must fail on every one.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tdeploy.plugins.qdp import AOT_SHARED_LIMIT

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                       reason="the probe runs TensorRT's plugin code on TensorRT-RTX's binding (tensorrt-rtx-cu12)"),
    pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="aot_impl compiles PTX with triton"),
]

VERSIONS = ("10.9.0.34", "10.13.3.9", "10.16.1.11", "11.0.0.114", "11.4.0.106")
WHEELS = Path(sys.prefix) / "qdp-wheels"
ROOT = Path(__file__).resolve().parents[2]
WA = "tdeploy.plugins.window_attention.trt"
NA = "tdeploy.plugins.neighborhood_attention.trt"


def wa_case(id_, dtype, windows, n, heads, head_dim, n_win):
    """(B*nW, N, 3C) qkv, (heads, N, N) bias, (nW, N, N) mask or the (1, 1, 1) no-mask sentinel."""
    c = heads * head_dim
    mask = [n_win, n, n] if n_win else [1, 1, 1]
    return {"id": id_, "module": WA, "dtype": dtype, "attributes": {"num_heads": heads, "scale": head_dim**-0.5},
            "inputs": [[windows, n, 3 * c], [heads, n, n], mask]}


def na_case(id_, dtype, b, h, w, heads, head_dim, k, d):
    c = heads * head_dim
    return {"id": id_, "module": NA, "dtype": dtype,
            "attributes": {"num_heads": heads, "kernel_size": k, "dilation": d, "scale": head_dim**-0.5},
            "inputs": [[b, h, w, 3 * c], [heads, 2 * k - 1, 2 * k - 1]]}


# What the registered variants feed the plugins (batch 2 at the training size), plus the configurations
# whose launcher tiling needs more than 48 KiB of shared memory (they must be re-tiled).
CASES = [
    wa_case("swin-t stage 1, shifted (fp32)", "float32", 2 * 64, 49, 3, 32, 64),
    wa_case("swin-t stage 4, no shift (fp16)", "float16", 2 * 1, 49, 24, 32, 0),
    wa_case("swinir-classical, shifted 8x8 (fp16)", "float16", 2 * 36, 64, 6, 30, 36),
    wa_case("swin-b-384 window 12 (fp32)", "float32", 2 * 16, 144, 4, 32, 16),
    wa_case("head_dim 64, window 12 (fp32)", "float32", 2, 144, 2, 64, 0),
    wa_case("swin-t stage 2, shifted (bf16)", "bfloat16", 2 * 16, 49, 6, 32, 16),
    na_case("nat-mini level 1 (fp16)", "float16", 2, 56, 56, 2, 32, 7, 1),
    na_case("dinat-mini level 1, dilation 8 (fp32)", "float32", 2, 56, 56, 2, 32, 7, 8),
    na_case("dinat level 3, small map (fp16)", "float16", 2, 14, 14, 8, 32, 7, 2),
    na_case("head_dim 64 (fp32)", "float32", 1, 20, 24, 2, 64, 7, 1),
    na_case("nat-mini level 2 (bf16)", "bfloat16", 2, 28, 28, 4, 32, 7, 1),
]


@pytest.fixture(scope="session")
def plugin_dirs(tmp_path_factory) -> dict[str, Path]:
    """version -> the wheel's tensorrt_bindings/plugin folder, extracted (the wheels: make qdp-wheels)."""
    missing = [v for v in VERSIONS if not list(WHEELS.glob(f"tensorrt_cu12_bindings-{v}-*.whl"))]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEELS),
               *[f"tensorrt-cu12-bindings=={v}" for v in missing]]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            pytest.fail(f"tensorrt-cu12-bindings {', '.join(missing)} are not in {WHEELS} and could not be "
                        "downloaded: run `make qdp-wheels`")
    out = {}
    root = tmp_path_factory.mktemp("qdp")
    for version in VERSIONS:
        wheel = next(WHEELS.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith("tensorrt_bindings/plugin/") and name.endswith(".py"):
                    zf.extract(name, root / version)
        out[version] = root / version / "tensorrt_bindings" / "plugin"
    return out


def probe(plugin_dir: Path, version: str, cases: list[dict], tmp_path: Path, modules: dict | None = None) -> dict:
    """Run the probe in a fresh interpreter (TensorRT's module state is global): case id -> result."""
    cases_file = tmp_path / f"cases-{version}.json"
    cases_file.write_text(json.dumps(cases))
    cmd = [sys.executable, "-m", "tests.plugins.qdp_probe", str(plugin_dir), version, str(cases_file),
           *[f"--module={name}={path}" for name, path in (modules or {}).items()]]
    env = {k: v for k, v in __import__("os").environ.items() if k != "TRITON_INTERPRET"}  # real PTX compiles
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(results) == len(cases), proc.stderr[-3000:]
    return {r["case"]: r for r in results}


def expected_launch(case: dict) -> dict:
    """What the PyTorch launchers (triton.py) use for the same shapes: output shape, grid, extra args."""
    import triton

    (x, *_), attrs = case["inputs"], case["attributes"]
    heads = attrs["num_heads"]
    if case["module"] == WA:
        from tdeploy.plugins.window_attention.triton import block_config

        windows, n, c3 = x
        block_m = block_config(n, c3 // 3 // heads)["BLOCK_M"]  # re-tiling never changes BLOCK_M
        mask = case["inputs"][2]
        return {"shape": [windows, n, c3 // 3], "grid": [[windows, heads, triton.cdiv(n, block_m)]],
                "extra": [mask[0]]}
    from tdeploy.plugins.neighborhood_attention.triton import grid
    from tdeploy.plugins.neighborhood_attention.trt import tilings

    b, h, w, c3 = x
    k, d = attrs["kernel_size"], attrs["dilation"]
    grids = [list(grid(b, h, w, heads, d, t)) for t in tilings(k, d, c3 // 3 // heads)]  # launcher's first
    return {"shape": [b, h, w, c3 // 3], "grid": grids, "extra": [h, w]}


@pytest.mark.parametrize("version", VERSIONS)
def test_tensorrt_runs_the_plugins(version, plugin_dirs, tmp_path):
    results = probe(plugin_dirs[version], version, CASES, tmp_path)
    for case in CASES:
        got = results[case["id"]]
        assert "error" not in got, (case["id"], got.get("error"))
        want = expected_launch(case)
        launch = got["launch"]
        assert got["output_shape"] == want["shape"], case["id"]
        assert got["format_combinations"] >= 1
        assert [launch["grid_x"], launch["grid_y"], launch["grid_z"]] in want["grid"], (case["id"], launch)
        assert got["extra_args"] == want["extra"], case["id"]
        ptx = got["kernel"]["ptx"]
        threads = int(re.search(r"\.reqntid\s+(\d+)", ptx).group(1))
        assert (launch["block_x"], launch["block_y"], launch["block_z"]) == (threads, 1, 1), case["id"]
        assert 0 < launch["shared_mem"] <= AOT_SHARED_LIMIT, (case["id"], launch["shared_mem"])
        assert re.search(r"\.target\s+sm_90", ptx)
        entry = re.search(r"\.entry\s+(\w+)\s*\((.*?)\)", ptx, re.S)
        assert entry.group(1) == got["kernel"]["name"]
        types = re.findall(r"\.param\s+\.(\w+)", entry.group(2))
        assert types == (["u64", "u64", "u64", "u32", "u64"] if case["module"] == WA
                         else ["u64", "u64", "u32", "u32", "u64"]), case["id"]
    # The configurations that fit take the launcher's own tiling.
    nat = results["nat-mini level 1 (fp16)"]["launch"]
    case = next(c for c in CASES if c["id"] == "nat-mini level 1 (fp16)")
    assert [nat["grid_x"], nat["grid_y"], nat["grid_z"]] == expected_launch(case)["grid"][0]


# --- the check fails on each defect put back ---------------------------------------------------------------
def _mutant(tmp_path: Path, module: str, edits: list[tuple[str, str]]) -> dict:
    """A copy of ``module`` with ``edits`` (old -> new) applied, for the probe's ``--module``."""
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    for old, new in edits:
        assert old in source, f"{module} no longer contains {old!r}: update this mutation"
        source = source.replace(old, new)
    path = tmp_path / f"{module.rsplit('.', 2)[-2]}_mutant.py"
    path.write_text(source)
    return {module: path}


MUTANTS = {  # name -> (module, [(old, new), ...])
    "future-annotations": (WA, [("from tdeploy.errors import TdeployError\n",
                                 "from __future__ import annotations\n\nfrom tdeploy.errors import TdeployError\n")]),
    "no-aot-return-annotation": (WA, [(") -> tuple[str | bytes, str | bytes, trtp.KernelLaunchParams, trtp.SymExprs]:",
                                       "):")]),
    "int-attributes": (NA, [(": INT32_ATTR", ": int"), (": FLOAT32_ATTR", ": float")]),
    "reflected-multiply": (NA, [("trtp.cdiv(trtp.cdiv(shape[2], d), cfg[\"BLOCK_Q\"]) * d",
                                 "d * trtp.cdiv(trtp.cdiv(shape[2], d), cfg[\"BLOCK_Q\"])")]),
}


@pytest.mark.parametrize("name, version, stage, words", [
    ("future-annotations", "10.9.0.34", "register", "issubclass() arg 1 must be a class"),  # TypeError
    ("future-annotations", "11.4.0.106", "register", "'trtp.TensorDesc'"),  # ValueError quoting it
    ("no-aot-return-annotation", "10.16.1.11", "register", "No return annotation found for aot_impl"),
    ("int-attributes", "10.9.0.34", "create", "array"),
    ("reflected-multiply", "11.0.0.114", "launch", "unsupported operand"),
])
def test_the_check_fails_on_each_defect(name, version, stage, words, plugin_dirs, tmp_path):
    module, edits = MUTANTS[name]
    case = next(c for c in CASES if c["module"] == module)
    got = probe(plugin_dirs[version], version, [case], tmp_path, _mutant(tmp_path, module, edits))[case["id"]]
    assert "error" in got, f"{name} went unnoticed on TensorRT {version}"
    assert got["error"]["stage"] == stage and words in got["error"]["message"], got["error"]


def test_int_attributes_pass_where_tensorrt_fixed_them(plugin_dirs, tmp_path):
    """11.4 reads length-1 fields with ``f.data[0]``: the int-annotation defect shows on 10.9-11.0 only,
    which is why the plugins annotate attributes as arrays (tdeploy/plugins/qdp.py)."""
    module, edits = MUTANTS["int-attributes"]
    case = next(c for c in CASES if c["module"] == module)
    got = probe(plugin_dirs["11.4.0.106"], "11.4.0.106", [case], tmp_path, _mutant(tmp_path, module, edits))
    assert "error" not in got[case["id"]], got[case["id"]]


def test_attribute_and_driver_helpers():
    import numpy as np

    from tdeploy.errors import TdeployError
    from tdeploy.plugins.qdp import ptx_isa_for_driver, scalar

    assert scalar(np.array([7], np.int32), int) == 7 and scalar(3, int) == 3
    assert scalar(np.array([0.25], np.float32), float) == 0.25
    with pytest.raises(TdeployError, match="expected one value"):
        scalar(np.array([1, 2], np.int32))
    assert ptx_isa_for_driver((12, 2)) == 82  # JetPack 6.0
    assert ptx_isa_for_driver((12, 6)) == 85  # JetPack 6.1/6.2
    assert ptx_isa_for_driver((12, 7)) == 85 and ptx_isa_for_driver((12, 8)) == 87
    assert ptx_isa_for_driver((13, 0)) is None and ptx_isa_for_driver((13, 2)) is None
