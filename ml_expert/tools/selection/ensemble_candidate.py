"""The ensemble as one more candidate on the leaderboard, built from the others' held-out predictions.

No model is fit here: every candidate already left its held-out predictions on disk (out-of-fold
on train + validation on small data, validation otherwise) and its train-only pipeline. The
weights are chosen on those predictions (tools/selection/ensemble.py); the ensemble's own held-out
predictions are cross-fitted (weights chosen without the rows they predict), so the caller can
compare it with the best single model by the same noise-margin rule as every escalation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from ml_expert.hashing import sha256_file, verify
from ml_expert.tools.scoring import predict_scores, score, sign
from ml_expert.tools.selection.baselines import CandidateResult, save_predictions
from ml_expert.tools.selection.crossval import fold_ids
from ml_expert.tools.selection.ensemble import (
    MIN_MEMBERS,
    ROUNDS,
    EnsembleMember,
    EnsemblePlan,
    EnsembleSelection,
    HeavyMember,
    Scorer,
    blend,
    cross_fitted,
    greedy_selection,
    make_ensemble,
)
from ml_expert.tools.selection.longfit import LONG_FIT_SHARE
from ml_expert.tools.selection.noise import escalation

ENSEMBLE = "ensemble"
SELECTION_LOSS = "log_loss"
REFIT_SHARE = LONG_FIT_SHARE  # of the budget: over it, the members' refit is a long fit (longfit.py)
# Deployment (export, reload, parity, latency of each format, the package) by the size of the fitted
# model: measured on diamonds (2-core AMD EPYC, load 3.7), an ensemble holding a 107 MB forest spent 74 s
# more outside the budget than LightGBM alone (1.3 MB): 0.69 s per MB.
DEPLOY_SECONDS_PER_MB = 0.7


def skipped_plan(task: str, metric: str, reason: str) -> EnsemblePlan:
    """The plan of an ensemble step that did not run (a cap fired before it), with why."""
    chosen_by, why = selection_metric(task, metric)
    return EnsemblePlan(
        pool=[], selection_metric=chosen_by, selection_reason=why, rounds=ROUNDS, built=False, reason=reason
    )


def selection_metric(task: str, metric: str) -> tuple[str, str]:
    """Classification: weights chosen by log-loss; regression: by the user's metric.

    Accuracy-like metrics are step functions of the blended probabilities: from one model, adding
    a second moves no argmax until it outweighs the first, so a greedy search on them stays where
    it started. Log-loss is smooth and proper; the user's metric still decides (the margin rule).
    """
    if task == "classification" and metric != SELECTION_LOSS:
        return SELECTION_LOSS, (
            f"weights chosen by log-loss, a smooth proper score ({metric} is a step function of the "
            f"blend, on which greedy selection cannot move off its first pick); {metric} then decides"
        )
    return metric, f"weights chosen by {metric}, the metric that ranks the candidates"


def ensemble_candidate(
    leaderboard: Sequence[CandidateResult],
    task: str,
    metric: str,
    y_held: np.ndarray,
    cv: bool,
    train: tuple[pd.DataFrame, np.ndarray],
    val: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    models_dir: Path,
    folds: np.ndarray | None = None,
    rounds: int = ROUNDS,
    budget: float | None = None,
    features_out: int = 1,
    classes: int | None = None,
) -> tuple[CandidateResult | None, EnsemblePlan]:
    """A weighted ensemble of the leaderboard's fitted candidates, or None with the reason.

    `cv`: held-out predictions are out-of-fold on train + validation (`folds` their fold ids, `y_held`
    their targets); otherwise they are the validation predictions (`y_held` = validation targets).
    """
    pool = [
        c
        for c in leaderboard
        if c.kind == "sklearn"
        and c.family not in ("dummy", ENSEMBLE)
        and c.threshold is None  # its probabilities are its base's: the same member twice
        and (c.heldout_predictions if cv else c.val_predictions)
    ]
    pool.sort(key=lambda c: -sign(metric) * c.selection_score)  # best first: ties go to it
    chosen_by, why = selection_metric(task, metric)
    plan = EnsemblePlan(
        pool=[c.name for c in pool],
        selection_metric=chosen_by,
        selection_reason=why,
        rounds=rounds,
        built=False,
        reason="",
    )
    if len(pool) < MIN_MEMBERS:
        plan.reason = f"{len(pool)} candidate(s) with held-out predictions: nothing to combine"
        return None, plan

    def scorer(y: np.ndarray, predictions: np.ndarray) -> float:
        if predictions.ndim == 2:  # float32 members' rows sum to 1 +- 1e-7: exactly 1 for log-loss
            predictions = predictions / predictions.sum(axis=1, keepdims=True)
        return sign(chosen_by) * score(chosen_by, y, predictions)

    models_dir.mkdir(parents=True, exist_ok=True)
    if folds is None:
        folds = fold_ids(task, y_held, seed)
    held_out = {c.name: c.held_out(cv) for c in pool}  # read (and hash-checked) once
    selection = greedy_selection(list(held_out), list(held_out.values()), y_held, scorer, rounds)
    pool, selection = earned_weight(
        pool, held_out, selection, plan, metric, y_held, folds, cv, seed, scorer, rounds, budget
    )
    names = [c.name for c in pool]
    held = [held_out[n] for n in names]
    plan.selection = selection
    dropped = "".join(f"; {h.name} left out: {h.verdict.rule}" for h in plan.heavy if not h.kept)
    if len(selection.names) < MIN_MEMBERS:
        plan.reason = (
            f"greedy selection ({rounds} rounds, {chosen_by}) kept {selection.names[0]} alone{dropped}"
        )
        return None, plan
    refit_price = refit_cost = None
    if budget is not None:  # the refit on train + validation fits every member: a count rule
        rows = len(train[1]) + len(val[1])
        pooled = {c.name: c for c in pool}
        prices = refit_prices(
            [pooled[n] for n in selection.names], task, rows, len(train[1]), features_out, classes
        )
        cost = sum(prices.values())
        refit_cost = round(cost, 3)
        priced = (
            f"refitting its {len(selection.names)} members on {rows} rows costs {cost:.1f} s by the "
            f"nominal rule ({', '.join(f'{n} {s:.1f} s' for n, s in prices.items())})"
        )
        if cost <= REFIT_SHARE * budget:
            refit_price = f"{priced} <= {REFIT_SHARE:.0%} of the {budget:g} s budget: it is refit"
        else:
            over = f"{priced}, more than {REFIT_SHARE:.0%} of the {budget:g} s budget"
            if cv:  # judged by cross-validation, i.e. as members refit on more rows: it must be refit
                plan.reason = over
                return None, plan
            # judged on the validation split as its members' train-only fits: the refit may add rows,
            # and the cap every long refit runs under (longfit.refit_cap) keeps it to its time
            refit_price = (
                f"{over}: its refit runs under the long-fit cap (longfit.refit_cap: in a child process "
                "stopped at its deadline); stopped, it ships as fit on the training split, as it was judged"
            )
    honest = cross_fitted(names, held, y_held, folds, scorer, rounds)
    by_name = {c.name: c for c in pool}
    members = [by_name[n] for n in selection.names]
    fitted = []
    for c in members:
        verify(c.path, c.sha256)
        fitted.append((c.name, joblib.load(c.path)))
    model = prefit_ensemble(fitted, selection.weights, task)
    val_blend = blend(selection, names, [c.held_out(False) for c in pool])
    path = models_dir / f"{ENSEMBLE}.joblib"
    joblib.dump(model, path)
    val_path = models_dir / f"{ENSEMBLE}.val.npy"
    extra: dict[str, object] = {}
    hashes: dict[str, str] = {}
    if cv:
        hashes.update([save_predictions(val_path, val_blend)])
        oof_path = models_dir / f"{ENSEMBLE}.oof.npy"
        hashes.update([save_predictions(oof_path, honest)])
        per_fold = [score(metric, y_held[folds == k], honest[folds == k]) for k in np.unique(folds)]
        extra = {
            "cv_mean": round(float(np.mean(per_fold)), 6),
            "cv_std": round(float(np.std(per_fold, ddof=1)), 6),
            "cv_folds": [round(v, 6) for v in per_fold],
            "heldout_predictions": str(oof_path),
        }
        val_score = score(metric, val[1], val_blend)
    else:  # the validation rows chose the weights: only the cross-fitted blend scores them fairly
        hashes.update([save_predictions(val_path, honest)])
        val_score = score(metric, val[1], honest)
    train_blend = sum(
        w * training_predictions(m, train[0]) for (_, m), w in zip(fitted, selection.weights, strict=True)
    )
    plan.built = True
    plan.reason = (
        f"greedy selection with replacement ({rounds} rounds, {chosen_by}) over {len(pool)} candidates: "
        + ", ".join(f"{n} {w:.2f}" for n, w in zip(selection.names, selection.weights, strict=True))
        + (f"; {refit_price}" if refit_price else "")
        + "".join(f"; {h.name} kept although heavy: {h.verdict.rule}" for h in plan.heavy if h.kept)
        + dropped
    )
    candidate = CandidateResult(
        name=ENSEMBLE,
        family=ENSEMBLE,
        kind="sklearn",
        val_score=round(val_score, 6),
        train_score=round(score(metric, train[1], train_blend), 6),
        train_score_kind="out-of-bag where a member has it, else in-sample",
        fit_seconds=round(sum(c.fit_seconds for c in members), 3),
        path=str(path),
        sha256=sha256_file(path),
        val_predictions=str(val_path),
        predictions_sha256=hashes,
        members=[
            EnsembleMember(
                name=c.name,
                base=c.base or c.name,
                weight=w,
                params=dict(c.params),
                balanced=c.balanced,
                log_target=c.log_target,
            )
            for c, w in zip(members, selection.weights, strict=True)
        ],
        refit_nominal_seconds=refit_cost,
        **extra,
    )
    return candidate, plan


def earned_weight(
    pool: list[CandidateResult],
    held_out: dict[str, np.ndarray],
    selection: EnsembleSelection,
    plan: EnsemblePlan,
    metric: str,
    y_held: np.ndarray,
    folds: np.ndarray,
    cv: bool,
    seed: int,
    scorer: Scorer,
    rounds: int,
    budget: float | None,
) -> tuple[list[CandidateResult], EnsembleSelection]:
    """A heavy member must earn its place by the margin rule.

    Heavy: heavier than all the other members together (most of what the package carries and
    deployment converts, reloads and times) and heavy for the budget (its deployment by the
    nominal rule, DEPLOY_SECONDS_PER_MB, over REFIT_SHARE of it): a full-depth forest on 40,000
    rows is 107 MB beside 7 MB of boosted trees, whatever its weight; a 4 MB LightGBM is not heavy.
    The ensemble with it and the ensemble selected without it are compared on cross-fitted
    held-out predictions (weights chosen without the rows they predict) by the same noise-margin
    rule as every escalation; a tie goes to the lighter ensemble. Repeated while a heavy member
    is left out, so the rule is the same for the members that remain. Without a budget, nothing
    is heavy. `held_out`: each pool candidate's held-out predictions, by name.
    """

    def blended(candidates: list[CandidateResult]) -> np.ndarray:
        names = [c.name for c in candidates]
        return cross_fitted(names, [held_out[n] for n in names], y_held, folds, scorer, rounds)

    while budget is not None and len(selection.names) >= MIN_MEMBERS:
        by_name = {c.name: c for c in pool}
        sizes = {n: Path(by_name[n].path).stat().st_size for n in selection.names}
        heaviest = max(sizes, key=sizes.__getitem__)
        others = sum(sizes.values()) - sizes[heaviest]
        deploy = DEPLOY_SECONDS_PER_MB * sizes[heaviest] / 1e6
        if sizes[heaviest] <= others or deploy <= REFIT_SHARE * budget:
            break
        rest = [c for c in pool if c.name != heaviest]
        verdict = escalation(
            metric,
            y_held,
            blended(rest),
            blended(pool),
            folds=folds if cv else None,
            seed=seed,
            simple=f"the ensemble without {heaviest}",
            candidate=(
                f"with {heaviest} ({sizes[heaviest] / 1e6:.1f} MB against {others / 1e6:.1f} MB, "
                f"deployment {deploy:.1f} s by the nominal rule > {REFIT_SHARE:.0%} of {budget:g} s)"
            ),
        )
        plan.heavy.append(
            HeavyMember(
                name=heaviest, bytes=sizes[heaviest], others_bytes=others, verdict=verdict, kept=verdict.wins
            )
        )
        if verdict.wins:
            break
        pool = rest
        selection = greedy_selection(
            [c.name for c in pool], [held_out[c.name] for c in pool], y_held, scorer, rounds
        )
    return pool, selection


def refit_prices(
    members: Sequence[CandidateResult],
    task: str,
    rows: int,
    train_rows: int,
    features_out: int,
    classes: int | None,
) -> dict[str, float]:
    """Each distinct member's refit on `rows` (train + validation) by the nominal rule, priced as
    the member was fit (longfit.nominal_candidate_seconds): at its defaults, at the search's cost
    when its configuration was sampled, a forest at the trees it grew (sized by the `train_rows`
    it was measured on). A member the greedy selection picked several times is one fit: its
    weight counts the picks, the refit fits it once."""
    from ml_expert.tools.selection.longfit import nominal_candidate_seconds
    from ml_expert.tools.selection.tuning import sampled_configuration

    prices: dict[str, float] = {}
    for c in members:
        base = c.base or c.name
        tuned = sampled_configuration(base, task, c.params, c.params_rule)
        prices[c.name] = nominal_candidate_seconds(
            base, rows, features_out, classes, c.params, tuned=tuned, sized_rows=train_rows
        )
    return prices


def prefit_ensemble(fitted: list[tuple[str, Any]], weights: list[float], task: str) -> Any:
    """The ensemble of already-fitted members (their train-only fits), without fitting them again."""
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import Bunch

    model = make_ensemble(fitted, weights, task)
    model.estimators_ = [m for _, m in fitted]
    model.named_estimators_ = Bunch(**dict(fitted))
    if task == "classification":
        model.le_ = LabelEncoder().fit(fitted[0][1].classes_)
        model.classes_ = model.le_.classes_
    return model


def training_predictions(pipeline: Any, frame: pd.DataFrame) -> np.ndarray:
    """A member's predictions on its own training rows, out-of-bag where it is a bagged forest.

    As for a single forest (baselines.training_score): a full-depth forest reproduces its training
    rows, and an ensemble holding one would look overfit to the validation gate however well it
    generalises. Rows no tree left out keep their in-sample prediction.
    """
    from sklearn.compose import TransformedTargetRegressor

    predictions = np.asarray(predict_scores(pipeline, frame), dtype=np.float64)
    model = pipeline.named_steps.get("model") if hasattr(pipeline, "named_steps") else None
    log_scale = isinstance(model, TransformedTargetRegressor)
    if log_scale:
        model = model.regressor_
    oob = getattr(model, "oob_decision_function_", None)
    if oob is None:
        oob = getattr(model, "oob_prediction_", None)
    if oob is None:
        return predictions
    oob = np.asarray(oob, dtype=np.float64).reshape(predictions.shape)
    if log_scale:
        oob = np.expm1(oob)
    seen = ~np.isnan(oob).reshape(len(oob), -1).any(axis=1)
    predictions[seen] = oob[seen]
    return predictions
