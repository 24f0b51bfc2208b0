"""Test-set metrics, computed once by the tester on the untouched split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    labels = np.argmax(proba, axis=1)
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
    elif len(np.unique(y_true)) == len(classes):
        out["roc_auc_ovr_macro"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=index))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_pred = np.ravel(y_pred)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


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
