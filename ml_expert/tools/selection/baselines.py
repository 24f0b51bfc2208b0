"""Fit each simple baseline on train, score it on validation, keep the leaderboard."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.compose import TransformedTargetRegressor
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ml_expert.errors import IntegrityError
from ml_expert.hashing import sha256_file, verify
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.mapping import MapFn, sequential_map
from ml_expert.tools.scoring import predict_scores, score, sign
from ml_expert.tools.selection.boosting import catboost_iterations, early_stopped_rounds
from ml_expert.tools.selection.candidates import BASELINES, CORE_BASELINES, inner_pipeline, make_pipeline
from ml_expert.tools.selection.ensemble import EnsembleMember
from ml_expert.tools.selection.longfit import (
    FitCap,
    capped,
    nominal_candidate_seconds,
    plan_cap,
    refit_cap,
    selection_ends_at,
)
from ml_expert.tools.selection.verdicts import StoppedFit

SMALL_DATA_ROWS = 20_000


class CandidateResult(BaseModel):
    name: str
    family: str
    kind: str  # "sklearn" or "keras"
    val_score: float
    train_score: float
    train_score_kind: str = "in-sample"  # or "out-of-bag" (random forest)
    fit_seconds: float
    path: str | None = None
    sha256: str | None = None
    base: str | None = None  # the baseline family a variant (tuned, weighted, log-scale) comes from
    params: dict[str, Any] = {}  # its model hyperparameters over the baseline's defaults
    balanced: bool = False  # classes weighted inversely to their frequency
    log_target: bool = False  # the regressor learns log1p(target)
    threshold: float | None = None  # binary: the cut-off on P(class 1), tuned on held-out predictions
    cv_mean: float | None = None  # mean of the k fold scores on train + validation (small data)
    cv_std: float | None = None
    cv_folds: list[float] = []
    val_predictions: str | None = None  # .npy of its validation predictions (fit on train only)
    heldout_predictions: str | None = None  # .npy of its out-of-fold predictions on train + validation
    members: list[EnsembleMember] = []  # an ensemble's members and weights (tools/selection/ensemble.py)
    params_rule: str | None = None  # how params the data chose were chosen (LightGBM's rounds)
    refit_rule: str | None = None  # set: ships as fit on train, not refit on train + validation (why)
    # the nominal cost of its refit on train + validation where its family's rule cannot price it (an
    # ensemble: its members' refits, ensemble_candidate.refit_prices); longfit.refit_cap reads it
    refit_nominal_seconds: float | None = None
    predictions_sha256: dict[str, str] = {}  # .npy path -> SHA-256, checked before every read
    # classification: log-loss of the held-out predictions it is ranked on (out-of-fold on small
    # data, else validation); breaks exact ties of the metric between baselines (best_baseline)
    tie_log_loss: float | None = None
    fit_rows: int | None = None  # training rows it was fit on (fewer than the split's: a sample)

    @property
    def selection_score(self) -> float:
        """The score candidates are ranked by: the CV mean on small data, else validation."""
        return self.cv_mean if self.cv_mean is not None else self.val_score

    def held_out(self, cross_validated: bool) -> np.ndarray:
        """Its out-of-fold predictions (cross-validated comparisons) or its validation predictions,
        hash-checked."""
        path = self.heldout_predictions if cross_validated else self.val_predictions
        return read_predictions(str(path), self.predictions_sha256)

    def settings(self) -> dict[str, Any]:
        """What make_pipeline needs to rebuild this candidate."""
        return {
            "params": dict(self.params),
            "balanced": self.balanced,
            "log_target": self.log_target,
            "threshold": self.threshold,
            "members": list(self.members),
        }


def read_predictions(path: str, hashes: dict[str, str]) -> np.ndarray:
    """A candidate's saved predictions, once their SHA-256 matches the one recorded when they were
    written: a changed file would silently move a comparison, a threshold or an ensemble weight."""
    digest = hashes.get(path)
    if digest is None:
        raise IntegrityError(f"{path}: no SHA-256 was recorded for these predictions; refusing to read them")
    verify(path, digest)
    return np.load(path, allow_pickle=False)


def save_predictions(path: Path, values: np.ndarray) -> tuple[str, str]:
    """Write predictions and return (path, SHA-256) for the candidate's record."""
    np.save(path, values)
    return str(path), sha256_file(path)


