"""The gradient norm recorded per epoch is the real one: checked against the analytic gradient."""

from __future__ import annotations

import math

import numpy as np

from ml_expert.tools.training.gradients import global_gradient_norm


def test_gradient_norm_matches_softmax_regression_by_hand() -> None:
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = rng.integers(0, 3, size=64).astype("int64")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    w, b = (np.asarray(v) for v in model.get_weights())
    logits = x @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    residual = (p - np.eye(3)[y]) / len(x)  # d(mean cross-entropy) / d(logits)
    expected = math.sqrt(float(((x.T @ residual) ** 2).sum() + (residual.sum(axis=0) ** 2).sum()))
    assert abs(global_gradient_norm(model, x, y) - expected) < 1e-4 * max(1.0, expected)


def test_history_records_gradient_norm_every_epoch(tmp_path) -> None:
    from ml_expert.tools.training.dnn import DNNConfig, build_dnn, train_dnn

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    config = DNNConfig(hidden_units=[8], max_epochs=3, patience=3)
    model = build_dnn(4, "classification", 2, config, seed=0)
    result = train_dnn(model, x[:150], y[:150], x[150:], y[150:], config, tmp_path, task="classification")
    norms = result.history["grad_norm"]
    assert len(norms) == result.epochs_trained == 3
    assert all(math.isfinite(n) and n > 0 for n in norms)
