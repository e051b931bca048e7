"""``deploy validate`` for seq2seq artifacts: generation on each backend against PyTorch generation.

Per sample (a seeded batch of random sources, rows of different lengths, so padding is exercised):

1. PyTorch (the model rebuilt from the sidecar, with its KV cache) generates greedily: the reference.
2. Each backend generates greedily through its encoder and decoder graphs; the token exact-match
   rate is the fraction of positions (of the padded token arrays) that agree, and
   ``sequence_exact_match`` the fraction of whole sequences.
3. Both are teacher-forced along the reference tokens, so their logits are comparable step by step:
   the max logit error (and the encoder's memory / cross K/V) is checked against the spec's
   tolerance.

A backend that diverges from the reference only where the reference's top two logits are within the
logit tolerance (a near-tie, which no backend can be expected to break the same way) is counted in
``divergences_at_ties`` and still passes.
"""

from __future__ import annotations

import numpy as np
import torch

from tdeploy.deploy.evaluate.results import CaseResult, ValidationReport
from tdeploy.deploy.reference import reference_model, weights_description
from tdeploy.deploy.tasks.generation import (
    GenerationConfig,
    RunnerStep,
    TorchCachedStep,
    forced_logits,
    generate,
    runner_step,
    seq2seq_extra,
)
from tdeploy.errors import TdeployError
from tdeploy.runtime.compare import compare
from tdeploy.runtime.recording import RecordingRunner

# Generated tokens per validation sample (at most the sidecar's max_new_tokens).
VALIDATE_NEW_TOKENS = 32


