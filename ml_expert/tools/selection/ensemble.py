"""An ensemble of the candidates: greedy ensemble selection with replacement (Caruana et al., 2004),
as AutoGluon's WeightedEnsemble does, on held-out predictions.

Start from nothing; each round adds (again, if it helps most) the candidate whose addition gives
the best score of the averaged predictions; after ROUNDS rounds a candidate's weight is how often
it was picked. The model that ships is a weighted soft vote (classification: averaged class
probabilities) or a weighted average (regression) of the members' own pipelines.

The score of the selected weights on the rows they were selected on is optimistic, so the
ensemble is judged on predictions it was not selected on: `cross_fitted` selects the weights on
all folds but one and predicts the held-out fold with them, fold by fold. The caller compares
those predictions with the best single model's on the same rows by the noise-margin rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ml_expert.tools.selection.verdicts import Escalation, Figure

ROUNDS = 25  # AutoGluon's default ensemble size: weights in steps of 1/25
MIN_MEMBERS = 2  # fewer distinct members is not an ensemble

Scorer = Callable[[np.ndarray, np.ndarray], float]
"""scorer(y, predictions) -> a figure where greater is better (a loss negated)."""


class EnsembleMember(BaseModel):
    """One member of a shipped ensemble: what make_pipeline needs to rebuild it, and its weight."""

    name: str
    base: str
    weight: float
    params: dict[str, Any] = {}
    balanced: bool = False
    log_target: bool = False


class EnsembleSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str]  # the members with a weight > 0, in candidate order
    weights: list[float]  # their weights, summing to 1
    counts: list[int]  # how often each was picked
    rounds: int
    score: Figure  # on the rows it was selected on (optimistic)
    trace: list[Figure]  # the score after each round


class HeavyMember(BaseModel):
    """A member whose fitted size outweighs every other member's together, and whether it earned
    its place: the ensemble with it against the ensemble selected without it, by the margin rule."""

    model_config = ConfigDict(extra="forbid")

    name: str
    bytes: int  # its fitted pipeline on disk (joblib)
    others_bytes: int  # the other selected members together
    verdict: Escalation
    kept: bool


class EnsemblePlan(BaseModel):
    """What was tried and why: the pool, the selection metric, the weights (when any). Built by
    tools/selection/ensemble_candidate.py; kept in the selection result (`SelectionResult.ensemble`)."""

    model_config = ConfigDict(extra="forbid")

    pool: list[str]
    selection_metric: str
    selection_reason: str
    rounds: int
    selection: EnsembleSelection | None = None
    heavy: list[HeavyMember] = []
    built: bool
    reason: str


def greedy_selection(
    names: Sequence[str],
    predictions: Sequence[np.ndarray],
    y: np.ndarray,
    scorer: Scorer,
    rounds: int = ROUNDS,
) -> EnsembleSelection:
    """Caruana's selection with replacement. Ties go to the earlier candidate (pass them best first),
    so the first pick is the best single model and the result is a pure function of its inputs."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])
    counts = np.zeros(len(names), dtype=int)
    total = np.zeros_like(stacked[0])
    trace: list[float] = []
    for step in range(1, rounds + 1):
        scores = [scorer(y, (total + candidate) / step) for candidate in stacked]
        best = int(np.argmax(scores))  # first of equal scores
        counts[best] += 1
        total += stacked[best]
        trace.append(float(scores[best]))
    kept = [i for i in range(len(names)) if counts[i] > 0]
    return EnsembleSelection(
        names=[names[i] for i in kept],
        weights=[round(float(counts[i] / rounds), 6) for i in kept],
        counts=[int(counts[i]) for i in kept],
        rounds=rounds,
        score=trace[-1],
        trace=[round(t, 6) for t in trace],
    )


def blend(
    selection: EnsembleSelection, names: Sequence[str], predictions: Sequence[np.ndarray]
) -> np.ndarray:
    """The weighted average of the selected members' predictions."""
    by_name = dict(zip(names, predictions, strict=True))
    return sum(
        w * np.asarray(by_name[n], dtype=np.float64)
        for n, w in zip(selection.names, selection.weights, strict=True)
    )


def cross_fitted(
    names: Sequence[str],
    predictions: Sequence[np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    scorer: Scorer,
    rounds: int = ROUNDS,
) -> np.ndarray:
    """Held-out ensemble predictions: each fold's rows blended with weights selected on the others."""
    out = np.zeros_like(np.asarray(predictions[0], dtype=np.float64))
    for k in np.unique(folds):
        held, rest = folds == k, folds != k
        chosen = greedy_selection(names, [p[rest] for p in predictions], y[rest], scorer, rounds)
        out[held] = blend(chosen, names, [p[held] for p in predictions])
    return out


def make_ensemble(members: Sequence[tuple[str, object]], weights: Sequence[float], task: str):
    """The shipped estimator: a weighted soft vote (classification) or weighted average (regression)
    of the members' unfitted pipelines; `fit` fits each member on the rows it is given (the refit on
    train + validation), `predict_proba` / `predict` blend them with the selected weights."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    if task == "classification":
        return VotingClassifier(list(members), voting="soft", weights=list(weights))
    return VotingRegressor(list(members), weights=list(weights))
