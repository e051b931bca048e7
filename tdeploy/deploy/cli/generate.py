"""``deploy generate``: greedy or beam-search generation with a seq2seq artifact on any backend."""

from __future__ import annotations

from pathlib import Path

import click

from tdeploy.errors import TdeployError


def _parse_ids(text: str, where: str) -> list[int]:
    try:
        return [int(p) for p in text.replace(",", " ").split()]
    except ValueError:
        raise TdeployError(f"{where}: {text.strip()!r} is not a list of token ids (write e.g. \"5 17 42\")") from None


def read_sources(tokens: tuple[str, ...], tokens_file: str | None) -> list[list[int]]:
    """--tokens (one sequence each) and --tokens-file (one sequence a line) -> lists of ids."""
    sources = [_parse_ids(t, "--tokens") for t in tokens]
    if tokens_file:
        path = Path(tokens_file)
        if not path.is_file():
            raise TdeployError(f"tokens file not found: {path}")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            sources.append(_parse_ids(line, f"{path} line {n}"))
    return sources


@click.command("generate")
@click.argument("artifact", type=click.Path())
@click.option("--tokens", "tokens", multiple=True, help='Source ids, e.g. "5 17 42" (repeatable, one sequence each).')
@click.option("--tokens-file", type=click.Path(dir_okay=False), help="Source ids, one sequence a line.")
@click.option("--bos-id", type=int, default=None, help="Start token [sidecar].")
@click.option("--eos-id", type=int, default=None, help="End token [sidecar].")
@click.option("--pad-id", type=int, default=None, help="Padding token [sidecar].")
@click.option("--max-length", type=int, default=None, help="Most tokens generated per sequence [sidecar].")
@click.option("--beam", type=int, default=1, show_default=True, help="Beam width (1: greedy).")
@click.option("--length-penalty", type=float, default=1.0, show_default=True,
              help="Beam: rank by log-prob / length ** penalty.")
@click.option("--backend", type=click.Choice(["torch", "ort", "trt"]), default="ort", show_default=True)
@click.option("--threads", type=int, default=0, help="CPU threads [all].")
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Checkpoint for --backend torch [sidecar's].")
def generate(artifact, tokens, tokens_file, bos_id, eos_id, pad_id, max_length, beam, length_penalty, backend,
             threads, checkpoint) -> None:
    """Generate target ids for source ids with ARTIFACT's encoder and decoder; one sequence a line."""
    from tdeploy.artifact.folder import open_artifact
    from tdeploy.deploy.reference import reference_model, warn_random_weights
    from tdeploy.deploy.tasks.generation import GenerationConfig, prepare_source, runner_step, seq2seq_extra
    from tdeploy.deploy.tasks.generation import generate as run_generation

    art = open_artifact(artifact)
    extra = seq2seq_extra(art)
    cfg = GenerationConfig.from_extra(extra, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id,
                                      max_new_tokens=max_length, beam=beam, length_penalty=length_penalty)
    cfg.check(extra)
    src, mask = prepare_source(read_sources(tokens, tokens_file), pad_id=cfg.pad_id,
                               vocab_size=extra["src_vocab_size"], max_len=extra["max_len"])
    model = reference_model(art.sidecar, checkpoint) if backend == "torch" else None
    step = runner_step(art, backend, threads=threads, model=model)
    with step.encoder, step.decoder:
        result = run_generation(step, src, mask, cfg)
    for seq in result.sequences:
        click.echo(" ".join(map(str, seq)))
    warn_random_weights(art.sidecar)
