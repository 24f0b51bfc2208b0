"""The user's metric ranks, chooses and gates; escalations must beat the noise; what wins ships.

Real data from /work/shared/datasets: caravan (6 % positives, sampled to 1,850 rows), titanic,
breast cancer, diabetes, wine and diamonds (sampled to 1,500 rows).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from cli_helpers import predict_rows, run_quick
from http_helpers import free_port, wait_for

from ml_expert.tools.data.prepare import load_split, prepare_data
from ml_expert.tools.scoring import METRICS, MetricError, all_scores, better, primary_metric, score
from ml_expert.tools.selection.baselines import best_baseline, fit_candidate, run_baselines
from ml_expert.tools.selection.crossval import CV_FOLDS, fold_ids, skewed_positive
from ml_expert.tools.selection.noise import escalation
from ml_expert.tools.selection.threshold import best_threshold, cross_fitted

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CLI = [sys.executable, "-m", "ml_expert"]


def _caravan(tmp_path: Path) -> Path:
    """1,850 rows of the real caravan file, all its 6 % positives share kept near 8 %."""
    frame = pd.read_csv(DATASETS / "caravan.csv")
    pos = frame[frame.target == "Yes"].sample(150, random_state=0)
    neg = frame[frame.target == "No"].sample(1700, random_state=0)
    path = tmp_path / "caravan_sample.csv"
    pd.concat([pos, neg]).sample(frac=1, random_state=0).to_csv(path, index=False)
    return path


def _prepared(tmp_path: Path, name: str):
    prepared = prepare_data(str(DATASETS / name), "target", 0, tmp_path / "data")
    schema = prepared.input_schema
    hashes = prepared.file_hashes
    train = load_split(prepared.files, "train", schema, hashes)
    return schema, train, load_split(prepared.files, "val", schema, hashes)


def test_every_metric_ranks_a_real_model_above_the_dummy(tmp_path: Path) -> None:
    """Each metric's direction: HGB beats the prior on breast cancer / diabetes under all of them."""
    for name, task in (("breast_cancer.csv", "classification"), ("diabetes.csv", "regression")):
        schema, train, val = _prepared(tmp_path / name, name)
        names = [m for m, info in METRICS.items() if info.task == task]
        metric = primary_metric(task)[0]
        board = run_baselines(
            schema, train, val, metric, 0, tmp_path / name / "m", names=("dummy", "hist_gradient_boosting")
        )
        dummy, model = (np.load(c.val_predictions) for c in board)
        for m in names:
            if m in ("mape", "recall"):  # a prior that calls every row positive has recall 1
                continue
            assert better(m, score(m, val[1], model), score(m, val[1], dummy)), m
        assert set(all_scores(task, val[1], model)) >= set(names) - {"mape"}
    assert primary_metric("classification") == ("accuracy", primary_metric("classification")[1])
    with pytest.raises(MetricError):
        primary_metric("regression", "f1")
    with pytest.raises(MetricError):
        primary_metric("classification", "f1", n_classes=3)


def test_a_small_validation_win_is_inside_the_margin(tmp_path: Path) -> None:
    """Titanic's validation split (~200 rows): fixing 2 of the linear model's errors is noise,
    fixing 20 is not; the paired fold rule says the same on out-of-fold predictions."""
    schema, train, val = _prepared(tmp_path, "titanic.csv")
    linear = fit_candidate("linear", schema, train, val, "accuracy", 0, tmp_path / "m")
    proba = np.load(linear.val_predictions)
    wrong = np.flatnonzero(proba.argmax(axis=1) != val[1])
    assert len(wrong) > 25

    def fixed(k: int) -> np.ndarray:
        better_proba = proba.copy()
        better_proba[wrong[:k]] = np.eye(2)[val[1][wrong[:k]]]
        return better_proba

    small = escalation("accuracy", val[1], proba, fixed(2), seed=0, simple="linear", candidate="complex")
    assert 0 < small.gain < small.margin and not small.wins, small.rule
    large = escalation("accuracy", val[1], proba, fixed(20), seed=0)
    assert large.wins and large.gain > large.margin, large.rule
    assert "bootstrap over" in small.scheme and "margin" in small.rule
    # the same on paired folds
    folds = fold_ids("classification", val[1], 0)
    assert not escalation("accuracy", val[1], proba, fixed(2), folds=folds).wins
    assert escalation("accuracy", val[1], proba, fixed(20), folds=folds).wins
    # a loss metric: lower is better, the gain is still positive when the candidate improves
    loss = escalation("log_loss", val[1], proba, fixed(20), seed=0)
    assert loss.gain > 0 and loss.candidate_score < loss.simple_score


