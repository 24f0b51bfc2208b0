"""The simple baselines every run measures first, as full scikit-learn pipelines.

Each pipeline carries its own preprocessing (fit on the training split only) so the model that
is scored, exported and served is one object.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skl2onnx.sklapi import CastTransformer
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from ml_expert.tools.data.preprocessing import build_preprocessor
from ml_expert.tools.data.schema import InputSchema, Task
from ml_expert.tools.selection.ensemble import EnsembleMember, make_ensemble

# name -> (needs scaled inputs, family)
BASELINES: dict[str, tuple[bool, str]] = {
    "dummy": (False, "dummy"),
    "linear": (True, "linear"),
    "random_forest": (False, "trees"),
    "hist_gradient_boosting": (False, "trees"),
    "lightgbm": (False, "trees"),
    "svm": (True, "kernel"),
    "catboost": (False, "trees"),
}
# Baselines that join only when their plan says so (tools/selection/kernel.py): the kernel SVM's fit
# grows with the square of the rows, and it classifies only. CatBoost joins when its nominal cost fits
# its share of the budget (boosting.plan_catboost): benchmarks/families_catboost.py found it never
# better than both HGB and LightGBM by more than the noise, but a help to the greedy ensemble on
# diamonds, titanic and diabetes, at 3-40x LightGBM's fit time. The others are measured on every run.
OPTIONAL_BASELINES: tuple[str, ...] = ("svm", "catboost")
CORE_BASELINES: tuple[str, ...] = tuple(n for n in BASELINES if n not in OPTIONAL_BASELINES)
CALIBRATION_FOLDS = 5
FOREST_SMALL_ROWS = 20_000
FOREST_LARGE_ROWS = 100_000
LIGHTGBM_THREADS = 1
CATBOOST_LEARNING_RATE = 0.05
CATBOOST_DEPTH = 6  # CatBoost's default depth of its symmetric trees


def lightgbm_threads(rows: int) -> int:
    """A fixed count, never the machine's cores: with `deterministic=True` the same seed then grows the
    same trees on any machine. One thread: on diamonds' 43,000 training rows, on 2 busy cores, one
    thread fit in 1.2 s and two in 20 s (OpenMP threads spin-waiting for a core)."""
    return LIGHTGBM_THREADS


def forest_size(rows: int) -> int:
    """Trees by a count rule: 300 on small data, 100 past FOREST_SMALL_ROWS (a 2-core machine)."""
    return 300 if rows <= FOREST_SMALL_ROWS else 100


def forest_limits(rows: int) -> dict[str, int]:
    """Past FOREST_LARGE_ROWS each tree sees a FOREST_LARGE_ROWS-row bootstrap sample and leaves
    hold >= 5 rows: full-depth trees on 700k rows took 9 GB of memory (measured at 1M rows)."""
    if rows <= FOREST_LARGE_ROWS:
        return {}
    return {"max_samples": FOREST_LARGE_ROWS, "min_samples_leaf": 5}


def make_estimator(name: str, task: Task, seed: int, rows: int = 0, balanced: bool = False) -> BaseEstimator:
    """`balanced`: classes weighted inversely to their frequency, when the metric is balanced accuracy
    (an imbalanced task: unweighted models learn to predict the majority class)."""
    classification = task == "classification"
    weight = "balanced" if balanced and classification else None
    if name == "dummy":
        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if name == "linear":
        return (
            LogisticRegression(max_iter=2000, C=1.0, class_weight=weight)
            if classification
            else Ridge(alpha=1.0)
        )
    if name == "random_forest":
        # oob_score: the forest's honest training-side score (see baselines.training_score)
        size = {
            "n_estimators": forest_size(rows),
            **forest_limits(rows),
            "n_jobs": -1,
            "random_state": seed,
            "oob_score": True,
        }
        if classification:
            return RandomForestClassifier(class_weight=weight, **size)
        return RandomForestRegressor(**size)
    if name == "hist_gradient_boosting":
        if classification:
            return HistGradientBoostingClassifier(random_state=seed, class_weight=weight)
        return HistGradientBoostingRegressor(random_state=seed)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        # deterministic + force_row_wise: the same trees for the same seed and data (LightGBM's
        # own advice); verbosity -1: the terminal shows ml-expert's progress, not LightGBM's.
        settings = {
            "random_state": seed,
            "n_jobs": lightgbm_threads(rows),
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if classification:
            return LGBMClassifier(class_weight=weight, **settings)
        return LGBMRegressor(**settings)
    if name == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor

        # The same fixed thread count as LightGBM (one: the same trees on any machine, and no
        # spin-waiting on a busy machine); allow_writing_files=False: nothing written to the working
        # directory. Iterations: set by the caller (boosting.catboost_iterations), else CatBoost's 1000.
        settings = {
            "learning_rate": CATBOOST_LEARNING_RATE,
            "depth": CATBOOST_DEPTH,
            "random_seed": seed,
            "thread_count": lightgbm_threads(rows),
            "verbose": 0,
            "allow_writing_files": False,
        }
        if classification:
            return CatBoostClassifier(auto_class_weights="Balanced" if weight else None, **settings)
        return CatBoostRegressor(**settings)
    if name == "svm" and classification:
        # An RBF kernel on standardised inputs (gamma "scale"); its probabilities are sigmoid-
        # calibrated on CALIBRATION_FOLDS stratified folds and the SVC is then refit on all rows
        # (ensemble=False: one SVC ships). predict is the argmax of those probabilities, so the
        # label, the ROC-AUC, a tuned threshold and an ensemble weight all read the same numbers.
        return CalibratedClassifierCV(
            SVC(kernel="rbf", C=1.0, gamma="scale", class_weight=weight),
            method="sigmoid",
            cv=CALIBRATION_FOLDS,
            ensemble=False,
        )
    raise ValueError(f"unknown baseline {name!r}")


def make_pipeline(
    name: str,
    schema: InputSchema,
    seed: int,
    rows: int = 0,
    balanced: bool = False,
    params: dict[str, Any] | None = None,
    log_target: bool = False,
    threshold: float | None = None,
    members: list[EnsembleMember] | None = None,
) -> Any:
    """`params`: the model step's hyperparameters over the defaults (a tuned configuration).

    `log_target`: the regressor learns log1p(y) and predicts expm1 of it (a skewed positive
    target); `threshold`: a binary classifier cuts P(class 1) there instead of at the argmax
    (the pipeline is wrapped in FixedThresholdClassifier, whose predict applies it); `members`: a
    weighted soft vote / average of those candidates instead (`name` is then only a label)."""
    if members:  # a weighted ensemble of candidates (tools/selection/ensemble.py), each rebuilt
        voting = make_ensemble(
            [
                (m.name, make_pipeline(m.base, schema, seed, rows, m.balanced, m.params, m.log_target))
                for m in members
            ],
            [m.weight for m in members],
            schema.task,
        )
        if threshold is not None and schema.task == "classification":
            return FixedThresholdClassifier(voting, threshold=threshold, response_method="predict_proba")
        return voting
    scaled, _ = BASELINES[name]
    model = make_estimator(name, schema.task, seed, rows, balanced)
    if params:
        model.set_params(**params)
    if log_target and schema.task == "regression":
        model = TransformedTargetRegressor(
            regressor=model, func=np.log1p, inverse_func=np.expm1, check_inverse=False
        )
    pipeline = Pipeline(
        [
            ("pre", build_preprocessor(schema, scale=scaled, word_ids=False)),
            ("cast", CastTransformer(dtype=np.float32)),
            ("model", model),
        ]
    )
    if threshold is not None and schema.task == "classification":
        return FixedThresholdClassifier(pipeline, threshold=threshold, response_method="predict_proba")
    return pipeline


def inner_pipeline(model: Any) -> Any:
    """The fitted Pipeline inside a FixedThresholdClassifier (or the model itself)."""
    return getattr(model, "estimator_", model) if isinstance(model, FixedThresholdClassifier) else model
