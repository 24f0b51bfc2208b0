"""The narrow outputs of a run (metrics and artifact paths), computed from the state alone.

Shared by the graph's `finish` node (so a parent graph reads them from the output schema) and
the runner (so `RunResult` says the same thing). Imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RUN_FILES = (
    ("metrics", "metrics.json"),
    ("evaluation_report", "evaluation_report.md"),
    ("training_history", "training_history.json"),
    ("training_curves", "training_curves.png"),
    ("confusion_matrix", "confusion_matrix.png"),
)


def run_metrics(state: dict[str, Any]) -> dict[str, Any]:
    """Test-split metrics measured by the tester (empty before validation ran)."""
    from ml_expert.phases import ValidationResult  # here: importing this module stays light

    validation = ValidationResult.maybe(state)
    return validation.test_metrics.model_dump() if validation else {}


def run_artifacts(state: dict[str, Any]) -> dict[str, str]:
    """Paths of what the run wrote: run files that exist, the deployment package, every export."""
    path = Path(state["run_dir"])
    artifacts = {"run_dir": str(path), "run_json": str(path / "run.json")}
    for name, file in RUN_FILES:
        if (path / file).exists():
            artifacts[name] = str(path / file)
    from ml_expert.phases import DeploymentResult

    deployment = DeploymentResult.maybe(state)
    if deployment is None:
        return artifacts
    if deployment.package_dir:
        artifacts["deployment"] = deployment.package_dir
    for record in deployment.exports:
        artifacts[f"export_{Path(record.path).parent.name}_{record.format}"] = record.path
    return artifacts
