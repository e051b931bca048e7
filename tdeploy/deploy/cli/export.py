"""``deploy export``: a registered model (and checkpoint) -> an artifact folder (ONNX + sidecar)."""

from __future__ import annotations

from pathlib import Path

import click

from tdeploy.deploy.cli.options import parse_settings, parse_size, status, verbose


@click.command("export")
@click.argument("model")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="State dict (.pth/.pt/.safetensors) to load.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [artifacts/<variant>].")
@click.option("--opset", type=int, default=None, help="ONNX opset [18].")
@click.option("--dynamic-batch/--static", default=True, help="Dynamic batch axis [dynamic].")
@click.option("--dynamic-size/--static-size", default=True, help="Dynamic height/width for image models [dynamic].")
@click.option("--size", "size", default=None, help="Export (example) size HxW [the variant's training size].")
@click.option("--no-plugins", is_flag=True, help="Standard ONNX ops only (custom attention nodes inlined).")
@click.option("--no-check", is_flag=True, help="Skip the checker and the ONNX Runtime vs PyTorch check.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="Graph precision: fp16 (FP32 islands) or int8 (symmetric Q/DQ, needs --calib).")
@click.option("--io-dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="Dtype of float inputs/outputs of an fp16 graph.")
@click.option("--calib", type=click.Path(), default=None,
              help="INT8 calibration data: a folder of images (vision) or a file of token-id lines (transformer).")
@click.option("--calib-method", type=click.Choice(["entropy", "percentile", "max"]), default="entropy",
              show_default=True, help="INT8 activation range calibration.")
@click.option("--calib-samples", type=int, default=64, show_default=True, help="INT8 calibration samples at most.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a config field of the variant (repeatable), e.g. --set num_classes=10 "
                   "--set src_vocab_size=19214; recorded in the sidecar.")
def export(model, checkpoint, out_dir, opset, dynamic_batch, dynamic_size, size, no_plugins, no_check, precision,
           io_dtype, calib, calib_method, calib_samples, settings) -> None:
    """Export MODEL (a variant or family name) to DIR/model.onnx + DIR/model.json."""
    from tdeploy.deploy.reference import warn_random_weights
    from tdeploy.export import DEFAULT_OPSET, ExportOptions
    from tdeploy.export import export as do_export
    from tdeploy.export.onnx_export import build_model

    overrides = parse_settings(settings)
    built = build_model(model, checkpoint, overrides)
    variant = built.variant_name
    inferred = getattr(built, "inferred_config", {})  # what the checkpoint told (recorded like --set)
    out = Path(out_dir) if out_dir else Path("artifacts") / variant
    options = ExportOptions(
        opset=opset or DEFAULT_OPSET, dynamic_batch=dynamic_batch, dynamic_size=dynamic_size,
        plugins=not no_plugins, check=not no_check, size=parse_size(size) if size else None,
        precision=precision, io_dtype=io_dtype, calib=calib, calib_method=calib_method, calib_samples=calib_samples,
        verbose=verbose(),
    )
    with status(f"exporting {variant}"):
        sidecar = do_export(model, out, checkpoint=checkpoint, options=options, model=built,
                            **{**overrides, **inferred})
    for graph in sidecar.graphs.values():
        click.echo(f"wrote {out / graph.file}  (sha256 {graph.sha256[:12]}, custom ops: "
                   f"{', '.join(graph.custom_ops) or 'none'})")
    click.echo(f"wrote {out / 'model.json'}")
    if inferred:
        click.echo(f"note: {variant} configured from {checkpoint}: "
                   + " ".join(f"{k}={v}" for k, v in inferred.items())
                   + " (what a file cannot tell, e.g. the number of heads, is the variant's: --set it if yours differs)",
                   err=True)
    warn_random_weights(sidecar)
