"""`status` and `runs` read run.json through its model (runs.record.RunRecord), not by key.

A run.json that parses but no longer matches the model — a pid that is not a number, a gate
verdict without `passed` — is a damaged run named by its field: `status` says so with the data
error's exit code (was: a ValueError traceback, or a gate silently read as refused), and `runs`
lists it as damaged beside the readable ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "ml_expert"]


def _run(workspace: Path, run_id: str, record: dict) -> None:
    folder = workspace / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": run_id, **record}), encoding="utf-8")


def _cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args, "--workspace", str(workspace), "--json"], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"status": "running", "pid": "abc", "created": "2026-12-01T00:00:00Z"}, "pid"),
        (
            {
                "status": "finished",
                "gates": {"validation": {"failed": []}},
                "created": "2026-12-01T00:00:00Z",
            },
            "passed",
        ),
    ],
)
def test_a_record_off_its_model_is_a_damaged_run_named_by_field(
    tmp_path: Path, record: dict, field: str
) -> None:
    _run(tmp_path, "20261201-000000-bad000", record)
    _run(
        tmp_path,
        "20261130-000000-good00",
        {"status": "finished", "phase": "deployment", "created": "2026-11-30T00:00:00Z"},
    )
    status = _cli(tmp_path, "status", "20261201-000000-bad000")
    assert status.returncode == 3, status.stdout + status.stderr
    assert "Traceback" not in status.stderr
    out = json.loads(status.stdout)
    assert "damaged" in json.dumps(out) and field in json.dumps(out), out
    runs = _cli(tmp_path, "runs")
    assert runs.returncode == 0, runs.stdout + runs.stderr
    rows = {row["run_id"]: row for row in json.loads(runs.stdout)["runs"]}
    if field == "pid":  # the listing reads the record; it shows no gates, so a bad gate does not hide a run
        assert rows["20261201-000000-bad000"]["status"] == "damaged"
        assert field in rows["20261201-000000-bad000"]["reason"]
    else:
        assert rows["20261201-000000-bad000"]["status"] == "finished"
    assert rows["20261130-000000-good00"]["status"] == "finished"
