"""``deploy build-engine``: an artifact's ONNX graphs -> TensorRT engines."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("build-engine")
@click.argument("artifact", type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Engine file [ARTIFACT/model.engine].")
@click.option("--shapes", multiple=True, help="input:min/opt/max, e.g. pixel_values:1x3x224x224/8x3x224x224/32x3x384x384")
@click.option("--workspace", type=float, default=None, help="Workspace limit in GB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False))
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="Builder optimisation level (0-5).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Reuse an engine built with the same key.")
def build_engine(artifact, out_file, shapes, workspace, timing_cache, opt_level, cache_dir) -> None:
    """Compile ARTIFACT's ONNX into a TensorRT engine (needs TensorRT >= 10.9 and an NVIDIA GPU)."""
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.tensorrt.build import BuildOptions
    from tdeploy.tensorrt.build import build_engine as do_build

    art = open_artifact(artifact)
    options = BuildOptions(shapes=list(shapes), workspace_gb=workspace, timing_cache=timing_cache,
                           opt_level=opt_level, cache_dir=cache_dir)
    path = do_build(art, out=Path(out_file) if out_file else None, options=options)
    click.echo(f"wrote {path}")