def best_baseline(board: list[CandidateResult], metric: str) -> CandidateResult:
    """The best non-dummy candidate by the metric (CV mean on small data, else validation).

    An exact tie of the metric goes to the lower held-out log-loss (classification): accuracy and
    its kin are step functions that tie often on a few hundred rows (on digits a kernel SVM tied a
    forest at 212 of 216 validation rows), and log-loss, a proper score on the same rows, tells the
    tied models apart by how sure they were of the right class. `board` lists the simplest first
    and max() keeps the first of equal keys: any tie left goes to the simpler model."""

    def key(c: CandidateResult) -> tuple[float, float]:
        return sign(metric) * c.selection_score, -c.tie_log_loss if c.tie_log_loss is not None else 0.0

    return max((c for c in board if c.name != "dummy"), key=key)


def tied_with(best: CandidateResult, board: list[CandidateResult]) -> list[CandidateResult]:
    """The other baselines whose metric equals the best one's exactly (the log-loss chose)."""
    return [
        c for c in board if c.name not in ("dummy", best.name) and c.selection_score == best.selection_score
    ]


def fit(pipeline: Any, frame: pd.DataFrame, target: np.ndarray) -> float:
    """Fit and return the seconds it took.

    Small data: one OpenMP thread. Many threads on a few busy cores spin-wait and turn a 0.1 s
    histogram-boosting fit into 8 s; the model is the same either way.
    """
    started = time.perf_counter()
    with threadpool_limits(limits=1 if len(target) < SMALL_DATA_ROWS else None):
        pipeline.fit(frame, target)
    return time.perf_counter() - started


def training_score(
    pipeline: Any, train: tuple[pd.DataFrame, np.ndarray], metric: str, threshold: float | None = None
) -> tuple[float, str]:
    """The score on the training rows, out-of-bag for a bagged forest.

    A full-depth random forest reproduces its own training rows (in-sample R² near 1 on noisy
    data), so train minus validation would flag it as overfit however well it generalises; each
    row's out-of-bag prediction comes from the trees that never saw it. Rows no tree left out
    (rare) are skipped. A log-scale forest's out-of-bag predictions are mapped back by expm1.
    """
    inner = inner_pipeline(pipeline)
    model = inner.named_steps.get("model") if hasattr(inner, "named_steps") else None
    log_scale = isinstance(model, TransformedTargetRegressor)
    if log_scale:
        model = model.regressor_
    oob = getattr(model, "oob_decision_function_", None)
    if oob is None:
        oob = getattr(model, "oob_prediction_", None)
    if oob is not None:
        oob = np.asarray(oob, dtype=float)
        seen = ~np.isnan(oob).reshape(len(oob), -1).any(axis=1)
        if log_scale:
            oob = np.expm1(oob)
        if seen.sum() >= 0.5 * len(seen):
            return score(metric, train[1][seen], oob[seen], threshold), "out-of-bag"
    return score(metric, train[1], predict_scores(pipeline, train[0]), threshold), "in-sample"


def forest_params(budget: float, rows: int, n_features: int, task: str) -> dict[str, Any]:
    """The forest's size by the nominal cost rule, when it differs from the data-only size."""
    from ml_expert.tools.selection.budget import plan_forest
    from ml_expert.tools.selection.candidates import forest_limits, forest_size

    trees, samples = forest_size(rows), forest_limits(rows).get("max_samples")
    plan = plan_forest(budget, rows, n_features, task == "classification", trees, samples)
    out: dict[str, Any] = {}
    if plan.n_estimators != trees:
        out["n_estimators"] = plan.n_estimators
    if plan.max_samples != samples:
        out["max_samples"] = plan.max_samples
    return out


def sized_params(
    base: str, params: dict[str, Any] | None, budget: float | None, rows: int, schema: InputSchema
) -> dict[str, Any]:
    """The configuration's params, with a random forest sized by its share of the budget."""
    if base == "random_forest" and budget is not None:
        return {**forest_params(budget, rows, len(schema.keys), schema.task), **(params or {})}
    return dict(params or {})


