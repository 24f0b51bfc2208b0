"""Where runs live: `<workspace>/runs/<run_id>/`, and the run's own `run.json`."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from ml_expert.errors import UsageError

DEFAULT_WORKSPACE = "ml-expert-workspace"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


def workspace_path(workspace: str | Path | None = None) -> Path:
    chosen = workspace or os.environ.get("ML_EXPERT_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id) or ".." in run_id:
        raise UsageError(f"invalid run id {run_id!r}: letters, digits, '-', '_' and '.' only")
    return run_id


def run_dir(workspace: Path, run_id: str) -> Path:
    return workspace / "runs" / check_run_id(run_id)


def read_run(path: Path) -> dict[str, Any]:
    file = path / "run.json"
    if not file.exists():
        raise UsageError(f"{path} is not a run directory (no run.json)")
    return json.loads(file.read_text())


def list_runs(workspace: Path) -> list[dict[str, Any]]:
    runs = []
    root = workspace / "runs"
    if not root.exists():
        return runs
    for path in sorted(root.iterdir()):
        if (path / "run.json").exists():
            data = json.loads((path / "run.json").read_text())
            runs.append(
                {"run_id": path.name, **{k: data.get(k) for k in ("status", "phase", "task", "created")}}
            )
    return runs
