"""`--tune`: a bounded search of the best baseline's hyperparameters, counted from the budget,
ranked by cross-validation on train, compared with the defaults on validation, shipped when it wins."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from cli_helpers import predict_rows, run_quick

from ml_expert.tools.data.prepare import load_split, prepare_data
from ml_expert.tools.selection.tuning import (
    MAX_TRIALS,
    MIN_TRIALS,
    candidate_params,
    plan_trials,
    tune,
)

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _selection(run_dir: Path) -> dict:
    doc = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    return doc.get("value", doc)


def test_trials_are_counts_from_data_size_and_budget() -> None:
    small = plan_trials("hist_gradient_boosting", 400, 30, 2, 60.0)
    assert small == plan_trials("hist_gradient_boosting", 400, 30, 2, 60.0)  # no clock involved
    assert MIN_TRIALS < small.trials < MAX_TRIALS and f"-> {small.trials} trials" in small.rule
    assert plan_trials("hist_gradient_boosting", 400, 30, 2, 120.0).trials == MAX_TRIALS
    # Bigger data costs more per fit: fewer trials for the same budget, none below MIN_TRIALS.
    big = plan_trials("hist_gradient_boosting", 40_000, 30, 2, 60.0)
    assert big.trials < MIN_TRIALS < small.trials
    assert plan_trials("hist_gradient_boosting", 40_000, 30, 2, 600.0).trials > big.trials
    assert plan_trials("random_forest", 400, 30, 2, 60.0).trials < small.trials  # a forest costs more
    params = candidate_params("hist_gradient_boosting", "classification", 6, seed=3)
    assert params[0] == {} and len(params) == 6 and len({json.dumps(p) for p in params}) == 6
    assert params == candidate_params("hist_gradient_boosting", "classification", 6, seed=3)
    assert params != candidate_params("hist_gradient_boosting", "classification", 6, seed=4)


def test_search_stops_at_the_time_cap_and_says_so(tmp_path: Path) -> None:
    prepared = prepare_data(str(DATASETS / "wine.csv"), "target", 0, tmp_path)
    train = load_split(prepared.files, "train", prepared.input_schema, prepared.file_hashes)
    plan = plan_trials("linear", len(train[1]), 13, 3, 60.0)
    result = tune("linear", prepared.input_schema, train, "accuracy", 0, plan, time_limit=0.0)
    assert result.cap_hit and result.trials_run == 1 < result.trials_planned  # the defaults only
    full = tune("linear", prepared.input_schema, train, "accuracy", 0, plan)
    assert not full.cap_hit and full.trials_run == plan.trials
    assert all(t.cv_score is not None and len(t.fold_scores) == 3 for t in full.trials)
    assert full.best_cv_score == max(t.cv_score for t in full.trials)


def test_tuned_model_must_beat_the_noise_margin_and_reproduces(tmp_path: Path) -> None:
    """Diabetes, seed 0: the search finds a Ridge alpha that beats the default in its CV and on
    validation, but not by the noise margin of the paired 5-fold comparison on train + validation
    (a gain of -0.0014 R² in the fresh clone, since inputs are clipped to each fit's training range;
    +0.0008 before): the simpler default ships, refit on train + validation, and is served."""
    runs = [run_quick(DATASETS / "diabetes.csv", "target", tmp_path / f"ws{i}", 0, "--tune") for i in (0, 1)]
    first, second = runs
    selection = _selection(Path(first["run_dir"]))
    tuning = selection["tuning"]
    assert tuning["ran"] and tuning["trials_run"] == tuning["trials_planned"] >= MIN_TRIALS
    assert not tuning["cap_hit"] and tuning["best_index"] > 0
    assert tuning["best_cv_score"] > tuning["default_cv_score"]
    board = {c["name"]: c for c in selection["leaderboard"]}
    tuned = board["linear_tuned"]
    assert tuned["base"] == "linear" and tuned["params"] == tuning["best_params"]
    assert tuned["val_score"] > board["linear"]["val_score"]
    verdict = next(e for e in selection["escalations"] if e["candidate"] == "linear_tuned")
    assert verdict["simple"] == "linear" and verdict["scheme"] == "5-fold CV"
    assert verdict["gain"] <= verdict["margin"] and not verdict["wins"], verdict
    assert first["chosen_model"] == "linear"
    # Same seed, same data: the same trials, scores and choice (counts, not the clock, decide).
    again = _selection(Path(second["run_dir"]))["tuning"]
    assert [t["cv_score"] for t in again["trials"]] == [t["cv_score"] for t in tuning["trials"]]
    assert second["chosen_model"] == first["chosen_model"] and second["metrics"] == first["metrics"]

    training = json.loads((Path(first["run_dir"]) / "findings" / "training.json").read_text())
    training = training.get("value", training)
    chosen = training["chosen"]
    shipped = joblib.load(chosen["path"])
    # a linear model is refit once, not bagged, even when compared by CV (tools/selection/fold_bag.py)
    assert chosen["refit"]["on"] == "train+val" and chosen["refit"]["bag"] is None
    assert shipped.named_steps["model"].alpha == 1.0  # the defaults won the tie
    spent = training["time"]
    assert spent["tuning_seconds"] > 0 and spent["tuning_trials_run"] == tuning["trials_run"]
    assert spent["tuning_trials_planned"] == tuning["trials_planned"]
    report = (Path(first["run_dir"]) / "evaluation_report.md").read_text()
    n = tuning["trials_run"]
    assert "## Time (budget 60 s" in report and f"hyperparameter search ({n} of {n} trials)" in report
    assert "No wall-clock cap fired" in report
    rows = pd.read_csv(DATASETS / "diabetes.csv").drop(columns="target").head(25)
    served = predict_rows(first["run_id"], rows, tmp_path / "ws0", tmp_path, proba=False)
    np.testing.assert_allclose(served["prediction"], shipped.predict(rows), rtol=1e-4, atol=1e-3)
