"""The records inside the phase results are typed (issue 13, one typed core): a record written with a
misspelt or renamed key is refused when it is validated, naming it, where a dict read by key used to
take it and a later phase read a default; the state written before they were typed (plain dicts with
the same keys) still validates, and dumps to the same JSON, so a checkpointed run resumes."""

from __future__ import annotations

from typing import Any

import pytest
from phase_helpers import NETWORK_FIELDS
from pydantic import ValidationError

from ml_expert.errors import PhaseResultError
from ml_expert.phases import DataResult
from ml_expert.tools.data.schema import ColumnSpec, InputSchema


def _data_state(**fields: Any) -> dict[str, Any]:
    """A data-phase result as the previous code wrote it to the state (plain JSON)."""
    schema = InputSchema(task="regression", target="y", columns=[ColumnSpec(name="a", kind="numeric")])
    return {
        "source": "rows.csv",
        "fingerprint": "f" * 16,
        "task": "regression",
        "task_reason": "set by the test",
        "schema": schema.model_dump(),
        "features": ["a"],
        "n_features_out": 1,
        "rows_in": 100,
        "split_sizes": {"train": 70, "val": 15, "test": 15},
        "splits_disjoint": True,
        "files": {},
        "preprocessor_sha256": "0" * 64,
        **fields,
    }


def test_split_sizes_are_typed_and_old_state_reads_the_same() -> None:
    old = _data_state()
    data = DataResult.of({"data": old})
    assert (data.split_sizes.train, data.split_sizes.val, data.split_sizes.test) == (70, 15, 15)
    assert data.split_sizes.total == 100
    assert data.state()["split_sizes"] == {"train": 70, "val": 15, "test": 15}  # the same JSON
    misspelt = _data_state(split_sizes={"trian": 70, "val": 15, "test": 15})
    missing = _data_state(split_sizes={"train": 70, "test": 15})
    for broken in (misspelt, missing):
        with pytest.raises(PhaseResultError, match="split_sizes"):
            DataResult.of({"data": broken})


def test_the_data_gate_refuses_misspelt_split_sizes_instead_of_judging_a_default() -> None:
    from ml_expert.graph.gates import data_gate

    verdict = data_gate({"data": _data_state(split_sizes={"train": 70, "validation": 15, "test": 15})})
    assert not verdict.passed and [c.name for c in verdict.checks] == ["result_typed"]
    assert "split_sizes" in verdict.checks[0].detail


def _export(**fields: Any) -> dict[str, Any]:
    """An export record as the previous code dumped it (the state's and the finding's `exports`)."""
    return {
        "format": "onnx",
        "path": "exports/linear/model.onnx",
        "sha256": "a" * 64,
        "size_bytes": 1234,
        "parity": {
            "passed": True,
            "n_rows": 10,
            "label_agreement": None,
            "max_abs_diff": 0.0,
            "tolerance": 1e-4,
            "near_ties": 0,
            "note": None,
        },
        "error": None,
        "latency": None,
        "shipped": True,
        "not_shipped_reason": None,
        "passed": True,
        **fields,
    }


LATENCY = {
    "single_row_calls": 200,
    "p50_ms": 0.01,
    "p95_ms": 0.02,
    "p99_ms": 0.03,
    "batch_rows": 150,
    "batch_rows_per_second": 1.0e6,
    "input": "raw-column tensors, preprocessing inside",
    "size_bytes": 1234,
}


def test_an_export_latency_is_typed_and_old_records_read_the_same() -> None:
    from ml_expert.phases import DeploymentResult
    from ml_expert.tools.deployment.exports import ExportLatency, ExportRecord, LatencyFailure

    measured = ExportRecord.model_validate(_export(latency=LATENCY))
    assert isinstance(measured.latency, ExportLatency) and measured.latency.p99_ms == 0.03
    assert measured.model_dump() == _export(latency=LATENCY)  # the same keys, in the same order
    assert list(measured.model_dump()["latency"]) == list(LATENCY)
    failed = ExportRecord.model_validate(_export(latency={"error": "RuntimeError: no session"}))
    assert isinstance(failed.latency, LatencyFailure)
    assert failed.model_dump()["latency"] == {"error": "RuntimeError: no session"}
    deployment = {
        "exports": [_export(latency=LATENCY), _export(format="joblib", latency={"error": "x"})],
        "package_dir": None,
        "manifest": {},
        "model": "linear",
        "package_latency": None,
    }
    assert DeploymentResult.of({"deployment": deployment}).state() == deployment  # resumes as written
    for broken in (
        {**LATENCY, "p99": 0.03},  # a renamed figure: refused, not read as a missing p99
        {k: v for k, v in LATENCY.items() if k != "p99_ms"},
        {"eror": "typo"},
    ):
        with pytest.raises(ValidationError, match="latency"):
            ExportRecord.model_validate(_export(latency=broken))


