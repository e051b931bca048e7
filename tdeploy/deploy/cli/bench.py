"""``deploy bench``: latency and throughput of each backend, interleaved in one run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tdeploy.deploy.cli.options import backends_option, ints, parse_size


@click.command("bench")
@click.argument("artifact", type=click.Path())
@click.option("--backends", default="torch,ort", show_default=True)
@click.option("--batch", "batches", default="1,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", default=2, show_default=True, type=int)
@click.option("--warmup", default=5, show_default=True, type=int)
@click.option("--iters", default=30, show_default=True, type=int)
@click.option("--size", default=None, help="HxW [export size].")
@click.option("--checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder for bench.{json,md} [ARTIFACT/bench].")
def bench(artifact, backends, batches, threads, warmup, iters, size, checkpoint, out_dir) -> None:
    """Latency (p50/p90/p99), throughput and speed-up vs PyTorch eager, measured in one run."""
    from tdeploy.artifact.atomic import atomic_write_text
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.evaluate.bench import bench as run_bench
    from tdeploy.deploy.reference import warn_random_weights

    art = open_artifact(artifact)
    report = run_bench(art, backends=backends_option(backends), batches=ints(batches), threads=threads, warmup=warmup,
                       iters=iters, size=parse_size(size) if size else None, checkpoint=checkpoint)
    out = Path(out_dir) if out_dir else art.root / "bench"
    atomic_write_text(out / "bench.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out / "bench.md", report.markdown())
    click.echo(report.markdown())
    click.echo(f"wrote {out / 'bench.json'}, {out / 'bench.md'}")
    warn_random_weights(art.sidecar)
