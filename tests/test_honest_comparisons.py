"""Two comparisons that must not favour the more complex model by construction.

- The network's early stopping watches held-back training rows, so the validation rows it is
  compared on are unseen by it, as they are by the candidates (tools/training/stopping.py).
- Among the baselines, the simplest one the best does not beat by more than the noise margin is
  the incumbent (tools/selection/noise.py: simplest_within_noise).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from ml_expert.tools.selection.noise import escalation, simplest_within_noise
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


class _Board(BaseModel):
    name: str


def _compare_by(scores: dict[str, np.ndarray], y: np.ndarray, folds: np.ndarray):
    def compare(simple: _Board, candidate: _Board):
        return escalation(
            "accuracy",
            y,
            scores[simple.name],
            scores[candidate.name],
            folds=folds,
            simple=simple.name,
            candidate=candidate.name,
        )

    return compare


def _probabilities(right: np.ndarray) -> np.ndarray:
    """Two-class probabilities for y = 0 that are right where `right` is True."""
    p1 = np.where(right, 0.2, 0.8)
    return np.column_stack([1 - p1, p1])


def test_the_simplest_baseline_within_the_noise_is_kept() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros(500, dtype=int)
    folds = np.arange(500) % 5
    linear = rng.random(500) < 0.90
    forest = linear.copy()
    flip = np.flatnonzero(~forest)[:2]  # the forest gets two more rows right: 0.4 points, noise
    forest[flip] = True
    boosting = rng.random(500) < 0.97  # 7 points better on every fold: a real win
    right = {"linear": linear, "forest": forest, "boosting": boosting}
    scores = {n: _probabilities(r) for n, r in right.items()}
    board = [_Board(name=n) for n in ("dummy", "linear", "forest", "boosting")]
    compare = _compare_by(scores, y, folds)

    kept, verdict = simplest_within_noise(board, board[2], compare)  # forest is best, by noise
    assert kept.name == "linear"
    assert verdict is not None and not verdict.wins and verdict.gain > 0
    assert verdict.simple == "linear" and verdict.candidate == "forest"

    kept, verdict = simplest_within_noise(board, board[3], compare)  # boosting wins for real
    assert kept.name == "boosting" and verdict is None

    kept, verdict = simplest_within_noise(board, board[1], compare)  # the simplest is best already
    assert kept.name == "linear" and verdict is None