def run_baselines(
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    metric: str,
    seed: int,
    models_dir: Path,
    names: tuple[str, ...] = CORE_BASELINES,
    folds: np.ndarray | None = None,
    budget: float | None = None,
    map_fn: MapFn = sequential_map,
    ends_at: float | None = None,
    features_out: int | None = None,
    stopped: list[StoppedFit] | None = None,
) -> list[CandidateResult]:
    """`budget`: the forest is sized to its share of it (budget.plan_forest), and a candidate long
    for it by the nominal rule runs where it can be stopped when the budget runs out (`ends_at`,
    Unix time; by default the budget from now, less the reserve): see tools/selection/longfit.py.
    The candidates it stopped are appended to `stopped` and left off the returned leaderboard.
    None: sized by data alone, never stopped. `map_fn` decides where the fits run (here by
    default, or as cluster tasks)."""
    if budget is not None and ends_at is None:
        ends_at = selection_ends_at(budget, 0.0)
    specs = []
    for n in names:
        params = sized_params(n, None, budget, len(train[1]), schema)
        spec = CandidateSpec(
            base=n, name=n, input_schema=schema, metric=metric, seed=seed, params=params, budget=budget
        )
        spec.cap = _cap(spec, budget, ends_at, len(train[1]), features_out, folds)
        specs.append(spec)
    fitted = map_fn(train_capped, specs, (train, val, folds), label="baselines")
    board = []
    for f in fitted:
        if isinstance(f, StoppedFit):
            if stopped is not None:
                stopped.append(f)
        else:
            board.append(save_candidate(f, models_dir))
    return board


def _cap(
    spec: CandidateSpec,
    budget: float | None,
    ends_at: float | None,
    rows: int,
    features_out: int | None,
    folds: np.ndarray | None,
) -> FitCap | None:
    schema = spec.input_schema
    classes = (len(schema.classes or []) or None) if schema.task == "classification" else None
    return plan_cap(
        spec.base,
        budget,
        ends_at,
        rows,
        features_out or len(schema.keys),
        classes,
        spec.params,
        cv_rows=len(folds) if folds is not None else 0,
        folds=len(np.unique(folds)) if folds is not None else 0,
    )


def cross_val_predictions(
    base: str,
    schema: InputSchema,
    frame: pd.DataFrame,
    y: np.ndarray,
    folds: np.ndarray,
    seed: int,
    rows: int,
    settings: dict[str, Any],
) -> np.ndarray:
    """Out-of-fold predictions: each fold's rows predicted by the model fit on the other folds.

    The threshold is not applied here (probabilities come back): it is a cut on them."""
    settings = {**settings, "threshold": None}
    out: np.ndarray | None = None
    for k in np.unique(folds):
        held = folds == k
        pipeline = make_pipeline(base, schema, seed, rows=rows, **settings)
        fit(pipeline, frame[~held], y[~held])
        part = predict_scores(pipeline, frame[held])
        if out is None:
            out = np.zeros((len(y), *part.shape[1:]), dtype=np.float64)
        out[held] = part
    assert out is not None
    return out


class CandidateSpec(BaseModel):
    """One configuration to fit on train and score on validation: all a worker needs besides the data."""

    base: str
    name: str
    input_schema: InputSchema
    metric: str
    seed: int
    params: dict[str, Any] = {}
    balanced: bool = False
    log_target: bool = False
    budget: float | None = None  # caps searches inside the fit (LightGBM's rounds) by a count rule
    cap: FitCap | None = None  # set: a long fit, run in a child process stopped when the budget ends


def train_capped(
    spec: CandidateSpec,
    data: tuple[tuple[pd.DataFrame, np.ndarray], tuple[pd.DataFrame, np.ndarray], np.ndarray | None],
) -> FittedCandidate | StoppedFit:
    """train_candidate here, or, for a long fit (spec.cap), in a child process that is ended when
    what is left of the budget runs out (a StoppedFit then). Wherever it runs: here or a worker."""
    if spec.cap is None:
        return train_candidate(spec, data)
    return capped(train_candidate, spec, data, spec.cap, spec.name, spec.base)


@dataclass
class FittedCandidate:
    """What a fit sends back to be saved by the caller (a worker on another machine has no access to
    the run directory): the pipeline, its validation and out-of-fold predictions, the figures."""

    pipeline: Any
    result: CandidateResult
    val_pred: np.ndarray
    oof: np.ndarray | None


