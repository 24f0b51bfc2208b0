"""Nothing in a run folder is unpickled, and nothing is read before its hash is checked.

A run awaiting approval is the attack surface: someone who can write to its folder replaces a
split, and the approver's process reads it. The splits are Parquet / .npy (no code inside),
and each is hash-checked against the run's checkpointed state before it is read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml_expert import run
from ml_expert.errors import IntegrityError
from ml_expert.registry import Registry
from ml_expert.tools.data.splits import read_array, write_array

CLI = [sys.executable, "-m", "ml_expert"]


def test_run_folder_holds_no_pickle_and_every_split_has_a_hash(workspace: Path) -> None:
    paused = run("iris", train_dnn=False, budget=30, seed=3, workspace=workspace, require_approval=True)
    data = Path(paused.run_dir) / "data"
    names = sorted(p.name for p in data.iterdir())
    assert not [n for n in names if n.endswith((".pkl", ".pickle"))], names
    assert {"train.parquet", "val.parquet", "test.parquet", "val_raw.parquet", "X_train.npy"} <= set(names)

    # a tampered split is refused before it is read: garbage that no reader could parse gives the
    # hash error, not a parser error, and nothing is registered
    (data / "val.parquet").write_bytes(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    proc = subprocess.run(
        [*CLI, "approve", paused.run_id, "--workspace", str(workspace), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert "SHA-256" in out["error"] and "val.parquet" in out["error"], out
    assert "Traceback" not in proc.stderr
    assert Registry(workspace).versions() == []
    record = json.loads((Path(paused.run_dir) / "run.json").read_text())
    assert record["status"] == "failed" and "SHA-256" in record["error"]["message"]


def test_arrays_never_unpickle(tmp_path: Path) -> None:
    path = tmp_path / "X.npy"
    digest = write_array(np.arange(6.0).reshape(3, 2), path)
    assert read_array(path, {"X": digest}, "X").shape == (3, 2)
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # an object array
    with pytest.raises(IntegrityError):
        read_array(path, {"X": digest}, "X")
    with pytest.raises(IntegrityError, match="no SHA-256 recorded"):
        read_array(path, {}, "X")
