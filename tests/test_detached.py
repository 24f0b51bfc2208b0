"""Detached runs: `run --detach` returns at once, the run lives on in its own process, and is polled.

A run whose process is killed mid-run shows as failed with its reason, not as running forever.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "ml_expert"]


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _status(workspace: Path, run_id: str) -> dict:
    proc = _cli("status", run_id, "--workspace", str(workspace), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # exactly one JSON object
    return json.loads(lines[0])


def _poll(workspace: Path, run_id: str, until, timeout: float = 240) -> tuple[dict, list[str]]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        status = _status(workspace, run_id)
        seen.append(status["status"])
        if until(status) or time.monotonic() > deadline:
            return status, seen
        time.sleep(0.5)


def _detach(workspace: Path, *args: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    proc = _cli("run", *args, "--detach", "--json", "--workspace", str(workspace))
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0]), elapsed


def test_detached_run_polled_to_completion(workspace: Path) -> None:
    started, elapsed = _detach(workspace, "iris", "--no-dnn", "--budget", "60", "--seed", "1")
    assert elapsed < 10, "the caller must get the run id at once"
    run_id = started["run_id"]
    # The caller has exited; the run goes on in its own session.
    status, seen = _poll(workspace, run_id, lambda s: s["done"])
    assert status["status"] == "finished", status
    assert any(s in ("starting", "running") for s in seen), seen
    assert set(status["gates"]) == {"data", "plan", "training", "validation", "release"}
    run_path = workspace / "runs" / run_id
    assert (run_path / "deployment" / "manifest.json").exists()
    log = (run_path / "run.log").read_text()
    assert json.loads(log.strip().splitlines()[-1])["status"] == "finished"  # the child's --json line

    listed = _cli("runs", "--workspace", str(workspace), "--json")
    assert listed.returncode == 0
    runs = json.loads(listed.stdout)["runs"]
    assert [r["run_id"] for r in runs] == [run_id] and runs[0]["status"] == "finished"


def test_killed_detached_run_shows_interrupted_with_reason(workspace: Path) -> None:
    # A budget long enough that the run is still training when it is killed.
    started, _ = _detach(workspace, "breast_cancer", "--budget", "120")
    run_id = started["run_id"]
    status, _ = _poll(workspace, run_id, lambda s: s["phase"] not in (None, "queued", "init"), timeout=120)
    assert status["status"] == "running", status
    pid = json.loads((workspace / "runs" / run_id / "run.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    status, _ = _poll(workspace, run_id, lambda s: s["done"], timeout=30)
    # Killed mid-run: not running any more, and resumable (`ml-expert resume`), with the reason.
    assert status["status"] == "interrupted"
    assert f"pid {pid}" in status["reason"] and "ended while the run was running" in status["reason"]
    assert status["error"]["kind"] == "killed"
    # Written back: a plain read of run.json agrees now.
    assert json.loads((workspace / "runs" / run_id / "run.json").read_text())["status"] == "interrupted"


def test_detached_data_error_is_reported(workspace: Path) -> None:
    started, _ = _detach(workspace, "iris", "--target", "no_such_column", "--no-dnn")
    status, _ = _poll(workspace, started["run_id"], lambda s: s["done"], timeout=120)
    assert status["status"] == "failed"
    assert status["error"]["kind"] == "data" and "no_such_column" in status["error"]["message"]


def test_detach_rejects_bad_flags_before_starting(workspace: Path) -> None:
    proc = _cli("run", "iris", "--budget", "0", "--detach", "--json", "--workspace", str(workspace))
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["ok"] is False
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())
