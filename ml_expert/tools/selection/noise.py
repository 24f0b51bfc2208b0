"""When a more complex candidate has really won: a margin derived from the noise of the comparison.

One rule for every escalation (a network, an ensemble, a tuned model, class weights, a log-scale
target, a tuned threshold): the candidate replaces the simpler incumbent only when its advantage
on held-out rows is more than NOISE_Z standard errors of the paired difference. The two are scored
on the same rows, so the noise is that of the difference, not of each score:

- k-fold cross-validation (small data): the standard error of the k paired fold differences,
  std(d, ddof=1) / sqrt(k);
- one validation split (large data, or a network trained on train only): the bootstrap standard
  error of the difference over the validation rows (BOOTSTRAP resamples, seeded).

A difference inside the margin is a tie, and ties go to the simpler model.
"""

from __future__ import annotations

import numpy as np

from ml_expert.tools.scoring import score, sign
from ml_expert.tools.selection.verdicts import Escalation

NOISE_Z = 2.0  # ~ a one-sided 97.5 % normal bound; with 5 folds, about Student's t 95 % one-sided
BOOTSTRAP = 200

__all__ = ["BOOTSTRAP", "NOISE_Z", "Escalation", "escalation", "fold_scores"]


def fold_scores(
    metric: str,
    y: np.ndarray,
    scores: np.ndarray,
    folds: np.ndarray,
    threshold: float | np.ndarray | None = None,
) -> list[float]:
    """The metric on each fold's held-out rows (`folds`: the fold index of every row)."""
    out = []
    for k in np.unique(folds):
        rows = folds == k
        cut = threshold[rows] if isinstance(threshold, np.ndarray) else threshold
        out.append(score(metric, y[rows], scores[rows], cut))
    return out


def escalation(
    metric: str,
    y: np.ndarray,
    simple_scores: np.ndarray,
    candidate_scores: np.ndarray,
    folds: np.ndarray | None = None,
    seed: int = 0,
    simple_threshold: float | np.ndarray | None = None,
    candidate_threshold: float | np.ndarray | None = None,
    simple: str = "simple",
    candidate: str = "candidate",
    rows_name: str = "validation",
) -> Escalation:
    """Whether `candidate` beats `simple` by more than the noise, on the same held-out rows.

    `*_scores`: held-out predictions (probabilities [N, K] or values [N]) of each model for the
    rows `y`: out-of-fold predictions with `folds` given, else validation predictions.
    """
    y = np.asarray(y)
    s = sign(metric)
    if folds is not None:
        a = fold_scores(metric, y, simple_scores, folds, simple_threshold)
        b = fold_scores(metric, y, candidate_scores, folds, candidate_threshold)
        diffs = s * (np.asarray(b) - np.asarray(a))
        k = len(diffs)
        simple_score, candidate_score = float(np.mean(a)), float(np.mean(b))
        se = float(np.std(diffs, ddof=1) / np.sqrt(k)) if k > 1 else float("inf")
        scheme = f"{k}-fold CV"
        how = f"standard error of the {k} paired fold differences"
    else:
        simple_score = score(metric, y, simple_scores, simple_threshold)
        candidate_score = score(metric, y, candidate_scores, candidate_threshold)
        rng = np.random.default_rng(seed)
        n = len(y)
        draws = []
        for _ in range(BOOTSTRAP):
            rows = rng.integers(0, n, n)
            draws.append(
                score(metric, y[rows], candidate_scores[rows], _take(candidate_threshold, rows))
                - score(metric, y[rows], simple_scores[rows], _take(simple_threshold, rows))
            )
        se = float(np.std(draws, ddof=1))
        scheme = f"bootstrap over {n} {rows_name} rows"
        how = f"bootstrap ({BOOTSTRAP} resamples) standard error of the paired difference"
    gain = s * (candidate_score - simple_score)
    margin = NOISE_Z * se
    wins = bool(gain > 0 and gain > margin)
    rule = (
        f"{candidate} {metric} {candidate_score:.4f} vs {simple} {simple_score:.4f} ({scheme}): "
        f"gain {gain:+.4f} {'>' if wins else '<='} margin {margin:.4f} = {NOISE_Z:g} x {how} ({se:.4f})"
    )
    return Escalation(
        metric=metric,
        simple=simple,
        candidate=candidate,
        scheme=scheme,
        simple_score=round(simple_score, 6),
        candidate_score=round(candidate_score, 6),
        gain=round(gain, 6),
        standard_error=round(se, 6),
        margin=round(margin, 6),
        wins=wins,
        rule=rule,
    )


def _take(threshold: float | np.ndarray | None, rows: np.ndarray) -> float | np.ndarray | None:
    return threshold[rows] if isinstance(threshold, np.ndarray) else threshold
