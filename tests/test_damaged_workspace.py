"""One bad file or a storage fault never takes the workspace down: reported, skipped, resumable.

The read-only and full-disk cases mount a small tmpfs (root only); elsewhere they are skipped."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "ml_expert"]
RUN = ["run", "iris", "--no-dnn", "--budget", "20", "--memory", "embedded", "--json"]


def ml(ws: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args, "--workspace", str(ws)], capture_output=True, text=True, timeout=timeout
    )


def _fake_run(ws: Path, run_id: str, text: str) -> None:
    path = ws / "runs" / run_id
    path.mkdir(parents=True)
    (path / "run.json").write_text(text)


def test_a_damaged_run_json_is_reported_and_skipped(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    good = {"run_id": "good", "status": "finished", "phase": "finish", "created": "2026-01-01T00:00:00Z"}
    _fake_run(ws, "good", json.dumps(good))
    _fake_run(ws, "torn", '{"run_id": "torn", "status": "runn')
    listed = ml(ws, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["run_id"]: r for r in json.loads(listed.stdout)["runs"]}
    assert rows["good"]["status"] == "finished"
    assert rows["torn"]["status"] == "damaged" and "damaged" in rows["torn"]["reason"]
    latest = ml(ws, "status", "--json")
    assert latest.returncode == 0 and json.loads(latest.stdout)["run_id"] == "good"
    torn = ml(ws, "status", "torn", "--json")
    assert torn.returncode == 3 and "damaged" in json.loads(torn.stdout)["error"]
    assert "Traceback" not in listed.stderr + latest.stderr + torn.stderr


def test_a_damaged_checkpoint_database_is_moved_aside_and_runs_go_on(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "checkpoints.sqlite").write_bytes(b"this is not a database" * 100)
    result = ml(ws, *RUN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["status"] == "finished"
    assert "checkpoint database" in result.stderr and "damaged" in result.stderr
    assert len(list(ws.glob("checkpoints.sqlite.damaged-*"))) == 1


@contextlib.contextmanager
def tmpfs(tmp_path: Path, size: str):
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.decode().strip()[:80]})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


@needs_root
def test_a_read_only_workspace_is_one_clear_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path, "4m") as mount:
        ws = mount / "ws"
        ws.mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        result = ml(ws, *RUN)
        assert result.returncode == 4, result.stderr[-2000:]
        out = json.loads(result.stdout)
        assert out["ok"] is False and "read-only" in out["error"], out
        assert "Traceback" not in result.stderr


@needs_root
def test_a_full_disk_fails_the_run_with_the_reason_and_it_resumes_once_space_is_back(tmp_path: Path) -> None:
    with tmpfs(tmp_path, "900k") as mount:
        ws = mount / "ws"
        result = ml(ws, *RUN, "--run-id", "full-disk")
        assert result.returncode == 4, result.stderr[-2000:]
        out = json.loads(result.stdout)
        assert "disk is full" in out["error"], out
        assert "Traceback" not in result.stderr
        run_path = ws / "runs" / "full-disk"
        assert not list(run_path.glob("*.tmp"))  # no 0-byte temp file left
        record = json.loads((run_path / "run.json").read_text())
        assert record["status"] == "failed" and record["error"]["kind"] == "storage"
        status = ml(ws, "status", "full-disk", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["error"]["kind"] == "storage"  # not "killed"
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        resumed = ml(ws, "resume", "full-disk", "--json")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert json.loads(resumed.stdout)["status"] == "finished"
