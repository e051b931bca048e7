"""transformer-tiny trained on a toy task, exported as encoder + decoder-with-cache, generating in ORT."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.evaluate.validate_seq2seq import validate_seq2seq
from tdeploy.deploy.tasks.generation import GenerationConfig, TorchCachedStep, generate, runner_step
from tdeploy.export import ExportOptions, export
from tdeploy.models import create_model

PAD, BOS, EOS = 1, 2, 3
TOKENS = (4, 14)  # the toy task's ids
MAX_SRC = 6


def copy_task(n: int, gen: torch.Generator):
    """Sources of 2..MAX_SRC random ids (padded); targets BOS + the same ids + EOS (padded)."""
    lengths = torch.randint(2, MAX_SRC + 1, (n,), generator=gen)
    src = torch.full((n, MAX_SRC), PAD)
    tgt = torch.full((n, MAX_SRC + 2), PAD)
    tgt[:, 0] = BOS
    for i, L in enumerate(lengths.tolist()):
        ids = torch.randint(*TOKENS, (L,), generator=gen)
        src[i, :L] = ids
        tgt[i, 1 : L + 1] = ids
        tgt[i, L + 1] = EOS
    return src, tgt


def accuracy(step, src, tgt, beam=1) -> float:
    cfg = GenerationConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_new_tokens=MAX_SRC + 2, beam=beam)
    got = generate(step, src.numpy(), (src == PAD).numpy(), cfg).sequences
    want = [[t for t in row[1:].tolist() if t not in (PAD, EOS)] for row in tgt]
    return float(np.mean([g == w for g, w in zip(got, want)]))


def train(model, max_steps: int = 1500):
    """AdamW on the copy task until greedy decoding gets a held-out batch right (~400 steps, a few seconds).

    A step budget rather than a time budget: the result does not depend on the machine's load.
    """
    gen = torch.Generator().manual_seed(0)
    held_src, held_tgt = copy_task(100, torch.Generator().manual_seed(123))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    for it in range(1, max_steps + 1):
        model.train()
        src, tgt = copy_task(64, gen)
        logits = model(src, tgt[:, :-1], src == PAD, tgt[:, :-1] == PAD)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 0 and loss.item() < 0.1:
            if accuracy(TorchCachedStep(model.eval()), held_src, held_tgt) >= 0.99:
                break
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: threads only add overhead on shared cores
    try:
        model = train(create_model("transformer-tiny"))
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("art")
    checkpoint = folder / "copy_task.pth"  # so that validate rebuilds the trained model from the sidecar
    torch.save(model.state_dict(), checkpoint)
    out = folder / "transformer-tiny"
    export("transformer-tiny", out, checkpoint=checkpoint, options=ExportOptions(), model=model)
    art = open_artifact(out)
    step = runner_step(art, "ort", threads=1)
    step.encoder.activate()
    step.decoder.activate()
    yield model, art, step
    step.encoder.deactivate()
    step.decoder.deactivate()


def test_training_solved_the_toy_task(trained):
    model, _, _ = trained
    src, tgt = copy_task(200, torch.Generator().manual_seed(7))
    assert accuracy(TorchCachedStep(model), src, tgt) >= 0.95


def test_exported_model_solves_it_in_onnx_runtime(trained):
    _, _, ort_step = trained
    src, tgt = copy_task(200, torch.Generator().manual_seed(7))
    assert accuracy(ort_step, src, tgt) >= 0.95
    assert accuracy(ort_step, src[:40], tgt[:40], beam=3) >= 0.95


def test_graphs_inputs_outputs_and_dynamic_axes(trained):
    _, art, _ = trained
    sc = art.sidecar
    assert set(sc.graphs) == {"encoder", "decoder"}
    dims = {}
    for graph in ("encoder", "decoder"):
        proto = onnx.load(str(art.graph_path(graph)))
        for v in [*proto.graph.input, *proto.graph.output]:
            dims[v.name] = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
    assert dims["src_tokens"] == ["batch", "src_len"] and dims["memory"] == ["batch", "src_len", 32]
    assert dims["cross_kv"] == ["batch", 4, 4, "src_len", 8]
    assert dims["tokens"] == ["batch", 1] and dims["logits"] == ["batch", 32]
    assert dims["past_self_kv"] == ["batch", 4, 4, "cache_len", 8]
    extra = sc.graphs["decoder"].export_spec().extra
    assert (extra["bos_id"], extra["eos_id"], extra["pad_id"], extra["max_len"]) == (BOS, EOS, PAD, 64)
    assert sc.main.export_spec().task == "seq2seq"


@pytest.mark.parametrize("beam", [1, 4])
def test_ort_generation_equals_pytorch_token_for_token(trained, beam):
    model, _, ort_step = trained
    src, _ = copy_task(16, torch.Generator().manual_seed(11))
    src[0, 1:] = torch.randint(*TOKENS, (MAX_SRC - 1,))  # and some off-distribution sources
    src[1] = torch.randint(4, 32, (MAX_SRC,))
    cfg = GenerationConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_new_tokens=12, beam=beam, length_penalty=0.6)
    mask = (src == PAD).numpy()
    want = generate(TorchCachedStep(model), src.numpy(), mask, cfg)
    got = generate(ort_step, src.numpy(), mask, cfg)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    if beam > 1:
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)


def test_decoder_graph_at_first_step_and_long_cache(trained):
    model, _, ort_step = trained
    src = np.array([[5, 6, 7, 8, 9, 10, 11, 12, 13]])
    state_o = ort_step.start(src, np.zeros_like(src, bool))
    state_t = TorchCachedStep(model).start(src, np.zeros_like(src, bool))
    tokens = np.array([BOS])
    for t in range(40):  # cache lengths 1..40, positions 0..39
        lo, state_o = ort_step.step(state_o, tokens)
        lt, state_t = TorchCachedStep(model).step(state_t, tokens)
        np.testing.assert_allclose(lo, lt, atol=1e-4, rtol=1e-4)
        tokens = np.array([4 + t % 10])
    assert state_o["past_self_kv"].shape == (1, 4, 4, 41, 8)


def test_validate_reports_exact_match_and_logit_error(trained):
    _, art, _ = trained
    report = validate_seq2seq(art, backends=["ort"], batch=4, samples=1, seed=0)
    assert report.passed, report.summary()
    case = report.cases[0]
    assert case.metrics["token_exact_match"] == 1.0 and case.metrics["max_logit_error"] < 1e-3
    assert [o.output for o in case.outputs] == ["memory", "cross_kv", "logits"]


def test_export_a_tutorial_checkpoint_of_another_vocabulary(tmp_path):
    """`deploy export transformer --checkpoint FILE` for a file of another vocabulary and size: it says
    what it read, records it, and validate rebuilds the same model from the sidecar."""
    from tests.helpers import run_cli
    from tests.models.test_transformer import TutorialSeq2Seq

    torch.manual_seed(7)
    path = tmp_path / "tutorial.pth"
    torch.save(TutorialSeq2Seq(emb=32, nhead=4, layers=1, ff=48, src_vocab=100, tgt_vocab=120).state_dict(), path)
    code, out, err = run_cli("export", "transformer", "--checkpoint", path, "--out", tmp_path / "a")
    assert code == 0, err
    note = next(ln for ln in err.splitlines() if "configured from" in ln)
    assert "transformer-tiny" in note and "src_vocab_size=100 tgt_vocab_size=120" in note and "dim_feedforward=48" in note
    sidecar = json.loads((tmp_path / "a" / "model.json").read_text())
    assert sidecar["variant"] == "transformer-tiny" and sidecar["overrides"]["tgt_vocab_size"] == 120
    code, out, err = run_cli("validate", tmp_path / "a", "--report", tmp_path / "r")
    assert code == 0, out + err
    assert "random weights" not in err
