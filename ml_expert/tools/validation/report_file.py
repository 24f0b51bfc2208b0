"""evaluation_report.md and what it is rendered from, so it is rendered, never edited.

The tester (or the clustering evaluator) writes the report before any export exists; the deployment
phase measures each export's latency afterwards. Rather than splitting the markdown on a heading and
appending, the report's inputs are kept beside it (`report_inputs.json`) and the deployment phase
renders the whole report again with the latency rows: one renderer, and a resumed deployment renders
the same file again instead of adding a second section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from ml_expert.tools.validation.clustering import render_clustering_report
from ml_expert.tools.validation.report import latency_section, render_report

REPORT = "evaluation_report.md"
REPORT_INPUTS = "report_inputs.json"
Kind = Literal["supervised", "clustering"]
_RENDERERS = {"supervised": render_report, "clustering": render_clustering_report}


def _render(kind: Kind, info: dict[str, Any], latency: list[dict[str, Any]] | None) -> str:
    text = _RENDERERS[kind](info)
    if latency:
        text = text.rstrip("\n") + "\n" + latency_section(latency)
    return text


def write_report(run_dir: Path, kind: Kind, info: dict[str, Any]) -> Path:
    """Render the report and keep its inputs (JSON: numbers, text, lists) for the later render."""
    (run_dir / REPORT_INPUTS).write_text(json.dumps({"kind": kind, "info": info}, default=str))
    path = run_dir / REPORT
    path.write_text(_render(kind, info, None))
    return path


def render_with_latency(run_dir: Path, latency: list[dict[str, Any]]) -> bool:
    """Render the report again from its kept inputs with the exports' latency rows; False when the
    run has no report to render (it stopped before validation)."""
    inputs = run_dir / REPORT_INPUTS
    if not inputs.exists():
        return False
    kept = json.loads(inputs.read_text())
    (run_dir / REPORT).write_text(_render(kept["kind"], kept["info"], latency))
    return True
