"""The `deploy` CLI end to end on a small ViT: list, export, inspect, validate, bench, and bad input."""

from __future__ import annotations

import json

import onnx
import pytest

from tdeploy.export import export
from tests.helpers import run_cli, run_cli_subprocess

SMALL_VIT = {"depth": 2}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "vit"
    export("vit-ti16", out, **SMALL_VIT)
    return out


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_list_shows_variants_and_aliases():
    code, out, _ = run_cli("list")
    assert code == 0
    assert "vit-s16" in out and "(= vit)" in out


def test_export_cli_writes_artifact(tmp_path):
    code, out, err = run_cli("export", "vit-ti16", "--out", tmp_path / "a", "--static-size", "--size", "32x32")
    assert code == 0, err
    assert (tmp_path / "a" / "model.onnx").is_file() and (tmp_path / "a" / "model.json").is_file()
    assert "note: vit-ti16 has seeded random weights" in err and "--checkpoint FILE" in err


def test_inspect(artifact):
    code, out, err = run_cli("inspect", artifact)
    assert code == 0, err
    assert "pixel_values: float32[batch, 3, height, width]" in out
    assert "logits" in out and "LayerNormalization" in out and "sidecar: vit-ti16" in out
    code, out, _ = run_cli("inspect", artifact / "model.onnx", "--json")
    info = json.loads(out)
    assert info["graphs"][0]["opsets"]["ai.onnx"] == 18


def test_validate_passes_and_writes_reports(artifact, tmp_path):
    code, out, err = run_cli("validate", artifact, "--size", "224x224", "--size", "48x80", "--batch", "2",
                             "--report", tmp_path / "r")
    assert code == 0, out + err
    assert "PASS vit-ti16" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["passed"] and {c["size"] for c in report["cases"]} == {"224x224", "48x80"}
    assert report["random_weights"] and "note: vit-ti16 has seeded random weights" in err
    assert "Weights: seeded random weights" in (tmp_path / "r" / "report.md").read_text()
    assert all(c["metrics"]["top1_agreement"] == 1.0 for c in report["cases"])
    html = (tmp_path / "r" / "report.html").read_text()
    assert "data:image/png;base64," in html and "| ort |" in (tmp_path / "r" / "report.md").read_text()


def test_validate_fails_with_exit_1_when_out_of_tolerance(artifact, tmp_path):
    # A checkpoint with other weights: the artifact no longer matches the PyTorch reference.
    import torch

    from tdeploy.export.onnx_export import build_model

    other = build_model("vit-ti16", None, SMALL_VIT)
    with torch.no_grad():
        other.head.bias.add_(1.0)
    ckpt = tmp_path / "other.pth"
    torch.save(other.state_dict(), ckpt)
    code, out, _ = run_cli("validate", artifact, "--checkpoint", ckpt, "--report", tmp_path / "r")
    assert code == 1
    assert out.strip().splitlines()[-1].startswith("FAIL vit-ti16")


def test_validate_saves_polygraphy_run_results(artifact, tmp_path):
    from polygraphy.comparator import RunResults
    from polygraphy.json import load_json

    code, out, err = run_cli("validate", artifact, "--size", "32x32", "--report", tmp_path / "r",
                             "--save-inputs", tmp_path / "in.json", "--save-outputs", tmp_path / "out.json")
    assert code == 0, err
    results = RunResults.load(str(tmp_path / "out.json"))
    feeds = load_json(str(tmp_path / "in.json"))
    assert len(feeds) == 1 and feeds[0]["pixel_values"].shape == (1, 3, 32, 32)
    assert results[0][1][0]["logits"].shape == (1, 1000)


def test_bench_reports_ratio_and_gflops(artifact, tmp_path):
    code, out, err = run_cli("bench", artifact, "--batch", "1", "--iters", "2", "--warmup", "1", "--size", "32x32",
                             "--out", tmp_path / "b")
    assert code == 0, err
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    rows = {r["backend"]: r for r in data["rows"]}
    assert set(rows) == {"torch", "ort"}
    # the ratio is the two medians of this run; the baseline row has none
    assert rows["torch"]["speedup_vs_torch"] is None
    assert rows["ort"]["speedup_vs_torch"] == pytest.approx(rows["torch"]["p50_ms"] / rows["ort"]["p50_ms"])
    assert rows["ort"]["p50_ms"] > 0 and rows["ort"]["gflops"] > 0
    assert {r["timing"] for r in data["rows"]} == {"wall clock"}  # CPU backends: the host clock
    assert data["weights"].startswith("seeded random weights")
    assert "| baseline |" in (tmp_path / "b" / "bench.md").read_text()
    assert err.strip().splitlines()[-1].startswith("note: vit-ti16 has seeded random weights")


def test_exported_with_a_checkpoint_says_nothing_and_refuses_when_it_is_gone(tmp_path):
    """No random-weights note for a checkpoint export; bench, like validate, refuses when the checkpoint
    the artifact was exported from has gone, instead of timing random weights."""
    import torch

    from tdeploy.export.onnx_export import build_model

    ckpt = tmp_path / "vit.pth"
    torch.save(build_model("vit-ti16", None, {"depth": 1}).state_dict(), ckpt)
    code, _, err = run_cli("export", "vit-ti16", "--checkpoint", ckpt, "--set", "depth=1", "--out", tmp_path / "a",
                           "--static-size", "--size", "32x32")
    assert code == 0, err
    assert "random weights" not in err
    ckpt.unlink()
    for command in (["bench", "--iters", "1", "--warmup", "0", "--batch", "1"], ["validate"]):
        code, _, err = run_cli(command[0], tmp_path / "a", *command[1:])
        _one_line_error(code, err, "is gone: pass --checkpoint PATH")


