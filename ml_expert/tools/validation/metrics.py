"""Test-set metrics, computed once by the tester on the untouched split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Any], threshold: float | None = None
) -> dict[str, Any]:
    """`threshold`: the shipped model's cut-off on P(class 1) (binary), else argmax."""
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
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from ml_expert.tools.scoring import all_scores

    return all_scores("regression", np.asarray(y_true), np.ravel(y_pred))


def plot_confusion_matrix(matrix: list[list[int]], classes: list[Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    display = skm.ConfusionMatrixDisplay(np.asarray(matrix), display_labels=[str(c) for c in classes])
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    display.plot(ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
