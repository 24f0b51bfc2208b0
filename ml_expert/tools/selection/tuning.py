"""Bounded hyperparameter search for the best baseline's family (`--tune`).

The number of trials is a count fixed by a rule from the data's size and the budget (a nominal
cost per fit, never a measured one), so a seeded run tries the same configurations on a fast and
on a slow machine; wall-clock time only stops the search early, and that is recorded as a cap hit.
Trial 0 is the baseline's own configuration. Trials are ranked by k-fold cross-validation on the
training split alone, so the validation split still compares the tuned model with the untuned
baselines on rows no trial was chosen on; a tuned candidate exists only when a configuration
beats the defaults in cross-validation.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy.stats import loguniform
from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold

from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.mapping import MapFn, sequential_map
from ml_expert.tools.scoring import predict_scores, score, sign
from ml_expert.tools.selection.baselines import fit
from ml_expert.tools.selection.candidates import CALIBRATION_FOLDS, forest_size, make_pipeline
from ml_expert.tools.selection.records import TrialPlan

TUNE_SHARE = 0.25  # of the budget, planned for the search (the network plans on its own share)
FOLDS = 3
MAX_TRIALS = 24
MIN_TRIALS = 4  # counting trial 0 (the defaults): fewer is not a search
SEARCH_COST = 1.5  # a sampled ensemble costs this much more than the defaults on average
# Seconds per rows^2 x features of one SVC fit on the nominal machine: digits (1,797 rows x 64
# features, 6 fits) took 0.47 s on an idle 2-core EPYC, 3.8e-10 per unit; set 2.6x pessimistic.
SVM_FIT_COST = 1e-9
# Seconds per row x feature x class x round of one LightGBM fit whose rounds are known (a refit, a
# configuration's n_estimators): no round search in it. Measured on a 2-core Xeon at load ~6: 3.3e-9
# (diamonds, 232 rounds), 5.3e-9 (digits, 331 rounds x 10 classes), 6.4e-9 (titanic, 51 rounds);
# set about 2x pessimistic.
BOOST_ROUND_COST = 1e-8
CATBOOST_ITERATIONS = 1000  # the most iterations boosting.catboost_iterations grows (CatBoost's default)
CAP_FACTOR = 1.5  # safety stop: the search ends past this many times its planned share of the budget

# Search spaces of the model step. Distributions are sampled by ParameterSampler(seed).
SPACES: dict[str, dict[str, Any]] = {
    "hist_gradient_boosting": {
        "learning_rate": loguniform(0.01, 0.3),
        "max_leaf_nodes": [7, 15, 31, 63],
        "min_samples_leaf": [2, 5, 10, 20, 40],
        "l2_regularization": loguniform(1e-3, 10.0),
        "max_features": [0.5, 0.75, 1.0],
        "max_iter": [100, 200],
    },
    "lightgbm": {
        "learning_rate": loguniform(0.01, 0.3),
        "num_leaves": [7, 15, 31, 63],
        "min_child_samples": [5, 10, 20, 40],
        "reg_lambda": loguniform(1e-3, 10.0),
        "colsample_bytree": [0.5, 0.75, 1.0],
        "subsample": [0.7, 0.85, 1.0],
        "subsample_freq": [1],
        "n_estimators": [100, 200],
    },
    "catboost": {
        "learning_rate": loguniform(0.01, 0.3),
        "depth": [4, 6, 8],
        "l2_leaf_reg": loguniform(1.0, 10.0),
        "rsm": [0.5, 0.75, 1.0],
        "iterations": [200, 500],
    },
    "random_forest": {
        "max_features": ["sqrt", 0.2, 0.33, 0.5],
        "min_samples_leaf": [1, 2, 4, 8],
        "max_depth": [None, 8, 16],
    },
    "svm": {"estimator__C": loguniform(0.1, 100.0), "estimator__gamma": loguniform(1e-4, 1.0)},
    "linear_classification": {"C": loguniform(1e-3, 1e3)},
    "linear_regression": {"alpha": loguniform(1e-3, 1e3)},
}


class Trial(BaseModel):
    index: int
    params: dict[str, Any]
    cv_score: float | None
    fold_scores: list[float] = []
    seconds: float
    error: str | None = None


class TuningResult(BaseModel):
    name: str
    metric: str
    folds: int
    trials_planned: int
    trials_run: int
    cap_hit: bool
    seconds: float
    default_cv_score: float | None
    best_index: int
    best_params: dict[str, Any]
    best_cv_score: float | None
    trials: list[Trial]


def space(name: str, task: str) -> dict[str, Any]:
    if name == "linear":
        return SPACES["linear_classification" if task == "classification" else "linear_regression"]
    return SPACES[name]


def sampled_configuration(name: str, task: str, params: dict[str, Any], params_rule: str | None) -> bool:
    """Whether `params` are a configuration the search sampled (priced at SEARCH_COST), not the
    defaults: a key of the search space that no data rule set (LightGBM's early-stopped rounds set
    learning_rate and n_estimators with a `params_rule`; the forest's budget size, n_estimators and
    max_samples, is outside its space)."""
    if params_rule is not None or name not in BASES_WITH_SPACES:
        return False
    return bool(set(params) & set(space(name, task)))


BASES_WITH_SPACES = ("hist_gradient_boosting", "lightgbm", "random_forest", "svm", "linear")


SCALE_ROWS = 50_000
"""Rows up to which the boosting families' nominal figure (BOOST_ROW_S) was calibrated: the bundled
data sets, at most diamonds' 45,724 train + validation rows. Every plan on data of that size is priced
as before; only the rows past it are priced at the rate measured at scale (BOOST_SCALE_ROW_S)."""
BOOST_ROW_S = 1e-5
"""Seconds per row x feature x class of a boosting fit at its defaults, its round search included,
on data of the bundled sets' sizes (set pessimistic on a busy 2-core machine)."""
BOOST_SCALE_ROW_S = 2e-6
"""...and per row x feature x class past SCALE_ROWS, where a fit's fixed costs (binning, the round
search's folds on few rows, thread start-up) no longer dominate and only the histogram passes grow with
the rows. Measured: LightGBM at its defaults (100 rounds, one thread, 20 features) took 3.3 s on 100,000
rows and 38.9 s on 1,000,000 (1.6e-6 and 1.9e-6 per row x feature; a shared 2-core AMD EPYC at load
7.9-8.3); HistGradientBoosting on one thread 4.1 s and 43.8 s (load 7.5). BOOST_ROW_S priced both
at 20 s and 200 s."""
FOREST_GROWN_ROW_S = 1.2e-5
FOREST_PASS_ROW_S = 1.5e-6
"""A forest whose trees are each grown on max_samples of more rows: seconds per grown row and tree,
and per row and tree for the passes over every row (the bootstrap's sample weights, the out-of-bag
predictions). Fitted to two measurements of 10 trees of 50,000 rows (n_jobs=-1, 20 features, the same
machine at load 6.9-8.2): 8.4 s on 100,000 rows and 22.1 s on 1,000,000. The rule for whole-row trees
(3e-6 a row and tree, calibrated on the bundled sets, which never sample) counted every row as grown:
10 trees of 50,000 of 247,500 rows at 8.4 s, of 3,000,000 rows at 91 s."""


