"""The whole graph on real datasets (binary, multiclass, regression) with small budgets.

Every assertion is on a real outcome: files exist and parse, exports reloaded and agreed, memory
holds the findings, and the chosen model beats the dummy on the untouched test split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from ml_expert import run
from ml_expert.memory import EmbeddedMemory
from ml_expert.runtime.inference import ModelInference

PHASE_KEYS = ("data-analysis", "model-selection", "training", "metrics", "deployment")
GATES = ("data", "plan", "training", "validation", "release")
CLI = [sys.executable, "-m", "ml_expert"]


def _check_run_outputs(run_dir: Path) -> dict:
    for name in (
        "run.json",
        "metrics.json",
        "evaluation_report.md",
        "training_history.json",
        "training_curves.png",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    history = json.loads((run_dir / "training_history.json").read_text())
    assert len(history["loss"]) == len(history["val_loss"]) >= 1
    assert (run_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run_dir / "evaluation_report.md").read_text()
    for section in ("Test metrics", "Leaderboard", "Neural network", "Decisions"):
        assert section in report
    assert metrics["test_score"] > metrics["dummy_test_score"]
    manifest = json.loads((run_dir / "deployment" / "manifest.json").read_text())
    assert {"model.onnx", "schema.json", "inference.py", "requirements.txt", "README.md"} <= set(
        manifest["files"]
    )
    assert manifest["seed"] == 7 and len(manifest["data_fingerprint"]) == 64
    return metrics


def test_cli_binary_json_with_redis(datasets: Path, workspace: Path, live_redis_url: str) -> None:
    proc = subprocess.run(
        [
            *CLI,
            "run",
            str(datasets / "breast_cancer.csv"),
            "--seed",
            "7",
            "--budget",
            "40",
            "--json",
            "--workspace",
            str(workspace),
            "--memory",
            live_redis_url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)  # exactly one JSON object and nothing else on stdout
    assert proc.stdout.strip().count("\n") == 0
    assert payload["ok"] and payload["status"] == "finished" and payload["task"] == "classification"
    assert payload["gates"] == {g: True for g in GATES}
    for name in ("deployment", "evaluation_report", "training_history", "training_curves", "metrics"):
        assert Path(payload["artifacts"][name]).exists(), name
    run_dir = Path(payload["run_dir"])
    metrics = _check_run_outputs(run_dir)
    assert payload["metrics"]["accuracy"] > 0.9 and "roc_auc" in payload["metrics"]
    # the network (trained here: training_history exists) stopped on training rows it held back,
    # so the validation rows it was then compared on were unseen by it
    record = json.loads((run_dir / "run.json").read_text())
    decisions = {d["decision"]: d["reason"] for d in record["decisions"]}
    assert "validation rows stay unseen" in decisions["early stopping on held-back training rows"]
    assert metrics["test"]["accuracy"] == payload["metrics"]["accuracy"]

    client = redis.Redis.from_url(live_redis_url, decode_responses=True)
    run_id = payload["run_id"]
    for key in (*PHASE_KEYS, *(f"guardrails/{g}" for g in GATES)):
        value = client.get(f"ml-expert/{run_id}/{key}")
        assert value is not None, key
        json.loads(value)
    assert (
        json.loads(client.get(f"ml-expert/{run_id}/metrics"))["test_metrics"]["accuracy"]
        == metrics["test"]["accuracy"]
    )

    # every export of the chosen model (and only of it: what ships) was reloaded and matched
    exports = json.loads(client.get(f"ml-expert/{run_id}/deployment"))["exports"]
    formats = {e["format"] for e in exports}
    chosen = payload["chosen_model"]
    assert formats == (
        {"keras", "h5", "savedmodel", "tflite", "onnx"} if chosen == "dnn" else {"joblib", "onnx"}
    )
    assert {Path(e["path"]).parent.name for e in exports} == {chosen}
    assert all(e["parity"]["passed"] for e in exports)

    listed = subprocess.run(
        [*CLI, "memory", "list", run_id, "--memory", live_redis_url, "--json"], capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert f"ml-expert/{run_id}/metrics" in json.loads(listed.stdout)["keys"]
    for key in (*PHASE_KEYS, *(f"guardrails/{g}" for g in GATES)):
        client.delete(f"ml-expert/{run_id}/{key}")


def test_multiclass_strings_and_missing_values_with_embedded_memory(datasets: Path, workspace: Path) -> None:
    result = run(str(datasets / "penguins.csv"), seed=7, budget=30, workspace=workspace, memory="embedded")
    assert result.ok, result.reason
    assert result.task == "classification"
    run_dir = Path(result.run_dir)
    metrics = _check_run_outputs(run_dir)
    assert metrics["test"]["accuracy"] > 0.9
    store = EmbeddedMemory(workspace / "memory.sqlite")
    keys = store.keys(result.run_id)
    for key in PHASE_KEYS:
        assert f"ml-expert/{result.run_id}/{key}" in keys
    assert store.latest() == result.run_id

    frame = pd.read_csv(datasets / "penguins.csv")
    output = workspace / "pred.csv"
    proc = subprocess.run(
        [
            *CLI,
            "predict",
            result.run_id,
            str(datasets / "penguins.csv"),
            "--output",
            str(output),
            "--proba",
            "--workspace",
            str(workspace),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    predicted = pd.read_csv(output)
    assert len(predicted) == len(frame)
    assert set(predicted["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    proba = predicted[[f"proba_{c}" for c in ("Adelie", "Chinstrap", "Gentoo")]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    assert (predicted["prediction"] == frame["target"]).mean() > 0.9


def test_regression_exports_agree(datasets: Path, workspace: Path) -> None:
    result = run(str(datasets / "diabetes.csv"), seed=7, budget=30, workspace=workspace, memory="embedded")
    assert result.ok, result.reason
    assert result.task == "regression"
    metrics = _check_run_outputs(Path(result.run_dir))
    assert set(metrics["test"]) >= {"rmse", "mae", "r2"}
    assert metrics["test"]["r2"] > 0.2

    runtime = ModelInference(str(Path(result.run_dir) / "deployment"))
    rows = pd.read_csv(datasets / "diabetes.csv").drop(columns=["target"]).head(25)
    values = runtime.predict(rows)
    assert len(values) == 25 and all(np.isfinite(values))


def test_gate_refusal_stops_before_deployment(datasets: Path, workspace: Path) -> None:
    proc = subprocess.run(
        [
            *CLI,
            "run",
            "iris",
            "--no-dnn",
            "--budget",
            "20",
            "--min-metric",
            "accuracy=1.01",
            "--json",
            "--workspace",
            str(workspace),
            "--memory",
            "embedded",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 5, proc.stderr[-2000:]
    payload = json.loads(proc.stdout)
    assert payload["status"] == "refused" and not payload["ok"]
    assert payload["gates"]["validation"] is False and "release" not in payload["gates"]
    assert "min_accuracy" in payload["reason"]
    assert not (Path(payload["run_dir"]) / "deployment").exists()
    status = subprocess.run(
        [*CLI, "status", payload["run_id"], "--json", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
    )
    assert json.loads(status.stdout)["status"] == "refused"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["run", "/no/such/file.csv"], 3, "no such file"),
        (["run", "iris", "--target", "nope"], 3, "sepal length"),
        (["run", "iris", "--min-metric", "accuracy"], 2, "NAME=NUMBER"),
        (["run", "iris", "--budget", "-1"], 2, "positive"),
    ],
)
def test_user_errors_have_exit_codes_and_json(
    args: list[str], code: int, needle: str, workspace: Path
) -> None:
    proc = subprocess.run(
        [*CLI, *args, "--json", "--workspace", str(workspace), "--memory", "embedded"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and needle in payload["error"]
    assert "Traceback" not in proc.stderr
