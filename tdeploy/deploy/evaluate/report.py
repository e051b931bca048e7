"""Writing validation and benchmark reports: JSON (for tools), Markdown (for people), HTML (plots)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from tdeploy.artifact.atomic import atomic_write_text


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def validation_markdown(report) -> str:
    rows = []
    for c in report.cases:
        for o in c.outputs:
            metric = c.metrics.get(report.main_metric, float("nan"))
            rows.append([c.backend, c.graph, c.size, c.batch, c.sample, o.output, o.max_abs, o.max_rel, o.cosine,
                         f"{o.atol:g}/{o.rtol:g}", metric, "pass" if c.passed else "FAIL"])
    header = ["backend", "graph", "size", "batch", "sample", "output", "max abs", "max rel", "cosine",
              "atol/rtol", report.main_metric, "result"]
    extra = sorted({m for c in report.cases for m in c.metrics} - {report.main_metric})
    extra_rows = [[c.backend, c.size, c.sample, *[c.metrics.get(m, float("nan")) for m in extra]]
                  for c in report.cases]
    parts = [
        f"# Validation: {report.variant} ({report.precision})",
        "",
        f"**{report.summary()}**",
        "",
        f"Artifact `{report.artifact}`, task {report.task}, backends {', '.join(report.backends)} vs PyTorch; "
        f"{report.main_metric} threshold {report.metric_threshold:g}. Weights: {report.weights}.",
        "",
        markdown_table(header, rows),
    ]
    if extra:
        parts += ["", "## Task metrics", "", markdown_table(["backend", "size", "sample", *extra], extra_rows)]
    return "\n".join(parts) + "\n"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _histograms(report) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for key, err in report.errors.items():
        fig, ax = plt.subplots(figsize=(5, 3))
        positive = err[err > 0]
        if positive.size:
            bins = np.logspace(np.log10(positive.min()), np.log10(positive.max() + 1e-30), 50)
            ax.hist(positive, bins=bins, color="#4a7ab5")
            ax.set_xscale("log")
        ax.set_title(f"|{key} - torch|  ({(err == 0).mean():.1%} exact)")
        ax.set_xlabel("absolute error")
        ax.set_ylabel("elements")
        out.append((key, _png(fig)))
        plt.close(fig)
    return out


def _to_display(img: np.ndarray) -> np.ndarray:
    """(C, H, W) float -> (H, W[, 3]) in [0, 1] for imshow."""
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.transpose(img[:3], (1, 2, 0))
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:  # normalised input: stretch for display
        img = (img - lo) / (hi - lo + 1e-12)
    return np.clip(img, 0, 1)


def _image_panels(report) -> list[tuple[str, str]]:
    """Input | PyTorch output | backend output | |difference| magnified, per backend and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for item in report.images:
        diff = np.abs(item["output"].astype(np.float32) - item["reference"].astype(np.float32))
        gain = 1.0 / max(float(diff.max()), 1e-12)
        panels = [("input", item["input"]), ("PyTorch", item["reference"]), (item["backend"], item["output"]),
                  (f"|difference| x{gain:.3g}", diff * gain)]
        fig, axes = plt.subplots(1, 4, figsize=(14, 4))
        for ax, (title, img) in zip(axes, panels):
            shown = _to_display(img)
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title)
            ax.axis("off")
        size = item["size"]
        label = f"{item['backend']} at {size[0]}x{size[1]}" if size else item["backend"]
        out.append((label, _png(fig)))
        plt.close(fig)
    return out


def validation_html(report) -> str:
    md = html.escape(validation_markdown(report))
    figures = [*(("error histogram: " + k, v) for k, v in _histograms(report)), *_image_panels(report)]
    imgs = "\n".join(
        f'<figure><img src="data:image/png;base64,{b64}"><figcaption>{html.escape(title)}</figcaption></figure>'
        for title, b64 in figures
    )
    status = "pass" if report.passed else "fail"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tdeploy validation: {html.escape(report.variant)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} .pass{{color:#17803d}} .fail{{color:#b42318}}
pre{{background:#f6f8fa;padding:1em;overflow-x:auto}} figure{{display:inline-block;margin:0.5em}}</style></head>
<body><h1 class="{status}">{html.escape(report.summary())}</h1>
{imgs}
<pre>{md}</pre></body></html>
"""


def write_validation_report(report, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        out / "report.json": json.dumps(report.to_json(), indent=2, default=_json_default) + "\n",
        out / "report.md": validation_markdown(report),
        out / "report.html": validation_html(report),
    }
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float):
        return str(value)
    raise TypeError(type(value).__name__)
