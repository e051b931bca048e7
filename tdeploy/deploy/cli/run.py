"""``deploy run``: restore or upscale an image file with an exported image-to-image model (SwinIR).

    deploy run artifacts/swinir-classical-x4 --input low.png --output high.png --tile 256 --overlap 32

The image is read as RGB or gray (whatever the model takes), run whole or in blended tiles
(:mod:`tdeploy.deploy.tasks.tiling`) on the chosen backend, and written atomically as an 8-bit PNG/JPEG.
"""

from __future__ import annotations

import sys

import click
import numpy as np

from tdeploy.errors import TdeployError

IMAGE_TASKS = ("super_resolution", "restoration")


@click.command("run")
@click.argument("artifact", type=click.Path())
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False), help="PNG/JPEG to process.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False), help="PNG/JPEG to write.")
@click.option("--tile", type=int, default=None,
              help="Tile side in input pixels (blended tiles for large images) [whole image].")
@click.option("--overlap", type=int, default=32, show_default=True, help="Overlap of neighbouring tiles, pixels.")
@click.option("--backend", type=click.Choice(["ort", "trt", "torch"]), default="ort", show_default=True)
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for --backend torch [the sidecar's].")
@click.option("--threads", default=0, type=int, help="CPU threads [all].")
def run(artifact, input_path, output_path, tile, overlap, backend, checkpoint, threads) -> None:
    """Restore/upscale the image INPUT with ARTIFACT and write OUTPUT."""
    from tqdm import tqdm

    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.backends import make_runner
    from tdeploy.deploy.reference import reference_model, warn_random_weights
    from tdeploy.deploy.tasks.image_io import read_image, write_image
    from tdeploy.deploy.tasks.tiling import run_tiled

    art = open_artifact(artifact)
    sc = art.sidecar
    spec = sc.main.export_spec()
    if spec.task not in IMAGE_TASKS:
        raise TdeployError(f"{sc.variant} is a {spec.task} model; deploy run takes image-to-image models "
                           f"({', '.join(IMAGE_TASKS)}), e.g. swinir")
    if tile is not None and tile < 1:
        raise TdeployError(f"--tile {tile}: give a positive tile size in pixels")
    if overlap < 0:
        raise TdeployError(f"--overlap {overlap}: give a non-negative number of pixels")
    inp = spec.inputs[0]
    channels = int(inp.shape[1]) if isinstance(inp.shape[1], int) else 3
    image = read_image(input_path, channels=channels)  # (C, H, W) in [0, 1]
    H, W = image.shape[1:]
    if not sc.dynamic_size:
        # A static-size artifact runs exactly its export size: tile with that size.
        eh, ew = inp.example[-2:]
        if eh != ew:
            raise TdeployError(f"{art.root} was exported at a static {eh}x{ew}; re-export with --dynamic-size")
        if H < eh or W < ew:
            raise TdeployError(f"the image is {H}x{W}, smaller than the static export size {eh}x{ew}; "
                               "re-export with --dynamic-size")
        tile = eh
    side = min(tile or max(H, W), H, W)
    if side < spec.min_size:
        raise TdeployError(f"the image (or tile) is {min(H, W, side)} pixels on a side; {sc.variant} needs "
                           f">= {spec.min_size}")
    scale = int(spec.extra.get("upscale", 1))

    module = reference_model(sc, checkpoint) if backend == "torch" else None
    runner = make_runner(backend, art, threads=threads, torch_module=module)
    dtype = np.dtype(inp.dtype)

    def infer(x: np.ndarray) -> np.ndarray:
        feed = {inp.name: x.astype(dtype, copy=False)}
        return runner.infer(feed)[spec.outputs[0]].astype(np.float32)

    def progress(boxes):
        return tqdm(boxes, desc="tiles", unit="tile", disable=not sys.stderr.isatty() or len(boxes) < 2,
                    file=sys.stderr)

    with runner:
        out = run_tiled(image, infer, tile=tile, overlap=overlap, scale=scale, progress=progress)
    path = write_image(output_path, np.clip(out, 0.0, 1.0))
    click.echo(f"wrote {path} ({out.shape[2]}x{out.shape[1]}, x{scale}, {backend}"
               f"{f', tiles of {tile} overlapping {overlap}' if tile and tile < max(H, W) else ''})")
    warn_random_weights(sc)
