"""`--require-approval`: the graph stops before deployment (a LangGraph interrupt) and resumes.

The pause survives the process: the run is started by one process and approved by another,
through the SQLite checkpointer, as `ml-expert approve` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ml_expert import run

CLI = [sys.executable, "-m", "ml_expert"]


def _run_json(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


def test_approval_stops_then_resumes_to_deployment(workspace: Path) -> None:
    paused = run("iris", train_dnn=False, budget=60, seed=2, workspace=workspace, require_approval=True)
    path = Path(paused.run_dir)
    assert paused.status == "awaiting_approval" and not paused.ok
    assert paused.metrics["accuracy"] > 0.5  # validated before the pause
    assert set(paused.gates) == {"data", "plan", "training", "validation"}  # no release gate yet
    assert not (path / "deployment").exists()
    assert _run_json(path)["status"] == "awaiting_approval"

    status = subprocess.run(
        [*CLI, "status", paused.run_id, "--workspace", str(workspace), "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(status.stdout)["status"] == "awaiting_approval"  # a paused run is not a dead one

    proc = subprocess.run(
        [*CLI, "approve", paused.run_id, "--note", "looks fine", "--workspace", str(workspace), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "finished" and result["gates"]["release"] is True
    assert result["metrics"] == paused.metrics  # resumed, not retrained
    assert (path / "deployment" / "manifest.json").exists()
    record = _run_json(path)
    assert record["status"] == "finished"
    assert record["approval"]["approved"] is True and record["approval"]["note"] == "looks fine"

    again = subprocess.run(
        [*CLI, "approve", paused.run_id, "--workspace", str(workspace), "--json"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "not awaiting_approval" in json.loads(again.stdout)["error"]


def test_rejected_deployment_ends_refused_without_package(workspace: Path) -> None:
    paused = run("iris", train_dnn=False, budget=60, seed=4, workspace=workspace, require_approval=True)
    proc = subprocess.run(
        [
            *CLI,
            "approve",
            paused.run_id,
            "--reject",
            "--note",
            "not now",
            "--workspace",
            str(workspace),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 5, proc.stderr  # documented exit code for a refusal
    result = json.loads(proc.stdout)
    assert result["status"] == "refused" and "not approved: not now" in result["reason"]
    assert not (Path(paused.run_dir) / "deployment").exists()
    assert _run_json(Path(paused.run_dir))["approval"]["approved"] is False


def test_run_never_reads_awaiting_approval_once_approved(workspace: Path, monkeypatch) -> None:
    """On resume LangGraph re-runs the approval node from its start; it must not write
    awaiting_approval again, or a poller (detached.wait, get_status) stops on a run that is deploying."""
    import ml_expert.graph.approval as node
    from ml_expert.runner import approve

    paused = run("iris", train_dnn=False, budget=60, seed=9, workspace=workspace, require_approval=True)
    written: list[str] = []

    class Recording(node.RunFile):
        def update(self, **fields):
            if "status" in fields:
                written.append(fields["status"])
            return super().update(**fields)

    monkeypatch.setattr(node, "RunFile", Recording)
    result = approve(paused.run_id, workspace=workspace, by="test")
    assert result.status == "finished"
    assert written == ["running"], written  # the decision read, then deployment: no awaiting_approval


def test_detached_approval_as_the_mcp_tool_does(workspace: Path) -> None:
    paused = run("iris", train_dnn=False, budget=60, seed=8, workspace=workspace, require_approval=True)
    proc = subprocess.run(
        [
            *CLI,
            "approve",
            paused.run_id,
            "--detach",
            "--by",
            "agent",
            "--workspace",
            str(workspace),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "approving"
    twice = subprocess.run(
        [*CLI, "approve", paused.run_id, "--workspace", str(workspace), "--json"],
        capture_output=True,
        text=True,
    )
    assert twice.returncode == 2  # a second approval is refused while the first one runs
    from ml_expert.detached import wait

    summary = wait(workspace, paused.run_id, timeout=240)
    assert summary["status"] == "finished", summary
    assert summary["approval"]["by"] == "agent"
    assert (Path(paused.run_dir) / "deployment" / "manifest.json").exists()


def test_without_the_flag_nothing_pauses(workspace: Path) -> None:
    result = run("iris", train_dnn=False, budget=60, seed=5, workspace=workspace)
    assert result.status == "finished" and "approval" not in _run_json(Path(result.run_dir))
