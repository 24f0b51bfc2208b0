"""Same data + seed + versions → same plan, same chosen model, same test metrics; the budget holds.

Two real runs in two fresh processes (the CLI), compared figure by figure: scikit-learn exactly,
Keras on CPU within 1e-6.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# 30 s: the 5-fold CV of the candidates takes ~12 s of it on 2 cores (the 300-tree forest ~8 s),
# and the network's planned epochs must still fit in what is left before the wall-clock cap.
BUDGET = 30.0


def _run(data: Path, workspace: Path) -> tuple[dict, dict]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_expert",
            "run",
            str(data),
            "--seed",
            "3",
            "--budget",
            str(BUDGET),
            "--json",
            "--workspace",
            str(workspace),
            "--memory",
            "embedded",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    finding = json.loads((Path(payload["run_dir"]) / "findings" / "training.json").read_text())
    return payload, finding


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def test_two_seeded_runs_agree_and_respect_the_budget(datasets: Path, tmp_path: Path) -> None:
    first, train1 = _run(datasets / "wine.csv", tmp_path / "a")
    second, train2 = _run(datasets / "wine.csv", tmp_path / "b")
    assert first["chosen_model"] == second["chosen_model"]
    # scikit-learn candidates: identical validation scores
    sk1 = {c["name"]: c["val_score"] for c in train1["leaderboard"] if c["kind"] == "sklearn"}
    sk2 = {c["name"]: c["val_score"] for c in train2["leaderboard"] if c["kind"] == "sklearn"}
    assert sk1 == sk2 and len(sk1) >= 4
    # the network was trained in both, to the same planned count, and its curves agree within 1e-6
    dnn1, dnn2 = train1["dnn"], train2["dnn"]
    assert dnn1["config"]["max_epochs"] == dnn2["config"]["max_epochs"]
    assert not dnn1["cap_hit"] and not dnn2["cap_hit"], "the wall-clock cap fired; the plan was not run"
    assert dnn1["epochs_trained"] == dnn2["epochs_trained"]
    for key in ("loss", "val_loss"):
        assert len(dnn1["history"][key]) == len(dnn2["history"][key])
        assert all(
            _close(a, b, 1e-6) for a, b in zip(dnn1["history"][key], dnn2["history"][key], strict=True)
        )
    assert _close(dnn1["candidate"]["val_score"], dnn2["candidate"]["val_score"], 1e-6)
    # the same test metrics (exact for scikit-learn, 1e-6 for Keras)
    tol = 1e-6 if first["chosen_model"] == "dnn" else 0.0
    for name, value in first["metrics"].items():
        if isinstance(value, float):
            assert _close(value, second["metrics"][name], tol), name
    # the budget: selection + training within 10%, and the finding says how the time was spent
    for spent in (train1["time"], train2["time"]):
        assert spent["budget_seconds"] == BUDGET
        assert spent["total_seconds"] <= 1.1 * BUDGET
        assert set(spent["baseline_fit_seconds"]) >= {
            "dummy",
            "linear",
            "random_forest",
            "hist_gradient_boosting",
            "lightgbm",
        }
        assert spent["network_epochs_run"] == dnn1["epochs_trained"]
    # the hardware check before training is recorded
    hw = dnn1["hardware"]
    assert hw["cpu_count"] >= 1 and hw["available_memory_mb"] > 0 and hw["backend"] == dnn1["backend"]
    assert hw["device_used"] == (f"GPU ({hw['gpus'][0]})" if hw["gpus"] else "CPU")
    plan = json.loads((Path(first["run_dir"]) / "findings" / "model-selection.json").read_text())["plan"]
    assert "max_epochs = clamp(" in plan["epoch_plan"]["rule"]
