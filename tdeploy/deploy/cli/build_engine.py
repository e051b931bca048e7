"""``deploy build-engine``: an artifact's ONNX graphs -> TensorRT engines."""

from __future__ import annotations

from pathlib import Path

import click

from tdeploy.deploy.cli.options import verbose


@click.command("build-engine")
@click.argument("artifact", type=click.Path())
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Engine file [ARTIFACT/model.engine].")
@click.option("--runtime", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True,
              help="TensorRT (datacenter/Jetson; builds on the GPU) or TensorRT-RTX (builds without a GPU); "
                   "auto: tensorrt when it imports, else tensorrt-rtx.")
@click.option("--compute-capability", "compute_capabilities", multiple=True, metavar="X.Y[,X.Y]",
              help="TensorRT-RTX targets (repeatable or comma-separated): 7.5, 8.0, 8.6, 8.9, 12.0, 12.1 "
                   "[TensorRT-RTX's default: 8.0, 8.6, 8.9, 12.0 and later].")
@click.option("--plugins", type=click.Choice(["auto", "qdp", "cpp", "none"]), default="auto", show_default=True,
              help="Attention plugin form: qdp (Python AOT, TensorRT >= 10.9), cpp (libtdeploy_plugins.so, "
                   "make cpp), none (the nodes' ONNX functions); auto: qdp, else cpp when built, else none.")
@click.option("--plugin-library", type=click.Path(dir_okay=False),
              help="The C++ plugin library [$TDEPLOY_PLUGIN_LIBRARY, else build/cpp/libtdeploy_plugins.so].")
@click.option("--shapes", multiple=True, help="input:min/opt/max, e.g. pixel_values:1x3x224x224/8x3x224x224/32x3x384x384")
@click.option("--workspace", type=float, default=None, help="Workspace limit in GB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Timing cache file (datacenter TensorRT).")
@click.option("--opt-level", type=click.IntRange(0, 5), default=None, help="Builder optimisation level (0-5).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Reuse an engine built with the same key.")
def build_engine(artifact, out_file, runtime, compute_capabilities, plugins, plugin_library, shapes, workspace,
                 timing_cache, opt_level, cache_dir) -> None:
    """Compile ARTIFACT's ONNX graphs into TensorRT engines (one per graph) with a sidecar each."""
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.tensorrt.build import BuildOptions
    from tdeploy.tensorrt.build import build_engine as do_build

    art = open_artifact(artifact)
    options = BuildOptions(shapes=list(shapes), workspace_gb=workspace, timing_cache=timing_cache,
                           opt_level=opt_level, cache_dir=cache_dir, runtime=runtime,
                           compute_capabilities=list(compute_capabilities), plugins=plugins,
                           plugin_library=plugin_library, verbose=verbose())
    path = do_build(art, out=Path(out_file) if out_file else None, options=options)
    click.echo(f"wrote {path}")