def test_the_package_readme_reads_the_package_latency_typed(tmp_path) -> None:
    from ml_expert.tools.deployment.package import readme_text

    schema = InputSchema(task="regression", target="y", columns=[ColumnSpec(name="a", kind="numeric")])
    figures = {k: v for k, v in LATENCY.items() if k not in ("input", "size_bytes")}
    readme = readme_text(schema, {"latency": figures, "measured_on": {"cpu": "test"}})
    assert "p50 0.010 ms, p95 0.020 ms, p99 0.030 ms; batch of 150 rows: 1000000 rows/s" in readme
    with pytest.raises(ValidationError, match="p99_ms"):
        readme_text(schema, {"latency": {**figures, "p99_ms": None}})


HARDWARE = {
    "backend": "tensorflow",
    "cpu_count": 2,
    "available_memory_mb": 4096.0,
    "gpus": [],
    "device_used": "CPU",
    "nvidia_smi": False,
    "gpu_utilisation": None,
}
PLAN = {
    "device": "cpu",
    "backend": "tensorflow",
    "steps_per_execution": 4,
    "jit_compile": False,
    "batch_size": 32,
    "learning_rate": 0.001,
    "data_on_device": False,
    "estimated_step_seconds": 0.0001,
    "rules": ["steps_per_execution = 4"],
}


def _network(**fields: Any) -> dict[str, Any]:
    """A network's record as the previous code wrote it (hardware and plan as plain dicts)."""
    return {
        **NETWORK_FIELDS,
        "execution": PLAN,
        "attempt": 0,
        "hardware": HARDWARE,
        **fields,
    }


def test_a_network_records_its_hardware_and_plan_typed_and_old_records_read_the_same() -> None:
    from ml_expert.tools.training.hardware import Hardware
    from ml_expert.tools.training.records import NetworkRecord
    from ml_expert.tools.training.throughput import ExecutionPlan

    old = _network()
    record = NetworkRecord.model_validate(old)
    assert isinstance(record.hardware, Hardware) and record.hardware.device_used == "CPU"
    assert isinstance(record.execution, ExecutionPlan) and record.execution.steps_per_execution == 4
    dumped = record.model_dump()  # the state and the finding keep the same keys and figures
    assert list(dumped) == list(old) and (dumped["hardware"], dumped["execution"]) == (HARDWARE, PLAN)
    gpu = {
        **HARDWARE,
        "gpu_utilisation": {
            "samples": 3,
            "interval_seconds": 0.5,
            "mean_pct": 70.0,
            "p10_pct": 50.0,
            "max_pct": 90,
            "max_memory_mb": 900.0,
        },
    }
    assert NetworkRecord.model_validate(_network(hardware=gpu)).hardware.gpu_utilisation.max_pct == 90
    renamed_device = {**{k: v for k, v in HARDWARE.items() if k != "device_used"}, "device": "CPU"}
    renamed_batch = {**{k: v for k, v in PLAN.items() if k != "batch_size"}, "batch": 32}
    for broken, field in (
        (_network(hardware=renamed_device), "hardware"),
        (_network(execution=renamed_batch), "execution"),
    ):
        with pytest.raises(ValidationError, match=field):
            NetworkRecord.model_validate(broken)


RAY_REPORT = {
    "mode": "ray",
    "cluster": {
        "address": "ray://head:10001",
        "started_here": False,
        "nodes": 2,
        "cpus": 8.0,
        "gpus": 0.0,
        "memory_gb": 30.0,
        "object_store_gb": 9.0,
        "ray_version": "2.60.0",
        "connect_seconds": 0.5,
    },
    "max_retries": 2,
    "tasks_done": 6,
    "tasks_in_flight": 0,
    "tasks_per_node": {"n1": 3, "n2": 3},
    "batches": ["baselines"],
    "retries": [
        {
            "label": "fit",
            "index": 1,
            "attempt": 1,
            "cause": "node lost",
            "detected_at": 1.0,
            "recovered_at": 2.0,
        }
    ],
    "data_puts": 1,
    "plan_scale": 2,
    "plan_scale_rule": "two nodes",
}


def test_the_selection_records_where_its_fits_ran_typed() -> None:
    from phase_helpers import selection_fields

    from ml_expert.phases import SelectionResult
    from ml_expert.tools.execution_report import ExecutionReport

    old = selection_fields(execution=RAY_REPORT)
    selection = SelectionResult.of({"selection": old})
    assert isinstance(selection.execution, ExecutionReport) and selection.execution.tasks_done == 6
    assert selection.state()["execution"] == RAY_REPORT  # the state keeps the same JSON
    misspelt = {**RAY_REPORT, "task_done": 6}
    with pytest.raises(PhaseResultError, match="execution"):
        SelectionResult.of({"selection": selection_fields(execution=misspelt)})


