"""`ml-expert run` and `ml-expert predict` through the real CLI, as a user calls them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

CLI = [sys.executable, "-m", "ml_expert"]


def run_quick(data: Path, target: str, workspace: Path, seed: int, *extra: str) -> dict[str, Any]:
    """A run at budget 60 on embedded memory (no network unless `extra` has no --no-dnn: pass
    "--dnn" to keep it); returns the JSON summary."""
    flags = [f for f in extra if f != "--dnn"] if "--dnn" in extra else ["--no-dnn", *extra]
    proc = subprocess.run(
        [*CLI, "run", str(data), "--target", target, "--json", "--workspace", str(workspace)]
        + ["--memory", "embedded", "--budget", "60", "--seed", str(seed), *flags],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def predict_rows(
    run_id: str, rows: pd.DataFrame, workspace: Path, tmp_path: Path, proba: bool = True
) -> pd.DataFrame:
    """`ml-expert predict RUN rows.csv [--proba]` on the run's deployment package."""
    rows_file, out = tmp_path / "new.csv", tmp_path / "pred.csv"
    rows.to_csv(rows_file, index=False)
    proc = subprocess.run(
        [*CLI, "predict", run_id, str(rows_file), "--output", str(out)]
        + (["--proba"] if proba else [])
        + ["--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(out)
