"""The evaluation report's inputs are a typed record (#13): built by the tester from the typed phase
results, validated when built, kept as report_inputs.json with the keys it always had, and rendered
again with the exports' latency. A renamed or missing field fails when the inputs are built, not as
a silent default in the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from phase_helpers import candidate
from pydantic import ValidationError

from ml_expert.tools.validation.fairness import ClassificationFairness
from ml_expert.tools.validation.report_file import (
    REPORT,
    REPORT_INPUTS,
    read_inputs,
    render_with_latency,
    write_report,
)
from ml_expert.tools.validation.report_inputs import (
    ClusteringReportInputs,
    LatencyRow,
    SupervisedReportInputs,
)

V1_KEYS = {  # what a tester wrote in report_inputs.json's "info" before the inputs were typed
    "run_id", "task", "source", "fingerprint", "split_sizes", "chosen", "choice_reason", "metric",
    "metric_reason", "comparison", "escalations", "threshold", "test_reads", "test_reads_interrupted",
    "test_metrics", "dummy_test_score", "overfit_gap", "leaderboard", "dnn", "time", "execution",
    "decisions",
}  # fmt: skip


def _info(**fields: Any) -> dict[str, Any]:
    """A binary classification's inputs as the tester builds them: calibration and fairness on."""
    base: dict[str, Any] = {
        "run_id": "r1",
        "task": "classification",
        "source": "titanic.csv",
        "fingerprint": "ab" * 32,
        "split_sizes": {"train": 70, "val": 15, "test": 15},
        "chosen": "linear",
        "choice_reason": "best on validation",
        "metric": "roc_auc",
        "metric_reason": "binary, imbalanced",
        "comparison": {"scheme": "cv", "folds": 5, "rule": "5-fold CV on train + validation"},
        "escalations": [],
        "threshold": 0.4321,
        "test_reads": 1,
        "test_reads_interrupted": 0,
        "test_metrics": {"roc_auc": 0.9, "accuracy": 0.8, "classification_report": "  precision  recall"},
        "dummy_test_score": 0.5,
        "overfit_gap": 0.01,
        "leaderboard": [candidate("dummy"), candidate("linear", cv_mean=0.88, cv_std=0.02)],
        "dnn": None,
        "time": None,
        "execution": None,
        "calibration": {
            "brier_score": 0.12,
            "expected_calibration_error": 0.03,
            "bins": 10,
            "curve": {"mean_predicted": [0.2], "fraction_positive": [0.25], "count": [15]},
        },
        "fairness": {
            "sex": {
                "per_group": {
                    g: {
                        "rows": 7,
                        "accuracy": 0.8,
                        "selection_rate": {"1": 0.4},
                        "true_positive_rate": {"1": 0.7},
                        "false_positive_rate": {"1": None},
                    }
                    for g in ("female", "male")
                },
                "groups_compared": ["female", "male"],
                "demographic_parity_difference": 0.1,
                "equalized_odds_difference": 0.2,
                "accuracy_gap": 0.05,
                "gap": 0.2,
            }
        },
        "fairness_unavailable": {"name": "not a model input"},
        "fairness_gap": 0.2,
        "production_on_test": None,
        "decisions": [{"phase": "training", "agent": "x", "decision": "ship linear", "reason": "it won"}],
    }
    return base | fields


def test_a_renamed_or_missing_field_fails_when_the_inputs_are_built() -> None:
    info = _info()
    SupervisedReportInputs.model_validate(info)
    renamed = {("decision_threshold" if k == "threshold" else k): v for k, v in info.items()}
    with pytest.raises(ValidationError, match="decision_threshold|threshold"):
        SupervisedReportInputs.model_validate(renamed)
    with pytest.raises(ValidationError, match="calibration"):  # no silent default for a forgotten field
        SupervisedReportInputs.model_validate({k: v for k, v in info.items() if k != "calibration"})
    broken = _info(fairness={"sex": {**info["fairness"]["sex"], "equalised_odds": 0.2}})
    with pytest.raises(ValidationError, match="equalised_odds"):
        SupervisedReportInputs.model_validate(broken)
    with pytest.raises(ValidationError, match="leaderboard"):
        ClusteringReportInputs.model_validate({"run_id": "r", "leaderboards": []})