def test_cv_leaderboard_has_means_spreads_and_is_seeded(tmp_path: Path) -> None:
    schema, train, val = _prepared(tmp_path, "wine.csv")
    y = np.concatenate([train[1], val[1]])
    folds = fold_ids("classification", y, 0)
    boards = [
        run_baselines(
            schema, train, val, "accuracy", 0, tmp_path / f"m{i}", names=("dummy", "linear"), folds=folds
        )
        for i in (0, 1)
    ]
    for c in boards[0]:
        assert len(c.cv_folds) == CV_FOLDS and c.cv_mean == pytest.approx(np.mean(c.cv_folds), abs=1e-6)
        assert c.cv_std == pytest.approx(np.std(c.cv_folds, ddof=1), abs=1e-6)
        assert c.selection_score == c.cv_mean
        assert np.load(c.heldout_predictions).shape == (len(y), 3)
    assert [c.cv_folds for c in boards[0]] == [c.cv_folds for c in boards[1]]


def test_accuracy_and_balanced_accuracy_choose_different_models(tmp_path: Path) -> None:
    """Caravan (8 % positives): the forest is the most accurate, logistic regression the most
    balanced, on the same out-of-fold predictions."""
    prepared = prepare_data(str(_caravan(tmp_path)), "target", 0, tmp_path / "data")
    schema = prepared.input_schema
    train, val = (load_split(prepared.files, s, schema, prepared.file_hashes) for s in ("train", "val"))
    y = np.concatenate([train[1], val[1]])
    folds = fold_ids("classification", y, 0)
    board = run_baselines(schema, train, val, "accuracy", 0, tmp_path / "m", folds=folds)
    rescored = []
    for c in board:
        oof = np.load(c.heldout_predictions)
        per_fold = [score("balanced_accuracy", y[folds == k], oof[folds == k]) for k in range(CV_FOLDS)]
        rescored.append(c.model_copy(update={"cv_mean": float(np.mean(per_fold))}))
    by_accuracy = best_baseline(board, "accuracy").name
    by_balance = best_baseline(rescored, "balanced_accuracy").name
    assert by_accuracy != by_balance, (by_accuracy, by_balance)


def test_threshold_tuning_is_cross_fitted() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(int)
    p1 = np.clip(0.05 + 0.3 * y + rng.normal(0, 0.1, 400), 0, 1)
    cut = best_threshold("f1", y, p1)
    assert cut < 0.5 and np.float32(cut) == cut  # float32, as the ONNX graph compares
    folds = fold_ids("classification", y, 0)
    cuts = cross_fitted("f1", y, p1, folds)
    assert len(np.unique(cuts)) > 1  # each fold's rows cut at the others' threshold
    assert score("f1", y, np.column_stack([1 - p1, p1]), cuts) > score("f1", y, np.column_stack([1 - p1, p1]))


def test_gate_reads_the_metric_direction() -> None:
    from phase_helpers import validation_result

    from ml_expert.graph.gates import validation_gate

    state = {
        "options": {"min_metric": {"rmse": 50.0, "r2": 0.3}},
        "validation": validation_result(
            primary_metric="rmse",
            greater_is_better=False,
            test_metrics={"rmse": 55.0, "r2": 0.4},
            test_score=55.0,
            dummy_test_score=70.0,
        ),
    }
    checks = {c.name: c for c in validation_gate(state).checks}
    assert not checks["min_rmse"].passed and "at most" in checks["min_rmse"].detail
    assert checks["min_r2"].passed and checks["beats_dummy_baseline"].passed
    state["options"]["min_metric"]["rmse"] = 60.0
    assert {c.name: c for c in validation_gate(state).checks}["min_rmse"].passed


