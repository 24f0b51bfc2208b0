"""A crash inside a phase is recorded against that phase, and a crash while choosing or training
a model exits with the documented 4 (one message, no traceback). The crash is injected into the
researcher's metric choice, the first thing model selection does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ml_expert.errors import TrainingError

CRASH = """
import sys
import ml_expert.agents.researcher as researcher

def crash(*args, **kwargs):
    raise RuntimeError("injected crash in model selection")

researcher.primary_metric = crash
from ml_expert.cli import main
sys.argv = ["ml-expert", *sys.argv[1:]]
main()
"""


def _error_of(workspace: Path) -> dict:
    (run,) = (workspace / "runs").iterdir()
    return json.loads((run / "run.json").read_text())


def test_crash_is_recorded_against_the_node_that_crashed(workspace: Path, monkeypatch) -> None:
    import ml_expert.agents.researcher as researcher
    from ml_expert import run

    def crash(*args, **kwargs):
        raise RuntimeError("injected crash in model selection")

    monkeypatch.setattr(researcher, "primary_metric", crash)
    with pytest.raises(TrainingError, match="injected crash"):
        run("iris", budget=30, workspace=workspace, memory="embedded", train_dnn=False)
    record = _error_of(workspace)
    assert record["status"] == "failed"
    assert record["error"]["node"] == "model_selection", record["error"]  # not gate_data, the last one done


def test_cli_exits_4_without_a_traceback(workspace: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, "run", "iris", "--json", "--no-dnn", "--budget", "30"]
        + ["--memory", "embedded", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["error_kind"] == "training" and "injected crash" in out["error"]
