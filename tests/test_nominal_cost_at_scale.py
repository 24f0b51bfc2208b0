"""#17 item 9: the nominal cost rules at scale. The boosting families' flat 1e-5 s per row x feature
(calibrated on the bundled sets, at most 45,724 train + validation rows) priced 1M rows at 200 s where
LightGBM took 38.9 s; the forest's price counted every row as grown in each tree although each tree is
grown on max_samples of them. Pure functions, no data: each test fails on the flat rules."""

from __future__ import annotations

from ml_expert.tools.selection import longfit, tuning
from ml_expert.tools.selection.longfit import nominal_candidate_seconds, plan_cap
from ml_expert.tools.selection.tuning import nominal_fit_seconds


def _flat_boosting(rows: int, features: int) -> float:
    """The rule as it was calibrated on the bundled sets' sizes (binary: one class's trees)."""
    return 0.2 + 1e-5 * rows * features


def test_boosting_is_priced_as_before_on_bundled_sizes_and_at_the_measured_rate_past_them() -> None:
    # 1M x 20 at the defaults: measured 38.9 s (one thread, load ~8); the flat rule said 200 s
    assert nominal_fit_seconds("lightgbm", 1_000_000, 20, 2, at_defaults=True) < 60
    # the brief's case: 133,000 x 21 priced 28 s (a real fit: seconds), now about half of it
    assert nominal_fit_seconds("lightgbm", 133_000, 21, 2, at_defaults=True) < 0.6 * _flat_boosting(
        133_000, 21
    )
    for name in ("lightgbm", "hist_gradient_boosting"):
        for rows in (150, 1_797, 37_655, 45_724, tuning.SCALE_ROWS):  # bundled sizes: the same figure
            assert nominal_fit_seconds(name, rows, 26, 2, at_defaults=True) == _flat_boosting(rows, 26)
        # past SCALE_ROWS each row costs the measured rate: continuous, nondecreasing (the bisection)
        prices = [
            nominal_fit_seconds(name, r, 20, 2, at_defaults=True) for r in range(40_000, 400_000, 7_001)
        ]
        assert prices == sorted(prices)
        extra = nominal_fit_seconds(name, 1_050_000, 20, 2, True) - nominal_fit_seconds(
            name, 50_000, 20, 2, True
        )
        assert abs(extra - tuning.BOOST_SCALE_ROW_S * 1_000_000 * 20) < 1e-6


def test_a_boosting_fit_of_seconds_at_scale_is_not_sent_to_a_child() -> None:
    """133,000 training rows x 21 features at --budget 60: the flat rule's 28 s made it a long fit
    (a child process, a second or more to start and the data copied); priced by the rows it reads it
    stays in-process under the long-fit share (15 s). A 1M-row fit is still long, and capped."""
    assert plan_cap("lightgbm", 60.0, 1e12, 133_000, 21, 2) is None
    assert plan_cap("hist_gradient_boosting", 60.0, 1e12, 133_000, 21, 2) is None
    capped = plan_cap("lightgbm", 60.0, 1e12, 1_000_000, 21, 2)
    assert capped is not None and capped.nominal_seconds > longfit.LONG_FIT_SHARE * 60


def test_a_forest_is_priced_by_the_rows_its_trees_are_grown_on() -> None:
    ten = {"n_estimators": 10}
    # whole-row trees (the bundled sets: no max_samples): the calibrated rule, unchanged
    for rows in (150, 37_655, 100_000):
        assert nominal_candidate_seconds("random_forest", rows, 20, 2, ten) == 1.0 + 3e-4 * rows * 10 / 100
    # 3M rows: each tree grows on max_samples rows; fewer of them is cheaper (the flat rule ignored it)
    at_100k = nominal_candidate_seconds("random_forest", 3_000_000, 20, 2, ten)  # forest_limits: 100k
    at_50k = nominal_candidate_seconds("random_forest", 3_000_000, 20, 2, {**ten, "max_samples": 50_000})
    assert at_50k < at_100k < 1.0 + 3e-6 * 3_000_000 * 10
    # past max_samples more rows cost only the all-row passes (sample weights, out-of-bag predictions)
    small = nominal_candidate_seconds("random_forest", 100_000, 20, 2, {**ten, "max_samples": 50_000})
    large = nominal_candidate_seconds("random_forest", 1_000_000, 20, 2, {**ten, "max_samples": 50_000})
    assert abs((large - small) - 10 * 900_000 * tuning.FOREST_PASS_ROW_S) < 1e-6
    # nondecreasing across max_samples (the sample's bisection prices the forest at every size)
    prices = [
        nominal_candidate_seconds("random_forest", r, 20, 2, {**ten, "max_samples": 50_000})
        for r in range(10_000, 300_000, 3_001)
    ]
    assert prices == sorted(prices)
