"""The kernel SVM as a candidate family: joins by a count rule, calibrated probabilities that its
label agrees with, deterministic, tunable, exported to one ONNX graph with its preprocessing and
served through `ml-expert predict` (real data, real onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from test_model_families import PENGUINS, SEED, TITANIC, _assert_passed, assert_titanic_package_serves, split

from ml_expert.tools.data.schema import to_model_frame
from ml_expert.tools.deployment.exports import PROBABILITY_TOLERANCE, export_sklearn
from ml_expert.tools.selection.baselines import CandidateSpec, train_candidate
from ml_expert.tools.selection.candidates import BASELINES, CORE_BASELINES, make_pipeline
from ml_expert.tools.selection.kernel import SVM_SHARE, plan_svm
from ml_expert.tools.selection.tuning import candidate_params, nominal_fit_seconds


def test_the_svm_joins_only_when_its_nominal_cost_fits_its_share() -> None:
    assert BASELINES["svm"] == (True, "kernel") and "svm" not in CORE_BASELINES
    small = plan_svm("classification", 1000, 250, 30, 100, 60.0, 5)
    assert small.include and f"<= {SVM_SHARE:.0%} of the 60 s budget" in small.rule
    # the solver's cost grows with the square of the rows: 4x the rows, about 16x the cost
    ratio = nominal_fit_seconds("svm", 40_000, 30, 2) / nominal_fit_seconds("svm", 10_000, 30, 2)
    assert 15 < ratio < 16.1
    large = plan_svm("classification", 40_000, 10_000, 30, 5_000, 60.0, None)
    assert not large.include and "> 10% of the 60 s budget" in large.rule
    assert plan_svm("classification", 40_000, 10_000, 30, 5_000, 6_000.0, None).include  # more budget
    assert not plan_svm("regression", 1000, 250, 30, 0, 60.0, 5).include
    few = plan_svm("classification", 1000, 250, 30, 7, 60.0, 5)
    assert not few.include and "smallest class has 7" in few.rule


def test_its_label_is_the_argmax_of_its_calibrated_probabilities_and_the_seed_fixes_it() -> None:
    schema, train, test, y = split(*PENGUINS)
    frame, rows = to_model_frame(train, schema), to_model_frame(test, schema)
    first = make_pipeline("svm", schema, SEED, rows=len(y)).fit(frame, y)
    again = make_pipeline("svm", schema, SEED, rows=len(y)).fit(frame, y)
    proba = first.predict_proba(rows)
    np.testing.assert_array_equal(proba, again.predict_proba(rows))
    np.testing.assert_array_equal(first.predict(rows), proba.argmax(axis=1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    truth = test["target"].map({c: i for i, c in enumerate(schema.classes)}).to_numpy()
    assert (first.predict(rows) == truth).mean() > 0.9


def test_its_search_space_reaches_the_kernel_and_a_trial_fits() -> None:
    schema, train, test, y = split(*TITANIC)
    params = candidate_params("svm", "classification", 4, SEED)
    assert params[0] == {} and all(set(p) == {"estimator__C", "estimator__gamma"} for p in params[1:])
    model = make_pipeline("svm", schema, SEED, rows=len(y), params=params[1]).named_steps["model"]
    assert params[1]["estimator__C"] == model.estimator.C
    spec = CandidateSpec(base="svm", name="svm", input_schema=schema, metric="accuracy", seed=SEED)
    half = len(train) // 2
    y_all = np.asarray(y)
    fitted = train_candidate(spec, ((train[:half], y_all[:half]), (train[half:], y_all[half:]), None))
    assert fitted.result.family == "kernel" and 0.7 < fitted.result.val_score <= 1.0


def test_svm_exports_one_onnx_graph_that_matches_and_is_served(tmp_path: Path) -> None:
    schema, train, test, y = split(*TITANIC)
    pipeline = make_pipeline("svm", schema, SEED, rows=len(y)).fit(to_model_frame(train, schema), y)
    records = export_sklearn(pipeline, schema, test, tmp_path / "exports")
    _assert_passed(records)
    assert records[1].parity.max_abs_diff <= PROBABILITY_TOLERANCE
    ops = {n.op_type for n in onnx.load(records[1].path).graph.node}
    assert "SVMClassifier" in ops and "Imputer" in ops  # the model and its preprocessing, one graph
    assert_titanic_package_serves(pipeline, records[1].path, schema, test, "svm", tmp_path)
