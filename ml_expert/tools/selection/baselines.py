"""Fit each simple baseline on train, score it on validation, keep the leaderboard."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from ml_expert.hashing import sha256_file
from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.mapping import MapFn, sequential_map
from ml_expert.tools.scoring import predict_scores, score
from ml_expert.tools.selection.candidates import BASELINES, make_pipeline

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
    base: str | None = None  # the baseline a tuned candidate was searched from
    params: dict[str, Any] = {}  # its model hyperparameters over the baseline's defaults


def balanced_weights(metric: str) -> bool:
    """Weight classes when the model is ranked by balanced accuracy (the imbalanced case)."""
    return metric == "balanced_accuracy"


def fit(pipeline: Any, frame: pd.DataFrame, target: np.ndarray) -> float:
    """Fit and return the seconds it took.

    Small data: one OpenMP thread. Many threads on a few busy cores spin-wait and turn a 0.1 s
    histogram-boosting fit into 8 s; the model is the same either way.
    """
    started = time.perf_counter()
    with threadpool_limits(limits=1 if len(target) < SMALL_DATA_ROWS else None):
        pipeline.fit(frame, target)
    return time.perf_counter() - started


def training_score(pipeline: Any, train: tuple[pd.DataFrame, np.ndarray], metric: str) -> tuple[float, str]:
    """The score on the training rows, out-of-bag for a bagged forest.

    A full-depth random forest reproduces its own training rows (in-sample R² near 1 on noisy
    data), so train minus validation would flag it as overfit however well it generalises; each
    row's out-of-bag prediction comes from the trees that never saw it. Rows no tree left out
    (rare) are skipped.
    """
    model = pipeline.named_steps.get("model") if hasattr(pipeline, "named_steps") else None
    oob = getattr(model, "oob_decision_function_", None)
    if oob is None:
        oob = getattr(model, "oob_prediction_", None)
    if oob is not None:
        oob = np.asarray(oob, dtype=float)
        seen = ~np.isnan(oob).reshape(len(oob), -1).any(axis=1)
        if seen.sum() >= 0.5 * len(seen):
            return score(metric, train[1][seen], oob[seen]), "out-of-bag"
    return score(metric, train[1], predict_scores(pipeline, train[0])), "in-sample"


class CandidateSpec(BaseModel):
    """One configuration to fit on train and score on validation: all a worker needs besides the data."""

    base: str
    name: str
    input_schema: InputSchema
    metric: str
    seed: int
    params: dict[str, Any] = {}


def train_candidate(
    spec: CandidateSpec, splits: tuple[tuple[pd.DataFrame, np.ndarray], tuple[pd.DataFrame, np.ndarray]]
) -> tuple[Any, CandidateResult]:
    """Fit on train and score on validation; the fitted pipeline comes back to be saved by the caller
    (a worker on another machine has no access to the run directory)."""
    train, val = splits
    pipeline = make_pipeline(
        spec.base,
        spec.input_schema,
        spec.seed,
        rows=len(train[1]),
        balanced=balanced_weights(spec.metric),
        params=spec.params or None,
    )
    fit_seconds = fit(pipeline, *train)
    val_score = score(spec.metric, val[1], predict_scores(pipeline, val[0]))
    train_score, kind = training_score(pipeline, train, spec.metric)
    return pipeline, CandidateResult(
        name=spec.name,
        family=BASELINES[spec.base][1],
        kind="sklearn",
        val_score=round(val_score, 6),
        train_score=round(train_score, 6),
        train_score_kind=kind,
        fit_seconds=round(fit_seconds, 3),
        base=spec.base if spec.params else None,
        params=dict(spec.params),
    )


def save_candidate(pipeline: Any, result: CandidateResult, models_dir: Path) -> CandidateResult:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{result.name}.joblib"
    joblib.dump(pipeline, path)
    return result.model_copy(update={"path": str(path), "sha256": sha256_file(path)})


def run_baselines(
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    metric: str,
    seed: int,
    models_dir: Path,
    names: tuple[str, ...] = tuple(BASELINES),
    map_fn: MapFn = sequential_map,
) -> list[CandidateResult]:
    """`map_fn` decides where the fits run (here by default, or as cluster tasks)."""
    specs = [CandidateSpec(base=n, name=n, input_schema=schema, metric=metric, seed=seed) for n in names]
    fitted = map_fn(train_candidate, specs, (train, val), label="baselines")
    return [save_candidate(pipeline, result, models_dir) for pipeline, result in fitted]


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
) -> CandidateResult:
    """Fit one configuration on train, score it on validation, save it with its hash."""
    spec = CandidateSpec(
        base=base, name=name or base, input_schema=schema, metric=metric, seed=seed, params=dict(params or {})
    )
    return save_candidate(*train_candidate(spec, (train, val)), models_dir)


def refit_on_train_and_val(
    name: str,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    models_dir: Path,
    metric: str = "accuracy",
    base: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, object]:
    """Fit the chosen family again on train + validation: more rows for the model that ships.

    Only after the choice was made on the held-out validation split; from here on its validation
    figures describe the train-only fit, not this model (the caller records that).
    """
    frame = pd.concat([train[0], val[0]], ignore_index=True)
    target = np.concatenate([train[1], val[1]])
    # same configuration as the model that was measured (sized by the training rows)
    pipeline = make_pipeline(
        base or name, schema, seed, rows=len(train[1]), balanced=balanced_weights(metric), params=params
    )
    fit_seconds = fit(pipeline, frame, target)
    path = models_dir / f"{name}_train_val.joblib"
    joblib.dump(pipeline, path)
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "rows": int(len(target)),
        "fit_seconds": round(fit_seconds, 3),
    }