def test_f1_threshold_ships_and_predict_and_serve_reproduce_it(tmp_path: Path) -> None:
    """--metric f1 on caravan: argmax finds almost no positives; a tuned threshold wins by more
    than the margin, ships inside the ONNX graph and `predict` / `serve` cut where the model does."""
    workspace = tmp_path / "ws"
    payload = run_quick(
        _caravan(tmp_path), "target", workspace, 0, "--metric", "f1", "--min-metric", "f1=0.05"
    )
    run_dir = Path(payload["run_dir"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    chosen = training.get("value", training)["chosen"]
    assert chosen["threshold"] is not None and chosen["threshold"] < 0.5, chosen
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    selection = selection.get("value", selection)
    assert selection["metric"] == "f1" and selection["comparison"]["scheme"] == "cv"
    kept = [e for e in selection["escalations"] if e["candidate"] == chosen["name"]]
    assert kept and kept[0]["wins"] and kept[0]["gain"] > kept[0]["margin"]
    assert payload["gates"]["validation"] and payload["metrics"]["f1"] >= 0.05
    report = (run_dir / "evaluation_report.md").read_text()
    assert "| **f1** (chosen) |" in report and "Decision threshold" in report
    assert "-fold CV f1 mean ± std" in report and "## Escalations" in report

    shipped = joblib.load(chosen["path"])
    rows = pd.read_parquet(run_dir / "data" / "val_raw.parquet")
    from ml_expert.tools.data.schema import InputSchema, to_model_frame

    schema = InputSchema.model_validate_json((run_dir / "deployment" / "schema.json").read_text())
    frame = to_model_frame(rows, schema)
    expected = [schema.classes[i] for i in shipped.predict(frame)]
    argmax = [schema.classes[i] for i in shipped.predict_proba(frame).argmax(axis=1)]
    assert expected != argmax  # the threshold changes some labels
    predicted = predict_rows(payload["run_id"], rows, workspace, tmp_path, proba=False)
    assert list(predicted["prediction"]) == expected

    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "production", "--port", str(port), "--workspace", str(workspace)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        records = json.loads(rows.to_json(orient="records"))
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json={"rows": records}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_skewed_target_gets_a_log_scale_candidate_that_exports(tmp_path: Path) -> None:
    """Diamond prices (1,500 real rows, skewness ~1.6): a log1p candidate is tried; ranked by
    RMSLE it wins, ships as one ONNX graph (expm1 inside, alone or as an ensemble member) and
    predict reproduces it."""
    sample = pd.read_csv(DATASETS / "diamonds.csv").sample(1500, random_state=0)
    path = tmp_path / "diamonds_sample.csv"
    sample.to_csv(path, index=False)
    assert skewed_positive(sample["target"].to_numpy())[0]
    assert not skewed_positive(pd.read_csv(DATASETS / "diabetes.csv")["target"].to_numpy())[0]
    workspace = tmp_path / "ws"
    payload = run_quick(path, "target", workspace, 0, "--metric", "rmsle")
    run_dir = Path(payload["run_dir"])
    selection = json.loads((run_dir / "findings" / "model-selection.json").read_text())
    selection = selection.get("value", selection)
    logs = [c for c in selection["leaderboard"] if c["log_target"]]
    assert logs and logs[0]["name"].endswith("_log")
    # the log scale wins its escalation; what ships is it or an ensemble built on top of it
    won = next(e for e in selection["escalations"] if e["candidate"] == logs[0]["name"])
    assert won["wins"] and won["gain"] > won["margin"], won
    assert payload["chosen_model"] in (logs[0]["name"], "ensemble"), selection["escalations"]
    decisions = json.loads((run_dir / "run.json").read_text())["decisions"]
    assert any("log-scale target" in d["decision"] and "replaces" in d["decision"] for d in decisions)
    deployment = json.loads((run_dir / "findings" / "deployment.json").read_text())
    deployment = deployment.get("value", deployment)
    assert deployment["exports"] and all(e["passed"] for e in deployment["exports"])
    training = json.loads((run_dir / "findings" / "training.json").read_text())
    shipped = joblib.load(training.get("value", training)["chosen"]["path"])
    rows = sample.drop(columns="target").head(40)
    served = predict_rows(payload["run_id"], rows, workspace, tmp_path, proba=False)
    np.testing.assert_allclose(served["prediction"], shipped.predict(rows), rtol=1e-4)


def test_network_refit_runs_the_best_epoch_count_on_train_and_validation(tmp_path: Path) -> None:
    """The winning network is rebuilt from the seed and fit on train + validation for exactly the
    epoch count early stopping found best; the same seed gives the same weights."""
    from ml_expert.tools.training.dnn import DNNConfig, refit_dnn

    prepared = prepare_data(str(DATASETS / "iris.csv"), "target", 0, tmp_path / "data")
    files = prepared.files
    x = np.concatenate([np.load(files["X_train"]), np.load(files["X_val"])])
    y = np.concatenate(
        [load_split(files, s, prepared.input_schema, prepared.file_hashes)[1] for s in ("train", "val")]
    )
    config = DNNConfig(hidden_units=[16], batch_size=16, max_epochs=50)
    runs = [refit_dnn(x, y, "classification", 3, config, seed=5, epochs=7) for _ in range(2)]
    (model, refit), (again, _) = runs
    assert refit["epochs"] == 7 and not refit["diverged"] and refit["rows"] == len(y)
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.asarray(model.predict(x[:5], verbose=0)).shape == (5, 3)


def test_the_cv_plan_costs_the_baselines_at_their_defaults() -> None:
    """CV fits the baselines' defaults: costing them as search-space configurations (SEARCH_COST)
    denied 3-fold CV to a 3,609-row file whose four defaults cost 23.7 s of a 30 s share."""
    from ml_expert.tools.selection.crossval import plan_cv
    from ml_expert.tools.selection.tuning import SEARCH_COST, nominal_fit_seconds

    families = ["linear", "random_forest", "hist_gradient_boosting", "lightgbm"]
    default = nominal_fit_seconds("lightgbm", 2000, 85, 2, at_defaults=True)
    assert nominal_fit_seconds("lightgbm", 2000, 85, 2) - 0.2 == pytest.approx(SEARCH_COST * (default - 0.2))
    plan = plan_cv(2972, 637, 85, 2, 60.0, families)
    assert plan.folds == 3 and "nominal cost 23.7 s <= 50% of the 60 s budget" in plan.rule
    assert plan_cv(2972, 637, 85, 2, 40.0, families).folds is None  # a smaller budget: validation split


def test_an_exact_tie_goes_to_the_lower_held_out_log_loss_then_to_the_simpler() -> None:
    from ml_expert.tools.selection.baselines import CandidateResult, tied_with

    def candidate(name: str, accuracy: float, log_loss: float | None) -> CandidateResult:
        return CandidateResult(
            name=name, family="x", kind="sklearn", val_score=accuracy, train_score=1.0, fit_seconds=0.1,
            tie_log_loss=log_loss,
        )  # fmt: skip

    board = [
        candidate("dummy", 0.1, 2.3),
        candidate("linear", 0.98, 0.30),
        candidate("random_forest", 0.98, 0.34),
        candidate("svm", 0.98, 0.24),
        candidate("lightgbm", 0.97, 0.10),  # a better log-loss does not outrank a better accuracy
    ]
    best = best_baseline(board, "accuracy")
    assert best.name == "svm"
    assert [c.name for c in tied_with(best, board)] == ["linear", "random_forest"]
    assert best_baseline([*board[:3], candidate("svm", 0.98, 0.30)], "accuracy").name == "linear"  # simpler
    regression = [candidate("linear", 0.5, None), candidate("svm", 0.5, None)]
    assert best_baseline(regression, "r2").name == "linear"
