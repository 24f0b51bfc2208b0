"""On small data a boosted winner ships as a bag of BAG_FOLDS fold fits (tools/selection/fold_bag.py):
each member is its settings fit on all rows but one seeded fold; a linear model or a forest is
refit once (also inside an ensemble), a threshold cuts the averaged probability, a log-scale
regressor averages on the original scale, and a bag exports, reloads and continues (`--from`)
like any model."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from test_model_families import DIABETES, SEED, TITANIC, _assert_passed, split

from ml_expert.tools.data.schema import to_model_frame
from ml_expert.tools.deployment.exports import export_sklearn
from ml_expert.tools.selection.baselines import (
    CandidateResult,
    RefitJob,
    fit_candidate,
    refit_capped,
    refit_on_train_and_val,
)
from ml_expert.tools.selection.candidates import make_pipeline
from ml_expert.tools.selection.crossval import fold_ids
from ml_expert.tools.selection.ensemble import EnsembleMember
from ml_expert.tools.selection.fold_bag import BAG_FOLDS as K
from ml_expert.tools.selection.fold_bag import priced_bag
from ml_expert.tools.selection.longfit import LONG_FIT_SHARE, nominal_candidate_seconds
from ml_expert.tools.training.finetune import continue_sklearn

CV = 3  # the comparison's folds: the bag's are K whatever the comparison could afford


def _splits(case: tuple) -> tuple:
    """The schema, train and validation (model frames, encoded targets), the test rows, fold ids."""
    schema, train, rest, y = split(*case)
    val = rest.iloc[: len(rest) // 2]
    test = rest.iloc[len(rest) // 2 :]
    if schema.classes:
        y_val = val["target"].map({c: i for i, c in enumerate(schema.classes)}).to_numpy()
    else:
        y_val = val["target"].to_numpy(dtype=float)
    train_xy = (to_model_frame(train, schema), y)
    val_xy = (to_model_frame(val, schema), y_val)
    folds = fold_ids(schema.task, np.concatenate([y, y_val]), SEED, CV)
    return schema, train_xy, val_xy, test, folds


def _candidate(base: str, case: tuple, tmp_path: Path, **settings) -> tuple:
    schema, train, val, test, folds = _splits(case)
    metric = "accuracy" if schema.task == "classification" else "r2"
    candidate = fit_candidate(base, schema, train, val, metric, SEED, tmp_path, folds=folds, **settings)
    assert isinstance(candidate, CandidateResult) and candidate.heldout_predictions
    return schema, train, val, test, candidate


def _refit(schema, train, val, candidate: CandidateResult, tmp_path: Path, **override):
    """The chosen candidate's refit as training asks for it after a CV comparison (bag=True), with no
    budget (never capped, never priced out): refit_capped decides whether a bag ships."""
    settings = {**candidate.settings(), **override}
    job = RefitJob(candidate.name, schema, SEED, tmp_path, candidate.base, settings, bag=True)
    record = refit_capped(job, train, val, None, 60.0, candidate.fit_seconds, 10, None)
    return record, joblib.load(record["path"])


def test_the_bag_is_k_seeded_fold_fits_and_exports_like_any_model(tmp_path: Path) -> None:
    schema, train, val, test, candidate = _candidate("hist_gradient_boosting", TITANIC, tmp_path)
    record, shipped = _refit(schema, train, val, candidate, tmp_path)
    bag = record["bag"]
    assert bag.folds == K and bag.members == [f"hist_gradient_boosting_fold{k}" for k in range(K)]
    assert type(shipped).__name__ == "VotingClassifier" and len(shipped.estimators_) == K
    assert shipped.weights == pytest.approx([1 / K] * K)
    frame = to_model_frame(test, schema)
    members = np.mean([m.predict_proba(frame) for m in shipped.estimators_], axis=0)
    np.testing.assert_allclose(shipped.predict_proba(frame), members, atol=1e-12)
    # member 2: the candidate's settings fit on every row of train + validation but the seeded fold 2
    rows = pd.concat([train[0], val[0]], ignore_index=True)
    y = np.concatenate([train[1], val[1]])
    held = fold_ids(schema.task, y, SEED, K) == 2
    again = make_pipeline("hist_gradient_boosting", schema, SEED, rows=len(train[1]))
    again.fit(rows[~held], y[~held])
    np.testing.assert_array_equal(again.predict_proba(frame), shipped.estimators_[2].predict_proba(frame))
    # not one refit on every row: that model's probabilities differ
    (tmp_path / "one").mkdir()
    single = refit_on_train_and_val(candidate.name, schema, train, val, SEED, tmp_path / "one")
    assert "bag" not in single
    assert np.abs(joblib.load(single["path"]).predict_proba(frame) - members).max() > 1e-3
    _assert_passed(export_sklearn(shipped, schema, test, tmp_path / "exports"))


def test_a_linear_model_or_a_forest_is_refit_and_an_ensembles_boosted_members_are_bagged(
    tmp_path: Path,
) -> None:
    schema, train, val, _, forest = _candidate("random_forest", TITANIC, tmp_path, budget=30)
    record, shipped = _refit(schema, train, val, forest, tmp_path)
    assert "bag" not in record and type(shipped).__name__ == "Pipeline"
    linear = fit_candidate("linear", schema, train, val, "accuracy", SEED, tmp_path / "linear")
    record, shipped = _refit(schema, train, val, linear, tmp_path / "linear")
    assert "bag" not in record and type(shipped).__name__ == "Pipeline"

    members = [
        EnsembleMember(name="lightgbm", base="lightgbm", weight=0.5),
        EnsembleMember(name="linear", base="linear", weight=0.3),
        EnsembleMember(name="random_forest", base="random_forest", weight=0.2, params=forest.params),
    ]
    record, shipped = _refit(
        schema, train, val, forest.model_copy(update={"name": "ensemble"}), tmp_path, members=members
    )
    bag = record["bag"]
    assert bag.members == [f"lightgbm_fold{k}" for k in range(K)] + ["linear", "random_forest"]
    assert shipped.weights == pytest.approx([0.5 / K] * K + [0.3, 0.2])
    assert "linear, random_forest refit on train + validation" in bag.rule


def test_a_threshold_cuts_the_bags_averaged_probability(tmp_path: Path) -> None:
    schema, train, val, test, candidate = _candidate("lightgbm", TITANIC, tmp_path)
    record, shipped = _refit(schema, train, val, candidate, tmp_path, threshold=0.3)
    assert record["bag"].folds == K
    assert type(shipped).__name__ == "FixedThresholdClassifier"
    frame = to_model_frame(test, schema)
    p1 = shipped.predict_proba(frame)[:, 1]
    np.testing.assert_array_equal(shipped.predict(frame), (p1 >= 0.3).astype(int))
    assert ((p1 >= 0.3) != (p1 >= 0.5)).any()  # the cut matters on these rows
    _assert_passed(export_sklearn(shipped, schema, test, tmp_path / "exports"))


def test_a_log_scale_regressor_bag_averages_on_the_original_scale(tmp_path: Path) -> None:
    schema, train, val, test, candidate = _candidate("lightgbm", DIABETES, tmp_path, log_target=True)
    record, shipped = _refit(schema, train, val, candidate, tmp_path)
    assert len(shipped.estimators_) == K and record["bag"].members[0] == "lightgbm_fold0"
    frame = to_model_frame(test, schema)
    members = np.mean([m.predict(frame) for m in shipped.estimators_], axis=0)
    np.testing.assert_allclose(shipped.predict(frame), members, rtol=1e-12)
    _assert_passed(export_sklearn(shipped, schema, test, tmp_path / "exports"))


def test_a_released_bag_continues_every_member_on_new_rows(tmp_path: Path) -> None:
    schema, train, val, test, candidate = _candidate("hist_gradient_boosting", TITANIC, tmp_path)
    _, shipped = _refit(schema, train, val, candidate, tmp_path)
    frame = to_model_frame(test, schema)
    before = shipped.predict_proba(frame)
    rounds = [m.named_steps["model"].n_iter_ for m in shipped.estimators_]
    new = pd.concat([train[0], val[0]]).iloc[:300]
    y_new = np.concatenate([train[1], val[1]])[:300]
    continued, how = continue_sklearn(shipped, new, y_new)
    assert how.how == "warm_start" and how.detail.startswith(f"each of its {K} blended pipelines")
    assert [m.named_steps["model"].n_iter_ for m in continued.estimators_] > rounds
    assert continued.weights == pytest.approx([1 / K] * K)
    assert np.abs(continued.predict_proba(frame) - before).max() > 1e-6
    # a thresholded bag continues inside its threshold
    (tmp_path / "cut").mkdir()
    _, thresholded = _refit(schema, train, val, candidate, tmp_path / "cut", threshold=0.3)
    continued, how = continue_sklearn(thresholded, new, y_new)
    assert continued.threshold == 0.3 and how.detail.startswith(f"each of its {K} blended pipelines")
    assert [m.named_steps["model"].n_iter_ for m in continued.estimator_.estimators_] > rounds


def test_a_bag_long_for_the_budget_is_one_refit_by_the_count_rule(tmp_path: Path) -> None:
    """k - 1 refits at the nominal price over the long-fit limit: one refit, never a bag a cap could
    stop (it would ship the train-only fit); the same rule on any machine (counts, not the clock)."""
    schema, train, val, _, candidate = _candidate("hist_gradient_boosting", TITANIC, tmp_path)
    job = RefitJob(candidate.name, schema, SEED, tmp_path, candidate.base, candidate.settings(), bag=True)
    width = 400  # priced as if 400 columns came out of preprocessing: a bag over the 5-s floor
    single = nominal_candidate_seconds("hist_gradient_boosting", len(train[1]) + len(val[1]), width, 2, {})
    price, why = priced_bag(single, budget=1.0)
    assert price > 5 and price == pytest.approx(single * (K - 1)) and f"{price:.1f} s" in why
    assert priced_bag(single, budget=None) == (price, None)
    long_budget = 4 * price / LONG_FIT_SHARE  # the bag is under a quarter of it
    assert priced_bag(single, long_budget)[1] is None

    record = refit_capped(job, train, val, 1.0, 60.0, candidate.fit_seconds, width, 2)
    assert record["bag_skipped"] == why and "bag" not in record
    assert type(joblib.load(record["path"]).named_steps["model"]).__name__.startswith("HistGradient")
    record = refit_capped(job, train, val, long_budget, 60.0, candidate.fit_seconds, width, 2)
    assert "bag_skipped" not in record and record["bag"].folds == K
    # a forest is never bagged, so its refit is never priced or recorded as a bag
    forest = RefitJob(
        "random_forest", schema, SEED, tmp_path, None, {"params": {"n_estimators": 20}}, bag=True
    )
    record = refit_capped(forest, train, val, 1.0, 60.0, 1.0, width, 2)
    assert "bag_skipped" not in record and "bag" not in record