def boosting_row_seconds(rows: int) -> float:
    """Nominal seconds per feature x class of a boosting fit at its defaults on `rows` rows: BOOST_ROW_S
    a row up to SCALE_ROWS, BOOST_SCALE_ROW_S a row past it (continuous and nondecreasing in the rows,
    as the sample's bisection needs)."""
    return BOOST_ROW_S * min(rows, SCALE_ROWS) + BOOST_SCALE_ROW_S * max(0, rows - SCALE_ROWS)


def sampled_forest_seconds(rows: int, trees: int, samples: int) -> float:
    """Nominal seconds of growing `trees` trees on `samples` (max_samples) of `rows` rows each, before
    the start-up cost and SEARCH_COST, by FOREST_GROWN_ROW_S and FOREST_PASS_ROW_S. Above the whole-row
    rule's 3e-6 a row and tree where the two meet (rows = samples), so the price stays nondecreasing."""
    return trees * (FOREST_GROWN_ROW_S * samples + FOREST_PASS_ROW_S * rows)


def nominal_fit_seconds(
    name: str,
    rows: int,
    features_out: int,
    classes: int | None,
    at_defaults: bool = False,
    trees: int | None = None,
    rounds: int | None = None,
    samples: int | None = None,
) -> float:
    """A pessimistic fit time on a busy 2-core machine, from counts alone (not measured here).

    Calibrated on the bundled datasets at the defaults, times SEARCH_COST for a configuration of
    the search space (larger ensembles, more features per split) unless `at_defaults` (the
    baselines' cross-validation fits the defaults): boosting grows one tree per class and
    iteration over rows x features histograms; the forest grows forest_size(rows) trees after a
    fixed start-up cost of its thread pool; `trees`: a forest of that many trees instead (one sized
    by its share of the budget, or a configuration's n_estimators); `rounds`: a LightGBM fit of
    that many rounds (found by its early-stopped search, or a configuration's n_estimators), priced
    per round by BOOST_ROUND_COST without the search the defaults' figure includes; `samples`: the
    rows each tree of a forest is grown on (max_samples) when fewer than `rows` (sampled_forest_seconds).
    Boosting's rows past SCALE_ROWS and sampled forests are priced at rates measured at scale
    (boosting_row_seconds, sampled_forest_seconds); on data of the bundled sets' sizes the rule is unchanged.
    """
    per_class = classes if classes and classes > 2 else 1
    factor = 1.0 if at_defaults else SEARCH_COST
    if name == "lightgbm" and rounds:
        return 0.2 + factor * BOOST_ROUND_COST * rows * max(features_out, 1) * per_class * rounds
    if name in ("hist_gradient_boosting", "lightgbm"):  # LightGBM: the same histogram algorithm
        if rows <= SCALE_ROWS:  # the calibrated figure, as it always was on data of this size
            return 0.2 + factor * BOOST_ROW_S * rows * max(features_out, 1) * per_class
        return 0.2 + factor * boosting_row_seconds(rows) * max(features_out, 1) * per_class
    if name == "catboost":
        # A fixed cost per iteration besides the histogram work (wine's 142 rows: 1.6-6.7 s for 1000
        # iterations), and multiclass grows with the classes (digits: 12 s a fit at 1000 iterations,
        # diamonds: 4-8 s; benchmarks/results/families_catboost.json, 2 busy cores).
        return 0.2 + factor * CATBOOST_ITERATIONS * (5e-3 + 1e-8 * rows * max(features_out, 1) * per_class)
    if name == "random_forest":
        trees = trees or forest_size(rows)
        if samples is None or samples >= rows:  # whole-row trees: the calibrated figure
            return 1.0 + factor * 3e-4 * rows * trees / 100
        return 1.0 + factor * sampled_forest_seconds(rows, trees, samples)
    if name == "svm":  # the kernel solver's work grows with rows^2; one fit per calibration fold + 1
        return 0.1 + SVM_FIT_COST * (CALIBRATION_FOLDS + 1) * rows**2 * max(features_out, 1)
    return 0.05 + 1e-6 * rows * max(features_out, 1) * per_class


