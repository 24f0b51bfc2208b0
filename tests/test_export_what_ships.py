"""Only what ships is exported and judged: a network trained but not chosen is not converted, so
a failed conversion of the losing network (TFLite, say) can never refuse the chosen package."""

from __future__ import annotations

import json
from pathlib import Path

from ml_expert import run


def test_a_losing_network_is_not_exported(workspace: Path) -> None:
    # A learning rate of 1e-9 leaves the network at chance: it is trained, and it loses. The
    # budget leaves the network its time even on a loaded machine (it stops early, at chance).
    result = run("iris", seed=4, budget=300, workspace=workspace, memory="embedded", dnn_learning_rate=1e-9)
    assert result.status == "finished", result.reason
    run_dir = Path(result.run_dir)
    board = json.loads((run_dir / "findings" / "training.json").read_text())
    assert "dnn" in json.dumps(board), "the network must have been trained for this test to mean anything"
    assert result.chosen_model != "dnn"
    assert not (run_dir / "exports" / "dnn").exists()
    gate = json.loads((run_dir / "run.json").read_text())["gates"]["release"]
    judged = [c["name"] for c in gate["checks"] if c["name"].startswith("export_")]
    assert sorted(judged) == ["export_joblib_matches", "export_onnx_matches"], judged