def train_candidate(
    spec: CandidateSpec,
    data: tuple[tuple[pd.DataFrame, np.ndarray], tuple[pd.DataFrame, np.ndarray], np.ndarray | None],
) -> FittedCandidate:
    """Fit one configuration on train, score it on validation (pure: writes nothing).

    `folds` (the third item; small data): also k-fold cross-validate it on train + validation
    (fold index per row, train rows first) and keep the out-of-fold predictions."""
    train, val, folds = data
    base, schema, metric, seed = spec.base, spec.input_schema, spec.metric, spec.seed
    params, params_rule = dict(spec.params), None
    if base == "lightgbm" and "n_estimators" not in params:
        steps = make_pipeline(base, schema, seed, rows=len(train[1])).steps[:-1]
        rounds = early_stopped_rounds(
            Pipeline(steps), schema, train, seed, spec.budget, spec.balanced, spec.log_target, params
        )
        params, params_rule = {**rounds.params, **params}, rounds.rule
    if base == "catboost" and "iterations" not in params:
        unfitted = make_pipeline(base, schema, seed, rows=len(train[1]), balanced=spec.balanced)
        rounds = catboost_iterations(
            inner_pipeline(unfitted), schema, train, seed, spec.balanced, spec.log_target
        )
        params, params_rule = {**rounds.params, **params}, rounds.rule
    settings = {"params": params or None, "balanced": spec.balanced, "log_target": spec.log_target}
    pipeline = make_pipeline(base, schema, seed, rows=len(train[1]), **settings)
    fit_seconds = fit(pipeline, *train)
    val_pred = predict_scores(pipeline, val[0])
    val_score = score(metric, val[1], val_pred)
    train_score, kind = training_score(pipeline, train, metric)
    cv: dict[str, Any] = {}
    oof = None
    if folds is not None:
        frame = pd.concat([train[0], val[0]], ignore_index=True)
        y = np.concatenate([train[1], val[1]])
        started = time.perf_counter()
        oof = cross_val_predictions(base, schema, frame, y, folds, seed, len(train[1]), settings)
        fit_seconds += time.perf_counter() - started
        per_fold = [score(metric, y[folds == k], oof[folds == k]) for k in np.unique(folds)]
        cv = {
            "cv_mean": round(float(np.mean(per_fold)), 6),
            "cv_std": round(float(np.std(per_fold, ddof=1)), 6),
            "cv_folds": [round(v, 6) for v in per_fold],
        }
    tie_log_loss = None  # classification: log-loss of the predictions it is ranked on (ties)
    if schema.task == "classification":
        held_y, held_pred = (
            (np.concatenate([train[1], val[1]]), oof) if oof is not None else (val[1], val_pred)
        )
        tie_log_loss = round(score("log_loss", held_y, held_pred), 6)
    result = CandidateResult(
        name=spec.name,
        family=BASELINES[base][1],
        kind="sklearn",
        val_score=round(val_score, 6),
        train_score=round(train_score, 6),
        train_score_kind=kind,
        fit_seconds=round(fit_seconds, 3),
        base=base if spec.name != base else None,
        params=params,
        params_rule=params_rule,
        balanced=spec.balanced,
        log_target=spec.log_target,
        tie_log_loss=tie_log_loss,
        fit_rows=len(train[1]),
        **cv,
    )
    return FittedCandidate(pipeline, result, val_pred, oof)


def save_candidate(fitted: FittedCandidate, models_dir: Path) -> CandidateResult:
    """Write the pipeline (with its hash) and its predictions into the run's models folder."""
    models_dir.mkdir(parents=True, exist_ok=True)
    name = fitted.result.name
    path = models_dir / f"{name}.joblib"
    joblib.dump(fitted.pipeline, path)
    val_path, val_sha = save_predictions(models_dir / f"{name}.val.npy", fitted.val_pred)
    update: dict[str, Any] = {"path": str(path), "sha256": sha256_file(path)}
    update["val_predictions"] = val_path
    hashes = {val_path: val_sha}
    if fitted.oof is not None:
        oof_path, oof_sha = save_predictions(models_dir / f"{name}.oof.npy", fitted.oof)
        update["heldout_predictions"] = oof_path
        hashes[oof_path] = oof_sha
    update["predictions_sha256"] = hashes
    return fitted.result.model_copy(update=update)


def fit_candidate(
    base: str,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    metric: str,
    seed: int,
    models_dir: Path,
    params: dict[str, Any] | None = None,
    name: str | None = None,
    balanced: bool = False,
    log_target: bool = False,
    folds: np.ndarray | None = None,
    budget: float | None = None,
    ends_at: float | None = None,
    features_out: int | None = None,
) -> CandidateResult | StoppedFit:
    """Fit one configuration on train, score it on validation, save it with its hash (here).

    `folds` (small data): also k-fold cross-validate it on train + validation (fold index per
    row, train rows first) and keep the out-of-fold predictions for paired comparisons.
    `budget`: a random forest gets its trees (and rows per tree) from its share of the budget;
    they are kept in `params`, so the refit and the cross-validation fit the same size. A fit
    long for the budget is stopped when it runs out (`ends_at`, as in run_baselines): a
    StoppedFit comes back instead of a candidate. No budget: never stopped."""
    if budget is not None and ends_at is None:
        ends_at = selection_ends_at(budget, 0.0)
    spec = CandidateSpec(
        base=base,
        name=name or base,
        input_schema=schema,
        metric=metric,
        seed=seed,
        params=sized_params(base, params, budget, len(train[1]), schema),
        balanced=balanced,
        log_target=log_target,
        budget=budget,
    )
    spec.cap = _cap(spec, budget, ends_at, len(train[1]), features_out, folds)
    fitted = train_capped(spec, (train, val, folds))
    return fitted if isinstance(fitted, StoppedFit) else save_candidate(fitted, models_dir)