def plan_trials(
    name: str, rows: int, features_out: int, classes: int | None, budget: float, scale: int = 1
) -> TrialPlan:
    """Trials = the planned share of the budget over (folds x nominal fit), within [0, MAX_TRIALS].

    `scale` (a cluster's nodes, by the executor's rule) buys that many machines' worth of trials:
    the share and the ceiling both grow by it; 1 is one machine.
    """
    fold_rows = max(1, rows * (FOLDS - 1) // FOLDS)
    fit = nominal_fit_seconds(name, fold_rows, features_out, classes)
    share = TUNE_SHARE * budget * scale
    ceiling = MAX_TRIALS * scale
    trials = min(ceiling, math.floor(share / (FOLDS * fit)))
    rule = (
        f"{TUNE_SHARE:.0%} of the {budget:g} s budget"
        + (f" x {scale} nodes" if scale > 1 else "")
        + f" = {share:.1f} s over {FOLDS} folds x "
        f"{fit:.2f} s nominal per fit ({fold_rows} rows, {features_out} features) -> "
        f"{trials} trials (at most {ceiling}; fewer than {MIN_TRIALS} is no search)"
    )
    return TrialPlan(
        name=name, trials=max(trials, 0), nominal_fit_seconds=round(fit, 4), share_seconds=share, rule=rule
    )


def candidate_params(name: str, task: str, trials: int, seed: int) -> list[dict[str, Any]]:
    """Trial 0 is the defaults ({}); the rest are drawn by ParameterSampler(seed)."""
    if trials <= 1:
        return [{}][:trials]
    sampled = ParameterSampler(space(name, task), n_iter=trials - 1, random_state=seed)
    return [{}] + [{k: _plain(v) for k, v in p.items()} for p in sampled]


def _plain(value: Any) -> Any:
    """JSON-safe Python values (ParameterSampler gives numpy floats)."""
    if isinstance(value, np.generic):
        value = value.item()
    return round(value, 6) if isinstance(value, float) else value


def _folds(task: str, y: np.ndarray, seed: int):
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= FOLDS:
            return StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return KFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)))


