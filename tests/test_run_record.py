"""run.json has one writer, RunFile: typed statuses and locked, atomic read-modify-writes.

A detached child, its parent and a poller write the same run.json; without the lock two
read-modify-writes interleave and one loses the other's fields.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml_expert.runs import RunFile, RunStatus

WRITES = 40


def _writer(path: str, who: str) -> None:
    run = RunFile(path)
    for i in range(WRITES):
        run.append("events", f"{who}-{i}")
        run.record_gate(f"{who}-{i}", {"passed": True})


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    RunFile(tmp_path).start("r", RunStatus.RUNNING, "init")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), who)) for who in ("child", "poller", "parent")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    data = json.loads((tmp_path / "run.json").read_text())
    assert len(data["events"]) == 3 * WRITES and len(data["gates"]) == 3 * WRITES
    assert data["status"] == "running" and data["run_id"] == "r"


def test_transitions_are_typed(tmp_path: Path) -> None:
    run = RunFile(tmp_path)
    first = run.start("r", RunStatus.STARTING, "queued", detached=True)
    assert run.start("r", RunStatus.RUNNING, "init").created == first.created  # created is kept
    record = run.fail("internal", "boom", "model_selection")
    assert record.status is RunStatus.FAILED and record.status.done and record.status.resumable
    assert record.error is not None and record.error.node == "model_selection"
    assert run.read().detached is True
    assert not RunStatus.FINISHED.resumable and RunStatus.APPROVING.active
    with pytest.raises(ValidationError):
        run.update(status="half-done")
    assert run.read().status is RunStatus.FAILED  # a refused write changes nothing