def refit_on_train_and_val(
    name: str,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    models_dir: Path,
    base: str | None = None,
    settings: dict[str, Any] | None = None,
    bag: bool = False,
) -> dict[str, object]:
    """Fit the chosen family again on train + validation: more rows for the model that ships.

    Only after the choice was made on held-out rows; from here on its validation figures describe
    the train-only fit, not this model (the caller records that). A tuned threshold ships inside
    the model (FixedThresholdClassifier), so predict() applies it. `bag`: a bag of fold fits ships
    instead (fold_bag.py); refit_capped decides it (compared by CV, some part boosted, priced).
    """
    from ml_expert.tools.selection.fold_bag import fold_bag

    frame = pd.concat([train[0], val[0]], ignore_index=True)
    target = np.concatenate([train[1], val[1]])
    settings = settings or {}
    started = time.perf_counter()
    record: dict[str, object] = {"rows": int(len(target))}
    if bag:
        pipeline, record["bag"] = fold_bag(
            name, base or name, schema, frame, target, seed, len(train[1]), settings
        )
    else:
        # same configuration as the model that was measured (sized by the training rows)
        pipeline = make_pipeline(base or name, schema, seed, rows=len(train[1]), **settings)
        fit(pipeline, frame, target)
    record["fit_seconds"] = round(time.perf_counter() - started, 3)
    path = models_dir / f"{name}_train_val.joblib"
    joblib.dump(pipeline, path)
    return {**record, "path": str(path), "sha256": sha256_file(path)}


@dataclass
class RefitJob:
    """What the refit on train + validation needs besides the rows (picklable: it may run in a child).
    `bag`: compared by CV, so a bag of fold fits may ship (refit_capped decides, fold_bag.py)."""

    name: str
    input_schema: InputSchema
    seed: int
    models_dir: Path
    base: str | None = None
    settings: dict[str, Any] | None = None
    bag: bool = False


def _refit_job(job: RefitJob, data: tuple[tuple[pd.DataFrame, np.ndarray], tuple[pd.DataFrame, np.ndarray]]):
    return refit_on_train_and_val(
        job.name, job.input_schema, *data, job.seed, job.models_dir, job.base, job.settings, job.bag
    )


def refit_capped(
    job: RefitJob,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    budget: float | None,
    left_seconds: float,
    fit_seconds: float,
    features_out: int,
    classes: int | None,
    nominal_seconds: float | None = None,
) -> dict[str, object] | StoppedFit:
    """refit_on_train_and_val here, or, when the refit is long for the budget by the count rule
    (longfit.refit_cap), in a child process ended at its deadline: a StoppedFit then, and the
    train-only fit ships. `fit_seconds`: the chosen model's measured fit on the training rows;
    `nominal_seconds`: the refit's price when the candidate carries it (an ensemble). The fold
    bag (`job.bag`) is priced as k - 1 refits; long for the budget, one refit replaces it
    (fold_bag.priced_bag: it never runs where a cap could stop it), and `bag_skipped` says why."""
    from ml_expert.tools.selection.fold_bag import any_bagged, priced_bag

    rows = len(train[1]) + len(val[1])
    base = job.base or job.name
    params = (job.settings or {}).get("params")
    scaled = fit_seconds * rows / max(len(train[1]), 1)
    skipped = None
    # decided once here: a bag only where some part is boosted (a forest bag = one refit), and priced
    job = replace(job, bag=job.bag and any_bagged(base, job.settings or {}))
    if job.bag:
        single = nominal_seconds or nominal_candidate_seconds(base, rows, features_out, classes, params)
        price, skipped = priced_bag(single, budget)
        if skipped is None:
            nominal_seconds = price
        else:
            job = replace(job, bag=False)
    cap = refit_cap(base, budget, left_seconds, scaled, rows, features_out, classes, params, nominal_seconds)
    if cap is None:
        result = _refit_job(job, (train, val))
    else:
        result = capped(_refit_job, job, (train, val), cap, job.name, base)
    if skipped is not None and isinstance(result, dict):
        result["bag_skipped"] = skipped
    return result