def test_status_summarises_the_execution_record_from_its_model() -> None:
    from ml_expert.detached import execution_summary

    assert execution_summary(RAY_REPORT) == {
        "cluster": "ray://head:10001: 2 node(s), 8.0 CPUs, 0.0 GPUs, 30.0 GB at the start",
        "tasks_done": 6,
        "tasks_in_flight": 0,
        "tasks_per_node": {"n1": 3, "n2": 3},
        "retries": ["fit #1 (attempt 1): node lost"],
    }
    assert execution_summary({"mode": "local"}) is None and execution_summary(None) is None
    # a renamed key used to raise KeyError in `status` (retries) or show None (tasks_done)
    broken = execution_summary({k: v for k, v in RAY_REPORT.items() if k != "retries"} | {"retry": []})
    assert broken is not None and "does not match its model" in broken["unreadable"]


CLASSIFICATION = {
    "accuracy": 0.9,
    "balanced_accuracy": 0.88,
    "precision_macro": 0.87,
    "recall_macro": 0.88,
    "f1_macro": 0.875,
    "f1_weighted": 0.9,
    "log_loss": 0.3,
    "per_class": {
        "no": {"precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 20},
        "yes": {"precision": 0.85, "recall": 0.8, "f1": 0.82, "support": 10},
    },
    "confusion_matrix": [[19, 1], [2, 8]],
    "roc_auc": 0.93,
    "f1": 0.82,
    "precision": 0.85,
    "recall": 0.8,
    "decision_threshold": 0.4,
}
CLUSTERING = {
    "silhouette": 0.5,
    "davies_bouldin": None,
    "calinski_harabasz": None,
    "n_clusters": 3,
    "test_rows": 27,
    "stability": 0.9,
}


def test_the_test_metrics_are_typed_and_old_state_reads_the_same() -> None:
    from phase_helpers import validation_result

    from ml_expert.phases import ValidationResult

    for metrics in (CLASSIFICATION, {"r2": 0.4, "rmse": 55.0, "mae": 44.0}, CLUSTERING):
        old = validation_result(test_metrics=metrics)
        result = ValidationResult.of({"validation": old})
        assert result.state() == old and list(old["test_metrics"]) == list(metrics)  # same keys, order
    result = ValidationResult.of({"validation": validation_result(test_metrics=CLASSIFICATION)})
    assert result.test_metrics.confusion_matrix == [[19, 1], [2, 8]]
    assert result.test_metrics.per_class is not None and result.test_metrics.per_class["yes"].support == 10
    figures = result.numeric_metrics  # what the manifest and the registry keep: single figures only
    assert "confusion_matrix" not in figures and "per_class" not in figures and figures["roc_auc"] == 0.93
    clustering = ValidationResult.of({"validation": validation_result(test_metrics=CLUSTERING)})
    assert clustering.state()["test_metrics"]["davies_bouldin"] is None  # a null stays null
    assert (
        "davies_bouldin" not in clustering.numeric_metrics and clustering.numeric_metrics["n_clusters"] == 3
    )
    for broken in (
        {**CLASSIFICATION, "acuracy": 0.9},  # a misspelt metric used to pass, and --min-metric read None
        {**CLASSIFICATION, "confusion_matrix": {"no": [19, 1]}},
        {**CLASSIFICATION, "per_class": {"no": {"precision": 0.9}}},
    ):
        with pytest.raises(PhaseResultError, match="test_metrics"):
            ValidationResult.of({"validation": {**validation_result(), "test_metrics": broken}})


def test_the_tester_computes_typed_metrics_and_keeps_the_report_text_out_of_the_state() -> None:
    import numpy as np

    from ml_expert.tools.validation.metrics import classification_metrics, regression_metrics

    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.45, 0.55], [0.9, 0.1]])
    metrics = classification_metrics(y, proba, ["no", "yes"], threshold=0.5)
    assert metrics.accuracy == 1.0 and metrics.confusion_matrix == [[3, 0], [0, 3]]
    assert metrics.classification_report is not None and "precision" in metrics.classification_report
    dumped = metrics.model_dump()
    first = ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted"]
    assert list(dumped)[:6] == first  # the order classification_metrics wrote them in
    assert list(dumped)[-5:] == ["roc_auc", "f1", "precision", "recall", "decision_threshold"]
    kept = metrics.without_report().model_dump()
    assert "classification_report" not in kept and kept == {
        k: v for k, v in dumped.items() if k != "classification_report"
    }
    regression = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]))
    assert (
        list(regression.model_dump()) == ["r2", "rmse", "mae", "mape", "rmsle"]
        and regression.rmse is not None
    )


def test_the_validation_gate_reads_min_metric_from_the_typed_figures() -> None:
    from phase_helpers import validation_result

    from ml_expert.graph.gates import validation_gate

    state = {
        "options": {"min_metric": {"roc_auc": 0.9}},
        "validation": validation_result(test_metrics=CLASSIFICATION),
    }
    checks = {c.name: c for c in validation_gate(state).checks}
    assert checks["min_roc_auc"].passed and checks["min_roc_auc"].value == 0.93
    state["options"]["min_metric"] = {"r2": 0.1}  # not measured on a classification: refused, not passed
    assert not {c.name: c for c in validation_gate(state).checks}["min_r2"].passed
