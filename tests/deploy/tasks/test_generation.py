"""`deploy generate` and `deploy validate` on a seq2seq artifact (transformer-tiny, seeded weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tdeploy.artifact.folder import open_artifact
from tdeploy.deploy.tasks.generation import GenerationConfig, TorchCachedStep, generate, prepare_source
from tdeploy.export.onnx_export import build_model
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "tiny"
    code, stdout, stderr = run_cli("export", "transformer-tiny", "--out", out)
    assert code == 0, stderr
    assert "encoder.onnx" in stdout and "decoder.onnx" in stdout
    return out


def _expected(sources, beam=1, max_new=8):
    model = build_model("transformer-tiny", None, {})
    src, mask = prepare_source(sources, pad_id=1, vocab_size=32, max_len=64)
    cfg = GenerationConfig(bos_id=2, eos_id=3, pad_id=1, max_new_tokens=max_new, beam=beam)
    return [" ".join(map(str, s)) for s in generate(TorchCachedStep(model), src, mask, cfg).sequences]


def test_generate_prints_one_sequence_a_line(artifact):
    code, stdout, stderr = run_cli("generate", artifact, "--tokens", "5 17 12 9", "--tokens", "8,9",
                                   "--max-length", "8")
    assert code == 0, stderr
    assert stdout.splitlines() == _expected([[5, 17, 12, 9], [8, 9]])


def test_generate_matches_pytorch_on_every_cpu_backend(artifact, tmp_path):
    sources = [[5, 17, 12, 9], [8, 9], [30, 4, 4, 4, 4, 4, 21]]
    path = tmp_path / "src.txt"
    path.write_text("\n".join(" ".join(map(str, s)) for s in sources) + "\n")
    want = _expected(sources, beam=3)
    for backend in ("ort", "torch"):
        code, stdout, stderr = run_cli("generate", artifact, "--tokens-file", path, "--beam", "3", "--max-length",
                                       "8", "--backend", backend)
        assert code == 0, stderr
        assert stdout.splitlines() == want


@pytest.mark.parametrize(("args", "message"), [
    (["--tokens", "5 40 7"], "token id 40 is out of vocabulary (0..31)"),
    (["--tokens", ""], "source sequence 1 is empty"),
    (["--tokens", " ".join(["5"] * 65)], "beyond the positional table of 64"),
    (["--tokens", "5 6", "--max-length", "100"], "--max-length 100 is beyond the positional table"),
    (["--tokens", "5 x 6"], "is not a list of token ids"),
    (["--tokens", "5", "--eos-id", "32"], "--eos-id 32 is outside the target vocabulary"),
    ([], "no source sequence given"),
])
def test_bad_input_is_one_line_with_status_2(artifact, args, message):
    code, stdout, stderr = run_cli("generate", artifact, *args)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr
    assert stderr.count("\n") == 1 and not stdout


def test_validate_seq2seq_artifact_writes_the_report(artifact, tmp_path):
    code, stdout, stderr = run_cli("validate", artifact, "--batch", "3", "--report", tmp_path / "rep")
    assert code == 0, stderr + stdout
    assert "PASS transformer-tiny" in stdout
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["task"] == "seq2seq" and data["main_metric"] == "token_exact_match"
    metrics = data["cases"][0]["metrics"]
    assert metrics["token_exact_match"] == 1.0 and metrics["max_logit_error"] < 1e-4
    assert "token_exact_match" in (tmp_path / "rep" / "report.md").read_text()


def test_sidecar_carries_the_generation_defaults(artifact):
    extra = open_artifact(artifact).sidecar.graphs["encoder"].export_spec().extra
    assert {k: extra[k] for k in ("bos_id", "eos_id", "pad_id", "max_new_tokens")} == {
        "bos_id": 2, "eos_id": 3, "pad_id": 1, "max_new_tokens": 32}
    assert np.prod([extra["num_layers"], extra["num_heads"], extra["head_dim"]]) == 2 * 4 * 8


def test_validate_saves_the_feeds_each_graph_ran(artifact, tmp_path):
    """Polygraphy files of a seq2seq artifact: one per graph, holding feeds the graph takes, with
    PyTorch's outputs for them (ONNX Runtime on the saved decoder feeds gives those outputs)."""
    import onnxruntime as ort
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    code, stdout, stderr = run_cli("validate", artifact, "--report", tmp_path / "rep", "--save-inputs",
                                   tmp_path / "in.json", "--save-outputs", tmp_path / "out.json")
    assert code == 0, stderr + stdout
    for graph in ("encoder", "decoder"):
        assert f"wrote {tmp_path / f'in.{graph}.json'}" in stdout
    feeds = load_json(str(tmp_path / "in.decoder.json"))
    results = RunResults.load(str(tmp_path / "out.decoder.json"))
    assert len(feeds) == len(results[0][1]) > 1  # one decoder step per generated token
    session = ort.InferenceSession(str(artifact / "decoder.onnx"), providers=["CPUExecutionProvider"])
    for feed, want in zip(feeds[:3], results[0][1][:3]):
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
        np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4, rtol=1e-4)
    encoder_feeds = load_json(str(tmp_path / "in.encoder.json"))
    assert set(encoder_feeds[0]) == {"src_tokens", "src_padding_mask"}


def test_validate_passes_threads_to_every_runner(artifact, tmp_path, monkeypatch):
    from tdeploy.runtime import ort_runner

    seen = []
    real_init = ort_runner.OrtRunner.__init__

    def init(self, *args, threads=0, **kwargs):
        seen.append(threads)
        real_init(self, *args, threads=threads, **kwargs)

    monkeypatch.setattr(ort_runner.OrtRunner, "__init__", init)
    code, stdout, stderr = run_cli("validate", artifact, "--threads", "1", "--report", tmp_path / "rep")
    assert code == 0, stderr + stdout
    assert seen and set(seen) == {1}


def test_bench_times_whole_generations(artifact, tmp_path):
    code, stdout, stderr = run_cli("bench", artifact, "--batch", "2", "--iters", "2", "--warmup", "1",
                                   "--out", tmp_path / "b")
    assert code == 0, stderr
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    rows = {r["backend"]: r for r in data["rows"]}
    assert set(rows) == {"torch", "ort"}
    assert rows["ort"]["size"].endswith(", 16 tokens")
    assert rows["ort"]["gflops"] > 0 and {r["timing"] for r in data["rows"]} == {"generation"}
    assert rows["ort"]["speedup_vs_torch"] == pytest.approx(rows["torch"]["p50_ms"] / rows["ort"]["p50_ms"])
