"""Well-formed phase results and their records for gate tests: a gate refuses a result that does
not match its model (`result_typed`), so a test that judges one check builds a whole result and
overrides only the fields it is about."""

from __future__ import annotations

from typing import Any

from ml_expert.phases import DeploymentResult, ValidationResult
from ml_expert.tools.selection.records import Candidate
from ml_expert.tools.training.records import NetworkRecord


def validation_result(**fields: Any) -> dict[str, Any]:
    """The state's `validation`: a model that beats the dummy, read the test split once, no gap."""
    base: dict[str, Any] = {
        "model": "linear",
        "primary_metric": "accuracy",
        "test_score": 0.9,
        "dummy_test_score": 0.5,
        "overfit_gap": 0.0,
        "test_reads": 1,
        "test_metrics": {"accuracy": 0.9},
        "metrics_path": "metrics.json",
        "report_path": "evaluation_report.md",
    }
    return ValidationResult.model_validate(base | fields).state()


def deployment_result(**fields: Any) -> dict[str, Any]:
    """The state's `deployment`: no exports and no package unless given."""
    base: dict[str, Any] = {
        "exports": [],
        "package_dir": None,
        "manifest": {},
        "model": "linear",
        "package_latency": None,
    }
    return DeploymentResult.model_validate(base | fields).state()


ANALYSIS: dict[str, Any] = {  # the researcher's analysis of a classification (SelectionResult.analysis)
    "task": "classification",
    "task_reason": "the target has 3 values",
    "rows": {"train": 70, "val": 15, "test": 15},
    "features_in": 4,
    "features_out": 4,
    "classes": 3,
    "imbalance_ratio": 1.2,
    "modality": "tabular",
    "image_shape": None,
    "sequence": None,
}


def selection_fields(**fields: Any) -> dict[str, Any]:
    """The state's `selection` without checking it (a gate test may break a field on purpose): a
    classification whose linear baseline beat dummy and forest, planning no network unless given."""
    base: dict[str, Any] = {
        "task": "classification",
        "analysis": ANALYSIS,
        "metric": "accuracy",
        "metric_reason": "the default",
        "leaderboard": [candidate(n) for n in ("dummy", "linear", "random_forest")],
        "best_baseline": "linear",
        "seconds": 5.0,
        "budget": 60.0,
        "plan": {"train_dnn": False},
    }
    return base | fields


def candidate(name: str, **fields: Any) -> dict[str, Any]:
    """A leaderboard row: a scikit-learn candidate scored on validation, with no file unless given."""
    base: dict[str, Any] = {
        "name": name,
        "family": name,
        "kind": "sklearn",
        "val_score": 0.8,
        "train_score": 0.85,
        "fit_seconds": 0.1,
    }
    return Candidate.model_validate(base | fields).model_dump()


NETWORK_FIELDS: dict[str, Any] = {
    "epochs_trained": 1,
    "best_epoch": 1,
    "best_val_loss": 0.9,
    "stopped_reason": "planned epochs done",
    "train_seconds": 1.0,
    "params": 100,
    "history": {"loss": [0.9]},
    "checkpoint": "checkpoint.keras",
    "batch_size": 32,
    "config": {},
}
"""A network's record as a dict: one epoch, stopped for a reason, its defaults."""


def network_record(**fields: Any) -> dict[str, Any]:
    """The training result's record of a network: one epoch, stopped for a reason, its defaults."""
    return NetworkRecord.model_validate(NETWORK_FIELDS | fields).model_dump()


CLUSTERING = {  # a clustering validation's figures (ValidationResult.clustering) as the tester writes them
    "train_sizes": [71, 32],
    "test_sizes": [15, 8],
    "expected_test_sizes": [15.2, 7.8],
    "sizes_ok": True,
    "sizes_detail": "2 clusters; smallest holds 32 training rows",
    "stability": 0.9,
    "chance": [
        {
            "reference": "permuted",
            "observed": 0.59,
            "null_mean": 0.23,
            "null_max": 0.25,
            "p_value": 0.025,
            "passed": True,
        }
    ],
}
