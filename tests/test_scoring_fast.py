"""scoring.score's fast paths (log-loss and accuracy on class indices) give scikit-learn's value to
the bit, so no ranking, ensemble weight or tie moves with them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from ml_expert.tools.scoring import score


def _cases():
    rng = np.random.default_rng(0)
    for rows, k in [(1, 2), (7, 2), (150, 3), (1000, 10), (64, 2)]:
        for extreme in (False, True):
            proba = rng.random((rows, k)) ** (8 if extreme else 1)
            if extreme:  # exact zeros and ones: the clipping must match too
                proba[rng.random((rows, k)) < 0.3] = 0.0
                proba[0] = 0.0
                proba[0, 0] = 1.0
            proba[proba.sum(axis=1) == 0, 0] = 1.0
            proba /= proba.sum(axis=1, keepdims=True)
            y = rng.integers(0, k, rows)
            yield proba, y, k


@pytest.mark.parametrize("case", list(_cases()))
def test_log_loss_and_accuracy_equal_sklearn_to_the_bit(case) -> None:
    proba, y, k = case
    clipped = np.clip(proba, 1e-15, 1)
    clipped /= clipped.sum(axis=1, keepdims=True)
    assert score("log_loss", y, proba) == float(skm.log_loss(y, clipped, labels=list(range(k))))
    assert score("accuracy", y, proba) == float(skm.accuracy_score(y, np.argmax(proba, axis=1)))
    for dtype in (np.int32, np.uint8):  # any integer dtype of class indices
        assert score("log_loss", y.astype(dtype), proba) == score("log_loss", y, proba)


def test_labels_outside_the_class_indices_still_go_through_sklearn() -> None:
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(ValueError):  # a label the probabilities have no column for
        score("log_loss", np.array([0, 2]), proba)
    assert score("accuracy", np.array([1.0, 0.0]), proba) == 1.0  # float labels: sklearn's path
