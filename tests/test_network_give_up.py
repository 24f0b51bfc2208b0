"""A network that cannot reach the best candidate in its planned epochs is stopped (issue #12: "do not
spend time on what cannot win"): once early stopping's patience has elapsed, when its gap to the best
candidate is more than its recent gain per epoch times the epochs left. A count rule, so a seeded run
stops at the same epoch; the stopped network stays an ordinary (losing) candidate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ml_expert.tools.training.stopping import GiveUpRule, cannot_win


def _rule(metric: str = "r2", baseline: float = 0.98, patience: int = 3, max_epochs: int = 13) -> GiveUpRule:
    return GiveUpRule(
        metric=metric,
        baseline=baseline,
        baseline_name="lightgbm",
        patience=patience,
        max_epochs=max_epochs,
        watching="5648 held-back training rows",
    )


def test_the_rule_extrapolates_the_recent_gain_over_the_epochs_left() -> None:
    rule = _rule()
    # not before the patience has elapsed once, however far behind
    assert cannot_win([0.1, 0.1, 0.1], rule) is None
    # 0.71 after 4 epochs, +0.01 an epoch over the last 3: 9 epochs left close 0.09 of a 0.27 gap
    stopped = cannot_win([0.68, 0.69, 0.70, 0.71], rule)
    assert stopped is not None and stopped.epoch == 4 and stopped.remaining == 9
    assert stopped.gap == pytest.approx(0.27) and stopped.rate == pytest.approx(0.01)
    assert "r2 0.7100 at best on 5648 held-back training rows after 4 of 13 epochs" in stopped.reason
    assert "lightgbm 0.9800 on validation" in stopped.reason
    # still closing fast enough (+0.04 an epoch x 9 >= 0.15): it goes on
    assert cannot_win([0.71, 0.75, 0.79, 0.83], rule) is None
    # the best so far counts, not the last epoch's figure; the first epochs' gains are not the window
    assert cannot_win([-5.0, 0.70, 0.72, 0.71, 0.72], rule) is not None
    # at or past the best candidate, or with no epoch left: nothing to give up
    assert cannot_win([0.90, 0.95, 0.97, 0.985], rule) is None
    assert cannot_win([0.5] * 13, rule) is None
    # a loss (lower is better), and a non-finite epoch in the window
    rmse = _rule(metric="rmse", baseline=500.0)
    assert cannot_win([2000.0, 1990.0, 1985.0, 1980.0], rmse) is not None
    assert cannot_win([2000.0, 1500.0, 1000.0, 600.0], rmse) is None
    assert cannot_win([math.nan, 0.1, 0.1, 0.1], rule) is None


def _linear(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 20)).astype("float32")
    y = (x @ rng.normal(size=20) + rng.normal(size=600)).astype("float32")
    return x[:400], y[:400], x[400:], y[400:]


def test_a_network_that_cannot_reach_a_linear_model_stops_at_the_same_epoch(tmp_path: Path) -> None:
    """A linear target: a ridge regression explains ~95% of it, the network (a slow learning rate, 20
    planned epochs) starts far below and gains a few hundredths an epoch: stopped after its patience,
    while early stopping alone would have run all 20 (its loss is still falling)."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    from ml_expert.tools.training.dnn import DNNConfig, GiveUpWatch, build_dnn, standardise_target, train_dnn

    x_fit, y_fit, x_stop, y_stop = _linear()
    baseline = float(r2_score(y_stop, Ridge().fit(x_fit, y_fit).predict(x_stop)))
    assert baseline > 0.9
    config = DNNConfig(hidden_units=[32], learning_rate=1e-4, max_epochs=20, patience=3)
    fit_y, stop_y, mean, std = standardise_target(y_fit, y_stop)
    rule = GiveUpRule(
        metric="r2",
        baseline=baseline,
        baseline_name="linear",
        patience=config.patience,
        max_epochs=config.max_epochs,
        watching="200 held-back rows",
    )
    runs = []
    for attempt in (0, 1):
        model = build_dnn(x_fit.shape[1], "regression", 1, config, seed=0)
        watch = GiveUpWatch(rule=rule, x=x_stop, y=y_stop, target_mean=mean, target_std=std)
        runs.append(
            train_dnn(model, x_fit, fit_y, x_stop, stop_y, config, tmp_path / str(attempt), give_up=watch)
        )
    first, second = runs
    stopped = first.gave_up
    assert stopped is not None, first.stopped_reason
    assert config.patience < first.epochs_trained < config.max_epochs
    assert first.best_epoch == first.epochs_trained  # still improving: early stopping would go on
    assert stopped.network < baseline - stopped.rate * stopped.remaining
    assert first.stopped_reason.startswith("cannot reach the best candidate: r2 ")
    assert len(stopped.scores) == first.epochs_trained
    # seeded: the same epoch and figures again (epochs and scores, never the clock)
    assert second.gave_up is not None and second.epochs_trained == first.epochs_trained
    assert second.gave_up.scores == pytest.approx(stopped.scores, abs=1e-6)
    assert not first.cap_hit and not first.diverged


def test_the_best_candidates_figure_is_taken_on_the_watched_rows_when_it_has_one(tmp_path: Path) -> None:
    """Cross-validated small data: the best candidate's out-of-fold predictions on the training rows
    early stopping watches (the same rows the network is scored on); otherwise its validation score."""
    from ml_expert.agents.ml_developer.network import _baseline_on_watched_rows
    from ml_expert.tools.scoring import score
    from ml_expert.tools.selection.baselines import save_predictions
    from ml_expert.tools.selection.records import Candidate
    from ml_expert.tools.training.stopping import stopping_split

    rng = np.random.default_rng(0)
    y_train, y_val = rng.normal(size=300), rng.normal(size=60)
    oof = np.concatenate([y_train, y_val]) + rng.normal(scale=0.5, size=360)  # train rows first
    path, digest = save_predictions(tmp_path / "linear.oof.npy", oof)
    fields = {"name": "linear", "family": "linear", "kind": "sklearn", "train_score": 0.8, "fit_seconds": 0.1}
    best = Candidate(**fields, val_score=0.7, heldout_predictions=path, predictions_sha256={path: digest})
    split = stopping_split(y_train, "regression", 0)
    figure, where = _baseline_on_watched_rows(best, "r2", split, y_train, 10_000)
    rows = split.stop_rows
    assert where == "the same rows, out of fold"
    assert figure == pytest.approx(score("r2", y_train[rows], oof[rows]), abs=1e-6)
    assert _baseline_on_watched_rows(Candidate(**fields, val_score=0.7), "r2", split, y_train, 10_000) == (
        0.7,
        "validation",
    )
    watching_validation = stopping_split(y_train[:40], "regression", 0)
    assert watching_validation.on_validation
    assert _baseline_on_watched_rows(best, "r2", watching_validation, y_train[:40], 10_000)[1] == "validation"
