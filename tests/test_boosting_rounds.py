"""LightGBM's boosting rounds are chosen by early stopping in k-fold CV on the training rows only,
fixed in the candidate's params (so the cross-validation and the refit fit the same model), capped
by a count rule from the budget, and identical under the seed. Real data, real lightgbm.cv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from test_model_families import DIABETES, PENGUINS, SEED, split

from ml_expert.tools.selection.baselines import fit_candidate
from ml_expert.tools.selection.boosting import (
    LEARNING_RATE,
    MAX_ROUNDS,
    MIN_ROUNDS,
    early_stopped_rounds,
    round_cap,
)
from ml_expert.tools.selection.candidates import make_pipeline


def _rounds(case, **kwargs):
    schema, train, _, y = split(*case)
    frame = train[schema.keys]
    pre = Pipeline(make_pipeline("lightgbm", schema, SEED).steps[:-1])
    return early_stopped_rounds(pre, schema, (frame, y), SEED, **kwargs)


def test_rounds_are_early_stopped_on_training_rows_and_identical_under_the_seed() -> None:
    first, again = _rounds(DIABETES, budget=60.0), _rounds(DIABETES, budget=60.0)
    assert first == again
    rounds = first.params["n_estimators"]
    # 331 noisy rows: far fewer rounds than the cap, and the rule says how they were chosen
    assert first.params["learning_rate"] == LEARNING_RATE
    assert 1 <= rounds < MAX_ROUNDS
    assert "early stopping" in first.rule and "5-fold" in first.rule


def test_a_log_target_and_class_weights_are_searched_as_they_will_be_fit() -> None:
    plain, logged = _rounds(DIABETES), _rounds(DIABETES, log_target=True)
    assert plain.params["n_estimators"] != logged.params["n_estimators"]
    # class weights change the loss the folds stop on, hence the count (penguins: 123 vs 91)
    weighted = _rounds(PENGUINS, balanced=True)
    assert weighted.params["n_estimators"] != _rounds(PENGUINS).params["n_estimators"]


def test_a_budget_too_small_for_the_search_keeps_the_defaults() -> None:
    assert round_cap(1_000_000, 60.0) < MIN_ROUNDS
    assert round_cap(500, None) == MAX_ROUNDS
    schema, train, _, y = split(*DIABETES)
    pre = Pipeline(make_pipeline("lightgbm", schema, SEED).steps[:-1])
    kept = early_stopped_rounds(pre, schema, (train[schema.keys], y), SEED, budget=0.01)
    assert kept.params == {} and "defaults" in kept.rule


def test_the_candidate_carries_the_rounds_so_its_refit_fits_the_same_model(tmp_path: Path) -> None:
    schema, train, test, y = split(*DIABETES)
    frame = train[schema.keys]
    cut = len(y) * 3 // 4
    candidate = fit_candidate(
        "lightgbm",
        schema,
        (frame.iloc[:cut], y[:cut]),
        (frame.iloc[cut:], y[cut:]),
        "r2",
        SEED,
        tmp_path,
        budget=60.0,
    )
    assert candidate.params["learning_rate"] == LEARNING_RATE
    assert candidate.params_rule and "lightgbm.cv" in candidate.params_rule
    rebuilt = make_pipeline("lightgbm", schema, SEED, **candidate.settings())
    assert rebuilt.named_steps["model"].n_estimators == candidate.params["n_estimators"]
    assert np.isfinite(candidate.val_score)


def test_saved_predictions_are_read_only_when_their_hash_matches(tmp_path: Path) -> None:
    """A candidate's .val.npy / .oof.npy decide comparisons, thresholds and ensemble weights: one
    changed after it was written is refused, not read."""
    import pytest

    from ml_expert.errors import IntegrityError
    from ml_expert.tools.selection.crossval import fold_ids

    schema, train, _, y = split(*DIABETES)
    frame = train[schema.keys]
    cut = len(y) * 3 // 4
    folds = fold_ids("regression", y, SEED, 3)
    candidate = fit_candidate(
        "linear",
        schema,
        (frame.iloc[:cut], y[:cut]),
        (frame.iloc[cut:], y[cut:]),
        "r2",
        SEED,
        tmp_path,
        folds=folds,
    )
    assert set(candidate.predictions_sha256) == {candidate.val_predictions, candidate.heldout_predictions}
    assert candidate.held_out(True).shape == (len(y),)
    changed = candidate.held_out(False) + 1.0
    np.save(candidate.val_predictions, changed)
    with pytest.raises(IntegrityError, match="does not match"):
        candidate.held_out(False)
    unrecorded = candidate.model_copy(update={"predictions_sha256": {}})
    with pytest.raises(IntegrityError, match="no SHA-256"):
        unrecorded.held_out(True)
