"""The network's early stopping watches held-back training rows, so the validation rows it is
compared on are unseen by it, as they are by the candidates (tools/training/stopping.py)."""

from __future__ import annotations

import numpy as np

from ml_expert.tools.training.stopping import MIN_STOPPING_ROWS, stopping_split


def test_stopping_rows_are_a_stratified_share_of_the_training_rows() -> None:
    y = np.array([0] * 700 + [1] * 300)
    split = stopping_split(y, "classification", seed=3)
    fit, stop = np.array(split.fit_rows), np.array(split.stop_rows)
    assert not split.on_validation
    assert len(stop) == 150 and len(fit) == 850
    assert set(fit).isdisjoint(stop) and set(fit) | set(stop) == set(range(1000))
    assert abs(y[stop].mean() - 0.3) < 0.01  # stratified: the class share of the whole
    again = stopping_split(y, "classification", seed=3)
    assert again.stop_rows == split.stop_rows  # seeded
    assert stopping_split(y, "classification", seed=4).stop_rows != split.stop_rows
    assert "validation rows stay unseen" in split.rule and split.watching == "held-back training rows"
    x = np.arange(2000, dtype=float).reshape(1000, 2)
    x_fit, y_fit, x_stop, y_stop = split.arrays(x, y, x[:5], y[:5])
    assert len(x_fit) == 850 and len(x_stop) == 150 and (x_stop[:, 0] // 2 == split.stop_rows).all()
    assert (y_stop == y[split.stop_rows]).all() and (y_fit == y[split.fit_rows]).all()


def test_too_few_training_rows_fall_back_to_the_validation_split_and_say_so() -> None:
    y = np.arange(MIN_STOPPING_ROWS * 5, dtype=float)  # 15 % of 100 rows = 15 < 20
    split = stopping_split(y, "regression", seed=0)
    assert split.on_validation and split.stop_rows == [] and len(split.fit_rows) == len(y)
    val = (np.zeros((7, 1)), np.zeros(7))
    assert split.arrays(y[:, None], y, *val)[2] is val[0]  # early stopping watches the validation split
    assert "watches the validation split" in split.rule


def test_a_class_with_one_row_does_not_break_the_split() -> None:
    y = np.array([0] * 150 + [1] * 49 + [2])
    split = stopping_split(y, "classification", seed=0)
    assert len(split.stop_rows) == 30 and "stratified" not in split.rule
