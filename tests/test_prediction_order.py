"""Validation predictions are made in a fixed order, so a seeded run repeats them to the bit.

A random forest predicts with joblib threads that add each tree's output under a lock in the
order the threads finish; two identical seeded titanic runs gave validation predictions 1e-16
apart (different hashes, and an exact tie between candidates could go either way).
`predict_scores` runs joblib-parallel predictions on the sequential backend.
"""

from __future__ import annotations

import numpy as np
from joblib import parallel_config
from joblib.parallel import get_active_backend
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from ml_expert.tools.scoring import predict_scores


class _BackendProbe(ClassifierMixin, BaseEstimator):
    """Records which joblib backend a prediction would parallelise on."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x):
        backend, _ = get_active_backend(require="sharedmem")
        self.seen_ = type(backend).__name__
        return np.full((len(x), len(self.classes_)), 1.0 / len(self.classes_))


def test_predictions_run_on_the_sequential_backend_even_inside_a_parallel_context() -> None:
    probe = _BackendProbe().fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]))
    with parallel_config(backend="threading", n_jobs=2):
        predict_scores(probe, np.zeros((3, 1)))
    assert probe.seen_ == "SequentialBackend"


def test_a_parallel_forest_predicts_the_same_bits_every_time() -> None:
    x, y = make_classification(n_samples=600, n_features=12, random_state=0)
    forest = RandomForestClassifier(n_estimators=64, n_jobs=-1, random_state=0).fit(x, y)
    first = predict_scores(forest, x)
    assert all(np.array_equal(first, predict_scores(forest, x)) for _ in range(5))
    # the same values as the forest's own threaded answer, up to the order of the additions
    assert np.allclose(first, forest.predict_proba(x), rtol=0, atol=1e-12)
