"""A real run killed with SIGKILL during training, shown as interrupted, resumed to the end.

Finished phases come back from the LangGraph checkpointer (their files are not rewritten) and
training continues from BackupAndRestore's last backup, not from epoch 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "ml_expert"]


def _status(run_id: str, workspace: Path) -> dict:
    proc = subprocess.run(
        [*CLI, "status", run_id, "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _wait_for_backup(workspace: Path, proc: subprocess.Popen, min_epoch: int) -> Path:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed during training"
        for run_json in (workspace / "runs").glob("*/run.json"):
            try:
                phase = json.loads(run_json.read_text()).get("phase")
            except ValueError:
                continue
            meta = run_json.parent / "checkpoints" / "attempt-0" / "backup" / "training_metadata.json"
            if phase == "training" and meta.exists():
                try:
                    if json.loads(meta.read_text())["epoch"] >= min_epoch:
                        return run_json.parent
                except (ValueError, KeyError):
                    pass
        time.sleep(0.1)
    raise AssertionError("training never reached its first backups")


def test_kill_during_training_then_resume_to_the_end(datasets: Path, workspace: Path) -> None:
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            str(datasets / "wine.csv"),
            "--seed",
            "2",
            "--budget",
            "40",
            "--json",
            "--workspace",
            str(workspace),
            "--memory",
            "embedded",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_dir = _wait_for_backup(workspace, proc, min_epoch=2)
        run_id = run_dir.name
        assert _status(run_id, workspace)["status"] == "running"
        proc.kill()  # SIGKILL: no handler, no cleanup
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    killed = _status(run_id, workspace)
    assert killed["status"] == "interrupted" and killed["phase"] == "training"
    baseline_file = run_dir / "models" / "random_forest.joblib"
    prepared_file = run_dir / "data" / "X_train.npy"
    stamps = (baseline_file.stat().st_mtime_ns, prepared_file.stat().st_mtime_ns)
    backup_epoch = json.loads(
        (run_dir / "checkpoints" / "attempt-0" / "backup" / "training_metadata.json").read_text()
    )["epoch"]

    resumed = subprocess.run(
        [*CLI, "resume", run_id, "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    payload = json.loads(resumed.stdout)
    assert payload["status"] == "finished" and payload["ok"]
    assert _status(run_id, workspace)["status"] == "finished"
    # data preparation and model selection were not run again
    assert (baseline_file.stat().st_mtime_ns, prepared_file.stat().st_mtime_ns) == stamps
    # training went on from the backup, and the history still covers every epoch
    finding = json.loads((run_dir / "findings" / "training.json").read_text())
    dnn = finding["dnn"]
    assert dnn["initial_epoch"] == backup_epoch >= 2
    assert len(dnn["history"]["loss"]) == dnn["epochs_trained"] > backup_epoch
    record = json.loads((run_dir / "run.json").read_text())
    assert record["resumed"][0]["from_phase"] == "training"
    assert any(d["decision"].startswith("resume training at epoch") for d in record["decisions"])
    # a finished run is not resumed again
    again = subprocess.run(
        [*CLI, "resume", run_id, "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "already finished" in json.loads(again.stdout)["error"]