# --- bad input: one line, non-zero exit, nothing written ----------------------------------------------
def test_validate_refuses_to_compare_pytorch_with_itself(artifact, tmp_path):
    for backends in ("torch", "ort,torch"):
        code, _, err = run_cli("validate", artifact, "--backends", backends, "--report", tmp_path / "r")
        _one_line_error(code, err, "--backends torch", "PyTorch with itself", "ort")
    assert not (tmp_path / "r").exists()


def test_unknown_model_lists_close_names(tmp_path):
    code, _, err = run_cli("export", "vit-small", "--out", tmp_path / "x")
    _one_line_error(code, err, "unknown model 'vit-small'", "vit-s16")
    assert not (tmp_path / "x").exists()


def test_missing_checkpoint(tmp_path):
    code, _, err = run_cli("export", "vit-ti16", "--checkpoint", tmp_path / "none.pth", "--out", tmp_path / "x")
    _one_line_error(code, err, "checkpoint file not found")
    assert not (tmp_path / "x").exists()


def test_checkpoint_for_another_architecture(tmp_path):
    import torch

    ckpt = tmp_path / "resnet_like.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, ckpt)
    code, _, err = run_cli("export", "vit-ti16", "--checkpoint", ckpt, "--out", tmp_path / "x")
    _one_line_error(code, err, "does not fit vit-ti16", "missing", "unexpected: conv1.weight")
    assert not (tmp_path / "x").exists()


def test_size_the_model_cannot_take(artifact):
    code, _, err = run_cli("validate", artifact, "--size", "100x100")
    _one_line_error(code, err, "100x100", "multiples of 16")


@pytest.mark.parametrize("command", ["validate", "bench", "inspect"])
def test_truncated_onnx(artifact, tmp_path, command):
    bad = tmp_path / "art"
    bad.mkdir()
    (bad / "model.onnx").write_bytes((artifact / "model.onnx").read_bytes()[:4096])
    (bad / "model.json").write_text((artifact / "model.json").read_text())
    code, _, err = run_cli(command, bad / "model.onnx")
    _one_line_error(code, err, "not a readable ONNX model")


@pytest.mark.parametrize("command", ["validate", "bench", "inspect"])
def test_non_onnx_file(tmp_path, command):
    bad = tmp_path / "notes.onnx"
    bad.write_text("hello, this is not ONNX")
    code, _, err = run_cli(command, bad)
    _one_line_error(code, err, "not a readable ONNX model")


def test_build_engine_without_tensorrt(artifact):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    code, _, err = run_cli("build-engine", artifact, "--runtime", "tensorrt")
    _one_line_error(code, err, "TensorRT (tensorrt) is not installed", "pip install tensorrt")


def test_console_script_exit_status(tmp_path):
    proc = run_cli_subprocess("export", "no-such-model", "--out", tmp_path / "x")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model")


def test_export_set_overrides_are_applied_and_recorded(tmp_path):
    code, out, err = run_cli("export", "vit-ti16", "--out", tmp_path / "a", "--set", "depth=1", "--set",
                             "num_classes=10", "--size", "32x32")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "a" / "model.json").read_text())
    assert sidecar["overrides"] == {"depth": 1, "num_classes": 10}
    code, out, err = run_cli("validate", tmp_path / "a", "--size", "32x32", "--report", tmp_path / "r")
    assert code == 0, out + err


def test_export_unknown_setting(tmp_path):
    code, _, err = run_cli("export", "vit-ti16", "--out", tmp_path / "a", "--set", "depht=1")
    _one_line_error(code, err, "no setting 'depht'")
    assert not (tmp_path / "a").exists()


def test_no_plugins_export_from_a_fresh_process(tmp_path):
    """The console script imports what --no-plugins needs itself (onnx.inliner is not imported by onnx)."""
    out = tmp_path / "swin"
    proc = run_cli_subprocess("export", "swin-t", "--set", "depths=(1,1,1,1)", "--set", "embed_dim=32", "--set",
                              "num_heads=(1,2,4,8)", "--no-plugins", "--out", out)
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(out / "model.onnx"))
    assert not model.functions and all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    names = [n.name for n in model.graph.node]
    assert len(names) == len(set(names))  # the inlined function bodies are named apart


@pytest.mark.parametrize("command, says", [
    (["export", "vit-ti16"], "holds the previous export, or no model.json"),
    (["build-engine", "ARTIFACT"], "engines finished before it were kept"),
    (["validate", "ARTIFACT"], "files finished before it were kept, each whole"),
])
def test_an_interrupt_says_what_it_left(artifact, monkeypatch, command, says):
    """Ctrl-C: exit 130 and one line that is true of the command that was interrupted."""
    import tdeploy.deploy.cli.main as cli_main

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main.cli, "main", interrupt)
    code, _, err = run_cli(*[str(artifact) if a == "ARTIFACT" else a for a in command])
    assert code == 130 and err.startswith("interrupted: ")
    assert says in err and err.count("\n") == 1


def test_verbose_shows_the_exporters_own_output(tmp_path, capfd):
    """deploy -v export lets torch.onnx print its steps (the cause of an export failure shows there);
    without -v the output is tdeploy's alone."""
    args = ["export", "vit-ti16", "--set", "depth=1", "--static-size", "--size", "32x32"]
    code, out, err = run_cli(*args, "--out", tmp_path / "quiet")
    assert code == 0, err
    assert "[torch.onnx]" not in out + err + capfd.readouterr().out
    code, out, err = run_cli("-v", *args, "--out", tmp_path / "loud")
    assert code == 0, err
    assert "[torch.onnx] Obtain model graph" in out + err + capfd.readouterr().out