def _sources(spec, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random sources (batch, S): the first row full length, the others 1..S tokens + padding."""
    inp = spec.input("src_tokens")
    S = inp.example[1]
    rng = np.random.default_rng(seed)
    src = rng.integers(int(inp.low), int(inp.high), size=(batch, S), dtype=np.int64)
    lengths = np.concatenate([[S], rng.integers(1, S + 1, size=batch - 1)])
    mask = np.arange(S)[None, :] >= lengths[:, None]
    src[mask] = spec.extra["pad_id"]
    return src, mask


def _pad_to(tokens: np.ndarray, width: int, pad: int) -> np.ndarray:
    out = np.full((len(tokens), width), pad, dtype=np.int64)
    out[:, : tokens.shape[1]] = tokens
    return out


def validate_seq2seq(artifact, *, backends: list[str], checkpoint: str | None = None, batch: int = 1,
                     samples: int = 1, seed: int = 0, threads: int = 0,
                     record: dict[str, list] | None = None) -> ValidationReport:
    """Greedy generation and teacher-forced logits of every backend against PyTorch's. ``record``: filled
    with the encoder's and the decoder's ``(feed, outputs)`` pairs of PyTorch running the exported graphs'
    modules through the same greedy generation (for Polygraphy files)."""
    sc = artifact.sidecar
    extra = seq2seq_extra(artifact)
    enc_spec, dec_spec = sc.graphs["encoder"].export_spec(), sc.graphs["decoder"].export_spec()
    if batch < 1 or samples < 1:
        raise TdeployError(f"--batch and --samples must be >= 1 (got {batch}, {samples})")
    model = reference_model(sc, checkpoint)
    reference = TorchCachedStep(model)
    cfg = GenerationConfig.from_extra(extra, max_new_tokens=min(VALIDATE_NEW_TOKENS, extra["max_new_tokens"]))
    precision = sc.precision
    threshold = dec_spec.metric_threshold.get(precision, dec_spec.metric_threshold.get("fp32", 1.0))
    report = ValidationReport(artifact=str(artifact.root), variant=sc.variant, task="seq2seq", precision=precision,
                              backends=list(backends), main_metric=dec_spec.metric, metric_threshold=threshold,
                              weights=weights_description(sc, checkpoint),
                              extra={"generation": {"greedy": True, "max_new_tokens": cfg.max_new_tokens,
                                                    "bos_id": cfg.bos_id, "eos_id": cfg.eos_id,
                                                    "pad_id": cfg.pad_id}})
    cases = [(sample, *_sources(enc_spec, batch, seed + sample)) for sample in range(samples)]
    refs = []
    for _, src, mask in cases:
        ref = generate(reference, src, mask, cfg)
        fed = ref.tokens[:, :-1]  # teacher forcing along the reference: row t predicts token t + 1
        with torch.inference_mode():
            memory = model.encode(torch.from_numpy(src), torch.from_numpy(mask))
            cross = model.cross_kv(memory)
        refs.append((ref, fed, forced_logits(reference, src, mask, fed), memory.numpy(), cross.numpy()))
    for backend in backends:
        step = runner_step(artifact, backend, model=model, threads=threads)
        step.encoder.activate()
        step.decoder.activate()
        try:
            for (sample, src, mask), (ref, fed, ref_logits, memory, cross) in zip(cases, refs):
                got = generate(step, src, mask, cfg)
                state = step.start(src, mask)
                logits = forced_logits(step, src, mask, fed)
                report.cases.append(_case(report, dec_spec, backend, sample, src, ref, got, ref_logits, logits,
                                          {"memory": (state["memory"], memory), "cross_kv": (state["cross_kv"], cross)},
                                          enc_spec))
        finally:
            step.encoder.deactivate()
            step.decoder.deactivate()
    if record is not None:
        torch_graphs = runner_step(artifact, "torch", model=model, threads=threads)
        step = RunnerStep(RecordingRunner(torch_graphs.encoder), RecordingRunner(torch_graphs.decoder), extra)
        with step.encoder, step.decoder:
            for _, src, mask in cases:
                generate(step, src, mask, cfg)
        record.update(encoder=step.encoder.records, decoder=step.decoder.records)
    return report


def _case(report, spec, backend, sample, src, ref, got, ref_logits, logits, encoder_outputs, enc_spec) -> CaseResult:
    tol = spec.tolerance(report.precision, "logits")
    outputs = [compare(name, np.asarray(g, np.float32), np.asarray(r, np.float32),
                       enc_spec.tolerance(report.precision, name)) for name, (g, r) in encoder_outputs.items()]
    outputs.append(compare("logits", logits.astype(np.float32), ref_logits.astype(np.float32), tol))
    err = np.abs(logits.astype(np.float64) - ref_logits.astype(np.float64)).ravel()
    key = f"{backend}/logits"
    report.errors[key] = np.concatenate([report.errors[key], err]) if key in report.errors else err
    pad = ref.tokens.shape[1] if ref.tokens.shape[1] >= got.tokens.shape[1] else got.tokens.shape[1]
    a, b = _pad_to(got.tokens, pad, -1), _pad_to(ref.tokens, pad, -1)
    token_match = float(np.mean(a == b))
    seq_match = float(np.mean([x == y for x, y in zip(got.sequences, ref.sequences)]))
    ties = 0
    diverged = 0
    for row in range(len(a)):
        diff = np.nonzero(a[row] != b[row])[0]
        if not diff.size:
            continue
        diverged += 1
        t = int(diff[0]) - 1  # logits row that chose token diff[0]
        if 0 <= t < ref_logits.shape[1] and a[row, t + 1] >= 0:
            r = ref_logits[row, t]
            margin = float(r[b[row, t + 1]] - r[a[row, t + 1]])
            if margin <= tol.atol + tol.rtol * float(np.abs(r).max()):
                ties += 1
    metrics = {"token_exact_match": token_match, "sequence_exact_match": seq_match,
               "max_logit_error": float(err.max()) if err.size else 0.0, "divergences_at_ties": float(ties)}
    metric_ok = token_match >= report.metric_threshold or ties == diverged
    passed = all(o.within_tolerance for o in outputs) and metric_ok
    return CaseResult(backend, "encoder+decoder", f"S={src.shape[1]}", len(src), sample, outputs, metrics, passed)
