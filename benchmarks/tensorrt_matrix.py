"""`make tensorrt-matrix` (part of `make test-all`): every family through TensorRT-RTX, on this machine.

Each family's smallest registered variant is exported four ways (fp32; fp32 ``--no-plugins``; fp16 with
FP32 islands; int8 Q/DQ calibrated on a few sample images or token lines) and built with
``deploy build-engine --runtime tensorrt-rtx --compute-capability 8.9`` (no GPU needed). The table of
build times, engine sizes and layer counts (plugin layers by name) goes into docs/tensorrt.md between
the ``tensorrt-matrix`` markers, with the machine and the date. Exits 1 when any build fails, so
``make test-all`` fails with it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx

from benchmarks.report_sections import write_section

DOC = Path(__file__).resolve().parent.parent / "docs" / "tensorrt.md"
SETTINGS = ("fp32", "no-plugins", "fp16", "int8")
TARGET = "8.9"


def calibration_data(folder: Path) -> tuple[Path, Path]:
    """(image folder, token-line file) for INT8 calibration: sample images and seeded token lines."""
    import skimage.data
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry", "page"):
        img = getattr(skimage.data, name)()
        Image.fromarray(img[..., :3] if img.ndim == 3 else img).save(images / f"{name}.png")
    tokens = folder / "tokens.txt"
    rng = np.random.default_rng(0)
    # ids 4..31: inside every variant's vocabulary (transformer-tiny has 32 tokens, 0..3 special)
    tokens.write_text("\n".join(" ".join(map(str, rng.integers(4, 32, rng.integers(4, 24)))) for _ in range(16)))
    return images, tokens


def run_one(family: str, variant: str, setting: str, work: Path, calib: tuple[Path, Path]) -> dict:
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.export import ExportOptions, export
    from tdeploy.tensorrt.build import BuildOptions, build_engine

    out = work / f"{variant}-{setting}"
    precision = setting if setting in ("fp16", "int8") else "fp32"
    options = ExportOptions(plugins=setting != "no-plugins", precision=precision, calib_samples=8,
                            calib=(calib[1] if family == "transformer" else calib[0]) if precision == "int8" else None)
    row = {"family": family, "variant": variant, "setting": setting}
    start = time.perf_counter()
    try:
        export(variant, out, options=options)
        row["export_s"] = time.perf_counter() - start
        art = open_artifact(out)
        start = time.perf_counter()
        built = build_engine(art, None, BuildOptions(runtime="tensorrt-rtx", compute_capabilities=[TARGET]))
        row["build_s"] = time.perf_counter() - start
        engines = list(built) if isinstance(built, list) else [built]
        metas = [json.loads(Path(f"{e}.json").read_text()) for e in engines]
        row["engine_mb"] = sum(e.stat().st_size for e in engines) / 1e6
        row["layers"] = sum(m["layers"]["total"] for m in metas)
        plugins: dict[str, int] = {}
        for m in metas:
            for k, v in m["layers"]["plugins"].items():
                plugins[k] = plugins.get(k, 0) + v
        row["plugins"] = plugins
        row["plugin_form"] = "/".join(sorted({m["plugin_form"] for m in metas}))
        row["tdeploy_nodes"] = sum(sum(n.domain == "tdeploy" for n in onnx.load(str(out / g.file)).graph.node)
                                   for g in art.sidecar.graphs.values())
        row["ok"] = True
    except Exception as exc:  # noqa: BLE001 - a failed build is a row of the table, and the exit status
        row["ok"] = False
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        traceback.print_exc()
    return row


def markdown(rows: list[dict], machine: str, version: str, seconds: float) -> str:
    from tdeploy.deploy.evaluate.report import markdown_table

    head = ["family", "variant", "export", "plugin form", "build s", "engine MB", "layers", "plugin layers",
            "tdeploy nodes"]
    body = []
    for r in rows:
        if not r["ok"]:
            body.append([r["family"], r["variant"], r["setting"], "FAILED", "-", "-", "-", r["error"], "-"])
            continue
        plugins = ", ".join(f"{k} {v}" for k, v in r["plugins"].items()) or "0"
        body.append([r["family"], r["variant"], r["setting"], r["plugin_form"], f"{r['build_s']:.1f}",
                     f"{r['engine_mb']:.1f}", r["layers"], plugins, r["tdeploy_nodes"]])
    date = datetime.date.today().isoformat()
    return (f"Measured {date} on {machine} (no GPU), TensorRT-RTX {version}, target sm {TARGET}; the whole "
            f"matrix took {seconds / 60:.1f} min. `plugin form` none: the tdeploy nodes ran as their ONNX "
            "functions (inlined before parsing); cpp: the C++ plugin library.\n\n" + markdown_table(head, body))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", help="subset, e.g. vit swin")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/tensorrt.md")
    args = parser.parse_args(argv)

    import tensorrt_rtx

    from tdeploy.deploy.evaluate.bench import machine_description
    from tdeploy.models import list_families, smallest_variant

    families = args.families or sorted(list_families())
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        calib = calibration_data(Path(tmp) / "calib")
        for family in families:
            variant = smallest_variant(family)
            for setting in SETTINGS:
                row = run_one(family, variant, setting, Path(tmp), calib)
                print(json.dumps(row), flush=True)
                rows.append(row)
    text = markdown(rows, machine_description(), tensorrt_rtx.__version__, time.perf_counter() - start)
    print(text)
    if not args.no_write:
        write_section(DOC, "tensorrt-matrix", text, title="TensorRT")
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
