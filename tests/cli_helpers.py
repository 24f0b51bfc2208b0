"""`ml-expert run` and `ml-expert predict` through the real CLI, as a user calls them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

CLI = [sys.executable, "-m", "ml_expert"]


def run_quick(data: Path, target: str, workspace: Path, seed: int) -> dict[str, Any]:
    """A scikit-learn-only run (no network) on embedded memory; returns the JSON summary."""
    proc = subprocess.run(
        [*CLI, "run", str(data), "--target", target, "--json", "--workspace", str(workspace)]
        + ["--memory", "embedded", "--no-dnn", "--budget", "60", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def predict_rows(run_id: str, rows: pd.DataFrame, workspace: Path, tmp_path: Path) -> pd.DataFrame:
    """`ml-expert predict RUN rows.csv --proba` on the run's deployment package."""
    rows_file, out = tmp_path / "new.csv", tmp_path / "pred.csv"
    rows.to_csv(rows_file, index=False)
    proc = subprocess.run(
        [*CLI, "predict", run_id, str(rows_file), "--output", str(out), "--proba"]
        + ["--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(out)
