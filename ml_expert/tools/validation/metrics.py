"""Test-set metrics, computed once by the tester on the untouched split.

The phase results import HeldOutMetrics from here: scikit-learn is imported where the metrics are
computed, so reading a run's state (status, the CLI's start) does not load it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class ClassFigures(BaseModel):
    """One class's figures on the test split (scikit-learn's classification report)."""

    model_config = ConfigDict(extra="forbid")

    precision: float
    recall: float
    f1: float
    support: int


class HeldOutMetrics(BaseModel):
    """The chosen model's figures on the untouched test split: every name the tester can write for
    classification (classification_metrics), regression (regression_metrics: tools/scoring.py's
    regression metrics that apply) and clustering (tools/validation/clustering.py). Each is optional
    since a task writes its own (and a binary task more than a multiclass one); any other name is
    refused. It dumps the names its producer set, in this order, as the dict it replaces did: the
    state, metrics.json and report_inputs.json keep their keys (a None set stays null)."""

    model_config = ConfigDict(extra="forbid")

    # classification
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    precision_macro: float | None = None
    recall_macro: float | None = None
    f1_macro: float | None = None
    f1_weighted: float | None = None
    log_loss: float | None = None
    per_class: dict[str, ClassFigures] | None = None  # class name -> its figures
    confusion_matrix: list[list[int]] | None = None
    classification_report: str | None = None  # the text: in the report only, not in the state
    roc_auc_ovr_macro: float | None = None  # more than two classes (roc_auc is the same figure)
    roc_auc: float | None = None
    f1: float | None = None  # binary: the positive (second) class
    precision: float | None = None
    recall: float | None = None
    decision_threshold: float | None = None  # binary, a tuned cut-off on P(class 1)
    # regression
    r2: float | None = None
    rmse: float | None = None
    mae: float | None = None
    mape: float | None = None  # not when a target is 0
    rmsle: float | None = None  # not when a target is <= -1
    # clustering
    silhouette: float | None = None
    davies_bouldin: float | None = None  # None: a single cluster on the test rows
    calinski_harabasz: float | None = None
    n_clusters: int | None = None
    test_rows: int | None = None
    stability: float | None = None

    @model_serializer(mode="wrap")
    def _as_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        return {k: v for k, v in out.items() if k in self.model_fields_set}

    @property
    def figures(self) -> dict[str, float]:
        """The metrics that are single figures, by name (no confusion matrix, per-class figures or
        report text; a None left out): what metrics.json's summary, the manifest and the registry keep."""
        return {name: value for name, value in self.model_dump().items() if isinstance(value, int | float)}

    def figure(self, name: str) -> float | None:
        """A single figure by the metric's name (a user's --min-metric, the chosen metric); None when
        this run did not measure it."""
        return self.figures.get(name)

    def without_report(self) -> HeldOutMetrics:
        """The figures without the classification report's text (what the state keeps)."""
        return HeldOutMetrics.model_validate(self.model_dump(exclude={"classification_report"}))


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Any], threshold: float | None = None
) -> HeldOutMetrics:
    """`threshold`: the shipped model's cut-off on P(class 1) (binary), else argmax."""
    from sklearn import metrics as skm

    from ml_expert.tools.scoring import labels_from

    labels = labels_from(proba, threshold)
    index = list(range(len(classes)))
    names = [str(c) for c in classes]
    report = skm.classification_report(
        y_true, labels, labels=index, target_names=names, output_dict=True, zero_division=0
    )
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y_true, labels)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, labels)),
        "precision_macro": float(report["macro avg"]["precision"]),
        "recall_macro": float(report["macro avg"]["recall"]),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "f1_weighted": float(report["weighted avg"]["f1-score"]),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=index)),
        "per_class": {
            name: {
                "precision": float(report[name]["precision"]),
                "recall": float(report[name]["recall"]),
                "f1": float(report[name]["f1-score"]),
                "support": int(report[name]["support"]),
            }
            for name in names
        },
        "confusion_matrix": skm.confusion_matrix(y_true, labels, labels=index).tolist(),
        "classification_report": skm.classification_report(
            y_true, labels, labels=index, target_names=names, zero_division=0
        ),
    }
    if len(classes) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        # the positive (second) class, as --metric f1 / precision / recall rank it
        out["f1"] = float(skm.f1_score(y_true, labels, zero_division=0))
        out["precision"] = float(skm.precision_score(y_true, labels, zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, labels, zero_division=0))
        if threshold is not None:
            out["decision_threshold"] = float(threshold)
    elif len(np.unique(y_true)) == len(classes):
        out["roc_auc_ovr_macro"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=index))
        out["roc_auc"] = out["roc_auc_ovr_macro"]  # what --metric roc_auc ranks by
    return HeldOutMetrics.model_validate(out)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> HeldOutMetrics:
    from ml_expert.tools.scoring import all_scores

    return HeldOutMetrics.model_validate(all_scores("regression", np.asarray(y_true), np.ravel(y_pred)))


def plot_confusion_matrix(matrix: list[list[int]], classes: list[Any], path: Path) -> None:
    import matplotlib
    from sklearn import metrics as skm

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    display = skm.ConfusionMatrixDisplay(np.asarray(matrix), display_labels=[str(c) for c in classes])
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    display.plot(ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class ProductionOnTest(BaseModel):
    """--from: the current production version scored on this run's test rows (the release compares)."""

    model_config = ConfigDict(extra="forbid")

    version: str
    test_score: float