def test_the_report_renders_from_typed_inputs_and_again_with_latency(tmp_path: Path) -> None:
    inputs = SupervisedReportInputs.model_validate(_info())
    assert isinstance(inputs.fairness and inputs.fairness["sex"], ClassificationFairness)
    write_report(tmp_path, inputs)
    report = (tmp_path / REPORT).read_text()
    for shown in (
        "| **roc_auc** (chosen) | **0.9000** |",
        "P(class 1) >= 0.4321",
        "| linear | sklearn | 0.8800 ± 0.0200 |",
        "| dummy | sklearn | not cross-validated |",
        "How candidates were compared: 5-fold CV on train + validation.",
        "Brier score: 0.1200",
        "| female | 7 | 0.8000 | 0.400 | 0.700 | n/a |",
        "`name`: not evaluated — not a model input.",
        "**ship linear** — it won",
        "  precision  recall",
    ):
        assert shown in report, shown
    kept = json.loads((tmp_path / REPORT_INPUTS).read_text())
    assert kept["version"] == 2 and kept["kind"] == "supervised"
    assert set(kept["info"]) >= V1_KEYS  # the keys an older reader of the file knows are all there
    assert read_inputs(tmp_path) == inputs

    rows = [
        LatencyRow(
            format="linear/onnx",
            size_bytes=900,
            p50_ms=0.01,
            p95_ms=0.02,
            p99_ms=0.03,
            batch_rows_per_second=5e5,
            input="float32 frame",
        ),  # fmt: skip
        LatencyRow(format="linear/joblib", size_bytes=None, error="RuntimeError: no"),
    ]
    assert render_with_latency(tmp_path, rows)
    again = (tmp_path / REPORT).read_text()
    assert again.startswith(report.rstrip("\n")) and again.count("## Latency and throughput") == 1
    assert "| linear/onnx | 900 B | 0.010 | 0.020 | 0.030 | 500000 | float32 frame |" in again
    assert "| linear/joblib | None | not measured: RuntimeError: no |" in again
    assert render_with_latency(tmp_path, rows) and (tmp_path / REPORT).read_text() == again
    (tmp_path / "stopped").mkdir()  # a run that stopped before validation has no report to render
    assert not render_with_latency(tmp_path / "stopped", rows)


def test_an_older_runs_kept_inputs_render_again(tmp_path: Path) -> None:
    """A report_inputs.json from before the typed inputs (no version; the keys a tester only wrote
    when they applied are absent) still renders when that run's deployment resumes."""
    old = {k: v for k, v in _info().items() if k in V1_KEYS}
    (tmp_path / REPORT_INPUTS).write_text(json.dumps({"kind": "supervised", "info": old}))
    inputs = read_inputs(tmp_path)
    assert isinstance(inputs, SupervisedReportInputs) and inputs.calibration is None
    assert render_with_latency(tmp_path, [])
    assert "| **roc_auc** (chosen) | **0.9000** |" in (tmp_path / REPORT).read_text()


def test_the_network_time_and_cluster_sections_render_from_their_records() -> None:
    """The sections read from the typed records the phases hand over: the network (its execution
    plan and GPU sampling), the time spent, the Ray execution and the escalations."""
    from phase_helpers import network_record

    from ml_expert.tools.validation.report import render_report

    plan = {
        "device": "gpu",
        "backend": "tensorflow",
        "steps_per_execution": 8,
        "jit_compile": True,
        "batch_size": 256,
        "learning_rate": 0.001,
        "data_on_device": True,
        "estimated_step_seconds": 0.01,
        "rules": [],
    }
    util = {"samples": 12, "interval_seconds": 0.5, "mean_pct": 71.0, "p10_pct": 40.0, "max_pct": 99}
    hardware = {
        "backend": "tensorflow",
        "cpu_count": 16,
        "available_memory_mb": 120000.0,
        "gpus": ["/physical_device:GPU:0"],
        "device_used": "GPU (/physical_device:GPU:0)",
        "nvidia_smi": True,
        "gpu_utilisation": {**util, "max_memory_mb": 2048.0},
    }
    info = _info(
        dnn=network_record(summary="Model: dense", execution=plan, hardware=hardware),
        time={
            "budget_seconds": 60,
            "model_selection_seconds": 20.0,
            "cv_folds": 5,
            "candidates": ["dummy", "linear"],
            "baseline_fit_seconds": {"linear": 0.5},
            "refit_seconds": 1.0,
            "total_seconds": 30.0,
            "share_of_budget": 0.5,
            "cap_hit": False,
        },
        execution={
            "mode": "ray",
            "cluster": {
                "address": "ray://head:10001",
                "started_here": False,
                "nodes": 2,
                "cpus": 8,
                "gpus": 0,
                "memory_gb": 30,
                "object_store_gb": 9,
                "ray_version": "2.x",
            },
            "tasks_done": 6,
            "tasks_per_node": {"n1": 3, "n2": 3},
            "batches": ["baselines"],
            "retries": [{"label": "fit", "index": 1, "attempt": 1, "cause": "node lost"}],
        },
        escalations=[
            {
                "metric": "roc_auc",
                "simple": "linear",
                "candidate": "dnn",
                "scheme": "5-fold CV",
                "simple_score": 0.88,
                "candidate_score": 0.9,
                "gain": 0.02,
                "standard_error": 0.01,
                "margin": 0.02,
                "wins": False,
                "rule": "kept when the gain exceeds the margin",
            }
        ],
    )
    report = render_report(SupervisedReportInputs.model_validate(info))
    for shown in (
        "- Execution: GPU (tensorflow), batch 256, 8 steps per call, XLA True, data on the device",
        "- GPU utilisation while training: mean 71.0 %, p10 40.0 %, max 99 % (12 samples every 0.5 s)",
        "Model: dense",
        "## Time (budget 60 s for model selection plus training)",
        "Total: 50% of the budget.",
        "- Ray cluster `ray://head:10001`: 2 node(s), 8 CPUs, 0 GPUs, 30 GB memory at the start (Ray 2.x)",
        "- fit #1, attempt 1 lost: node lost",
        "| dnn | linear | 5-fold CV | 0.9000 | 0.8800 | +0.0200 | 0.0200 | no |",
    ):
        assert shown in report, shown
