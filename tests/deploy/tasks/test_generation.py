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
