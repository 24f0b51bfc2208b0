"""evaluation_report.md and what it is rendered from, so it is rendered, never edited.

The tester (or the clustering evaluator) writes the report before any export exists; the deployment
phase measures each export's latency afterwards. Rather than splitting the markdown on a heading and
appending, the report's typed inputs (report_inputs.py) are kept beside it (`report_inputs.json`)
and the deployment phase renders the whole report again with the latency rows: one renderer, and a
resumed deployment renders the same file again instead of adding a second section.
"""

from __future__ import annotations

import json
from pathlib import Path

from ml_expert.tools.validation.clustering import render_clustering_report
from ml_expert.tools.validation.report import latency_section, render_report
from ml_expert.tools.validation.report_inputs import (
    ClusteringReportInputs,
    LatencyRow,
    ReportInputs,
    from_kept,
    kept,
)

REPORT = "evaluation_report.md"
REPORT_INPUTS = "report_inputs.json"


def render(inputs: ReportInputs, latency: list[LatencyRow] | None = None) -> str:
    """The report's markdown: the supervised or the clustering renderer, then the latency table."""
    if isinstance(inputs, ClusteringReportInputs):
        text = render_clustering_report(inputs)
    else:
        text = render_report(inputs)
    if latency:
        text = text.rstrip("\n") + "\n" + latency_section(latency)
    return text


def write_report(run_dir: Path, inputs: ReportInputs) -> Path:
    """Render the report and keep its inputs (JSON: numbers, text, lists) for the later render."""
    (run_dir / REPORT_INPUTS).write_text(json.dumps(kept(inputs), default=str))
    path = run_dir / REPORT
    path.write_text(render(inputs))
    return path


def read_inputs(run_dir: Path) -> ReportInputs | None:
    """The kept inputs, validated (an older run's file too); None when the run wrote no report."""
    path = run_dir / REPORT_INPUTS
    return from_kept(json.loads(path.read_text())) if path.exists() else None


def render_with_latency(run_dir: Path, latency: list[LatencyRow]) -> bool:
    """Render the report again from its kept inputs with the exports' latency rows; False when the
    run has no report to render (it stopped before validation)."""
    inputs = read_inputs(run_dir)
    if inputs is None:
        return False
    (run_dir / REPORT).write_text(render(inputs, latency))
    return True