class TrialSpec(BaseModel):
    """One configuration to cross-validate: everything a worker needs besides the data."""

    index: int
    name: str
    params: dict[str, Any]
    input_schema: InputSchema
    metric: str
    seed: int
    balanced: bool = False
    log_target: bool = False


def run_trial(spec: TrialSpec, train: tuple[pd.DataFrame, np.ndarray]) -> Trial:
    """Cross-validate one configuration on the training split (a plain single-process fit per fold).

    The folds come from the seed alone, so every attempt of a trial, anywhere, scores the same rows.
    """
    frame, y = train
    began = time.perf_counter()
    fold_scores: list[float] = []
    error = None
    try:
        for fit_rows, score_rows in _folds(spec.input_schema.task, y, spec.seed):
            pipeline = make_pipeline(
                spec.name,
                spec.input_schema,
                spec.seed,
                rows=len(y),
                balanced=spec.balanced,
                params=spec.params,
                log_target=spec.log_target,
            )
            fit(pipeline, frame.iloc[fit_rows], y[fit_rows])
            scores = predict_scores(pipeline, frame.iloc[score_rows])
            fold_scores.append(score(spec.metric, y[score_rows], scores))
    except Exception as exc:  # a configuration that cannot fit this data is a failed trial
        error = f"{type(exc).__name__}: {exc}"
    return Trial(
        index=spec.index,
        params=spec.params,
        cv_score=round(float(np.mean(fold_scores)), 6) if error is None else None,
        fold_scores=[round(s, 6) for s in fold_scores],
        seconds=round(time.perf_counter() - began, 3),
        error=error,
    )


def tune(
    name: str,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    metric: str,
    seed: int,
    plan: TrialPlan,
    balanced: bool = False,
    log_target: bool = False,
    time_limit: float | None = None,
    map_fn: MapFn = sequential_map,
) -> TuningResult:
    """Cross-validate each planned configuration on the training split; stop early only at time_limit.

    `map_fn` decides where the trials run (here by default, or as cluster tasks); trial 0, the
    defaults, always runs.
    """
    started = time.perf_counter()
    specs = [
        TrialSpec(
            index=i,
            name=name,
            params=p,
            input_schema=schema,
            metric=metric,
            seed=seed,
            balanced=balanced,
            log_target=log_target,
        )
        for i, p in enumerate(candidate_params(name, schema.task, plan.trials, seed))
    ]
    results = map_fn(run_trial, specs, train, label=f"trials of {name}", time_limit=time_limit, keep_first=1)
    trials = [t for t in results if t is not None]
    cap_hit = len(trials) < len(specs)  # the rest would have ended past the limit
    scored = [t for t in trials if t.cv_score is not None]
    best = max(scored, key=lambda t: sign(metric) * t.cv_score) if scored else trials[0]  # first wins ties
    return TuningResult(
        name=name,
        metric=metric,
        folds=FOLDS,
        trials_planned=plan.trials,
        trials_run=len(trials),
        cap_hit=cap_hit,
        seconds=round(time.perf_counter() - started, 3),
        default_cv_score=trials[0].cv_score if trials else None,
        best_index=best.index,
        best_params=best.params,
        best_cv_score=best.cv_score,
        trials=trials,
    )
