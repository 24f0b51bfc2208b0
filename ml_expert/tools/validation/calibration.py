"""Calibration of a binary classifier: does a predicted 0.8 come true 80 % of the time?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from ml_expert.tools.selection.verdicts import Figure

CALIBRATION_BINS = 10
"""Equal-width probability bins of the reliability curve; 10 is the usual choice and keeps
at least a few rows per bin on the small test splits this tool sees."""


class CalibrationCurve(BaseModel):
    """The reliability curve: per non-empty bin, the mean predicted probability and the observed rate."""

    model_config = ConfigDict(extra="forbid")

    mean_predicted: list[float]
    fraction_positive: list[float]
    count: list[int]


class CalibrationFigures(BaseModel):
    """The calibration's single figures: what the validation result (the state, the `metrics`
    finding) keeps."""

    model_config = ConfigDict(extra="forbid")

    brier_score: Figure
    expected_calibration_error: Figure
    bins: int


class Calibration(CalibrationFigures):
    """The figures with the curve (metrics.json, the report's inputs, the reliability plot)."""

    curve: CalibrationCurve

    def figures(self) -> CalibrationFigures:
        return CalibrationFigures.model_validate(self.model_dump(exclude={"curve"}))


def calibration(y_true: np.ndarray, positive_proba: np.ndarray) -> Calibration:
    """Brier score and the reliability curve (mean predicted vs observed rate per bin)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(positive_proba, dtype=np.float64), 0.0, 1.0)
    observed, predicted = calibration_curve(y, p, n_bins=CALIBRATION_BINS, strategy="uniform")
    counts = np.histogram(p, bins=CALIBRATION_BINS, range=(0.0, 1.0))[0]
    nonempty = counts[counts > 0]
    # expected calibration error: bin-weighted |observed - predicted|
    ece = float(np.sum(nonempty / nonempty.sum() * np.abs(observed - predicted))) if len(nonempty) else 0.0
    return Calibration(
        brier_score=float(brier_score_loss(y, p)),
        expected_calibration_error=ece,
        bins=CALIBRATION_BINS,
        curve=CalibrationCurve(
            mean_predicted=[float(v) for v in predicted],
            fraction_positive=[float(v) for v in observed],
            count=[int(v) for v in nonempty],
        ),
    )


def plot_reliability(result: Calibration, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result.curve
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(curve.mean_predicted, curve.fraction_positive, marker="o", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("fraction of positives")
    ax.set_title(f"Reliability (test split), Brier {result.brier_score:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
