"""``deploy inspect``: what is inside an artifact, without running it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tdeploy.artifact.folder import ENGINE_SUFFIXES
from tdeploy.tensorrt.sidecar import load_engine_sidecar


@click.command("inspect")
@click.argument("artifact", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_cmd(artifact, as_json) -> None:
    """Inputs, outputs, opset, op histogram, custom nodes and sidecar of ARTIFACT; of an engine file, what
    its sidecar records and what TensorRT says of it where it can open it."""
    from tdeploy.artifact.onnx_file import load_onnx
    from tdeploy.deploy.inspect import describe_engine, describe_engine_text, describe_onnx, describe_text

    path = Path(artifact)
    if path.is_file() and path.suffix in ENGINE_SUFFIXES:
        from tdeploy.artifact.folder import open_artifact

        art = open_artifact(path)
        graph = load_engine_sidecar(path).get("graph") or "model"
        info = describe_engine(path, art.sidecar.graphs[graph].sha256 if graph in art.sidecar.graphs else None)
        click.echo(json.dumps(info, indent=2, default=str) if as_json else describe_engine_text(info))
        return
    if path.is_file() and path.suffix == ".onnx" and not (path.parent / "model.json").is_file():
        load_onnx(path, load_weights=False)
        infos, sidecar = [describe_onnx(path)], None
    else:
        from tdeploy.artifact.folder import open_artifact

        art = open_artifact(path)
        files = [art.onnx] if path.is_file() else [art.root / g.file for g in art.sidecar.graphs.values()]
        infos, sidecar = [describe_onnx(f) for f in files], art.sidecar
    if as_json:
        from dataclasses import asdict

        click.echo(json.dumps({"graphs": infos, "sidecar": asdict(sidecar) if sidecar else None}, indent=2,
                              default=str))
        return
    for info in infos:
        click.echo(describe_text(info))
    if sidecar:
        ck = f"{sidecar.checkpoint} (sha256 {sidecar.checkpoint_sha256[:12]})" if sidecar.checkpoint else "none (seeded random weights)"
        click.echo(f"sidecar: {sidecar.variant} ({sidecar.family}), precision {sidecar.precision}, opset "
                   f"{sidecar.opset}, plugins {'on' if sidecar.plugins else 'off'}, dynamic batch "
                   f"{sidecar.dynamic_batch}, dynamic size {sidecar.dynamic_size}, checkpoint {ck}, "
                   f"tdeploy {sidecar.tdeploy_version}")
