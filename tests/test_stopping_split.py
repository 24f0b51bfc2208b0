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
    assert "validation rows stay unseen" in split.rule


def test_too_few_training_rows_fall_back_to_the_validation_split_and_say_so() -> None:
    y = np.arange(MIN_STOPPING_ROWS * 5, dtype=float)  # 15 % of 100 rows = 15 < 20
    split = stopping_split(y, "regression", seed=0)
    assert split.on_validation and split.stop_rows == [] and len(split.fit_rows) == len(y)
    assert "watches the validation split" in split.rule


def test_a_class_with_one_row_does_not_break_the_split() -> None:
    y = np.array([0] * 150 + [1] * 49 + [2])
    split = stopping_split(y, "classification", seed=0)
    assert len(split.stop_rows) == 30 and "stratified" not in split.rule
