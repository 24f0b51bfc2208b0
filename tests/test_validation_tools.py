"""The tester's tools on data with known answers: calibration, fairness gaps, latency, drift."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_expert.tools.validation.calibration import calibration, plot_reliability
from ml_expert.tools.validation.drift import QUANTILES, compare, psi, training_statistics
from ml_expert.tools.validation.fairness import (
    auto_sensitive,
    classification_fairness,
    group_labels,
    regression_fairness,
)
from ml_expert.tools.validation.latency import measure


def test_calibration_separates_calibrated_from_overconfident(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < p).astype(int)  # calibrated by construction
    good = calibration(y, p)
    bad = calibration(y, np.where(p > 0.5, 1.0, 0.0))  # same ranking, overconfident
    assert good.expected_calibration_error < 0.03 < bad.expected_calibration_error
    assert good.brier_score < bad.brier_score
    assert abs(good.brier_score - np.mean((p - y) ** 2)) < 1e-12
    plot_reliability(good, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_fairness_gaps_match_hand_counts() -> None:
    groups = pd.Series(["a"] * 10 + ["b"] * 10)
    y_true = np.array([1] * 5 + [0] * 5 + [1] * 5 + [0] * 5)
    # group a: predicts every positive right, 1 false positive; group b: finds 2 of 5, no FP
    y_pred = np.array([1] * 5 + [1, 0, 0, 0, 0] + [1, 1, 0, 0, 0] + [0] * 5)
    result = classification_fairness(groups, y_true, y_pred, n_classes=2)
    assert result.per_group["a"].selection_rate["1"] == pytest.approx(0.6)
    assert result.per_group["b"].selection_rate["1"] == pytest.approx(0.2)
    assert result.demographic_parity_difference == pytest.approx(0.4)
    # TPR 1.0 vs 0.4, FPR 0.2 vs 0.0 -> equalized odds difference 0.6
    assert result.equalized_odds_difference == pytest.approx(0.6)
    assert result.gap == pytest.approx(0.6)


def test_small_groups_are_reported_but_not_compared() -> None:
    groups = pd.Series(["a"] * 10 + ["tiny"] * 2)
    y = np.array([1, 0] * 6)
    result = classification_fairness(groups, y, 1 - y, n_classes=2)
    assert "tiny" in result.per_group and result.groups_compared == ["a"]
    assert result.gap == 0.0


def test_regression_fairness_and_age_binning() -> None:
    ages = pd.Series([float(a) for a in range(20, 60)] + [np.nan] * 5)
    labels = group_labels(ages)
    assert labels.nunique() == 5 and (labels == "missing").sum() == 5
    y = np.arange(45, dtype=float)
    pred = y + np.where(np.arange(45) < 20, 2.0, 0.0)  # the young are predicted 2 too high
    result = regression_fairness(labels, y, pred)
    assert result.mae_difference == pytest.approx(2.0)
    assert auto_sensitive(["Sex", "passenger_age", "fare", "race_group", "stage"]) == [
        "Sex",
        "passenger_age",
        "race_group",
    ]


def test_latency_measures_what_it_times() -> None:
    def slow(_row) -> None:
        time.sleep(0.002)

    figures = measure(slow, [1, 2, 3], [1] * 10, 10, calls=20)
    assert 2.0 <= figures.p50_ms <= figures.p95_ms <= figures.p99_ms
    assert figures.single_row_calls == 20 and figures.batch_rows_per_second <= 10 / 0.002
    # A slow format stops after max_seconds of single-row calls, never before 20 calls.
    figures = measure(slow, [1, 2, 3], [1] * 10, 10, calls=200, max_seconds=0.01)
    assert figures.single_row_calls == 20 and figures.p50_ms >= 2.0
    figures = measure(slow, [1, 2, 3], [1] * 10, 10, calls=200, max_seconds=0.1)
    assert 20 <= figures.single_row_calls < 200  # ~50 at 2 ms a call; fewer on a loaded machine


def test_drift_flags_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(1)
    columns = [
        {"name": "x", "kind": "numeric"},
        {"name": "c", "kind": "categorical"},
        {"name": "k", "kind": "numeric"},
    ]

    def sample(n: int, shift: float = 0.0, cats=("a", "b"), kids=(0.6, 0.3, 0.1)) -> dict:
        return {
            "x": rng.normal(shift, 1, n).tolist(),
            "c": rng.choice(cats, n, p=[0.7, 0.3]).tolist(),
            "k": rng.choice([0, 1, 2], n, p=kids).astype(float).tolist(),  # discrete: PSI, not KS
        }

    stats = training_statistics(columns, sample(20000))
    assert len(stats["columns"]["x"]["quantiles"]) == QUANTILES < 20000  # a sketch, not the rows
    assert set(stats["columns"]["k"]["shares"]) == {"0", "1", "2"}
    same = compare(stats, sample(2000))
    assert same["drifted"] == [], same
    moved = compare(stats, sample(2000, shift=0.3, cats=("b", "new"), kids=(0.2, 0.3, 0.5)))
    assert moved["drifted"] == ["c", "k", "x"]
    assert moved["columns"]["c"]["unseen_share"] == pytest.approx(0.3, abs=0.05)
    assert psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
