"""On small data, ship a boosted winner as a bag of k fold fits, not one refit on train + validation.

When candidates are compared by cross-validation (small data, crossval.py), a boosted-tree model
(histogram gradient boosting, LightGBM, CatBoost; alone or as an ensemble member) ships as
BAG_FOLDS fits of its settings, each on all of train + validation but one fold, blended with equal
weights: a soft vote of their probabilities, or the mean of their predictions (what AutoGluon's
k-fold bagging ships, at its default of 8 folds). Bagging helps unstable learners, whose fit moves
with the rows it sees (Breiman, 1996), and each member misses 1/k of the rows, which costs the more
the fewer the folds. benchmarks/bagging.py measured bags against one refit on all rows (caravan,
breast cancer, digits 9 against the rest; 8 seeds): the boosted models' bags of 8 won log-loss on
average on every set (22 of 24 seeds for LightGBM) and ROC-AUC on caravan (+0.005 to +0.010), bags
of 3 lost on caravan; the linear model's were level (breast cancer log-loss -0.001, 0 of 8 seeds),
so linear models, the kernel SVM (stable, and calibrated on its own folds) and the random forest
(already an average of bootstrap trees, k times its size to ship) are refit once, as before. The
fold count is BAG_FOLDS whatever number of folds the comparison could afford (3 on caravan at a
60 s budget).

A tuned threshold cuts the bag's averaged probability; a log-scale regressor's members each
predict on the original scale, and the bag averages those. The folds come from the seed
(crossval.fold_ids): the same bag on any machine.

The bag costs k - 1 refits. When that is long for the budget by the count rule every long fit
follows (longfit: over max(25 % of the budget, 5 s) at the nominal price), one refit ships instead:
a bag stopped at its deadline would ship the train-only fit, worse than either (measured: on
caravan under load, HGB's bag priced 22.9 s at a 60 s budget was stopped twice in 10 seeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_expert.tools.data.schema import InputSchema
from ml_expert.tools.selection.baselines import fit
from ml_expert.tools.selection.candidates import make_pipeline
from ml_expert.tools.selection.crossval import fold_ids
from ml_expert.tools.selection.ensemble import EnsembleMember
from ml_expert.tools.selection.records import FoldBag

BAGGED = ("hist_gradient_boosting", "lightgbm", "catboost")  # unstable learners: bagging measured to help
BAG_FOLDS = 8  # AutoGluon's default; each member sees 7/8 of the rows


def priced_bag(single_refit_seconds: float, budget: float | None) -> tuple[float, str | None]:
    """(the bag's nominal price, None) when it fits the budget's long-fit limit, else (price, why not).
    `single_refit_seconds`: one refit on train + validation by the nominal rule."""
    from ml_expert.tools.selection.longfit import LONG_FIT_MIN_S, LONG_FIT_SHARE

    price = single_refit_seconds * (BAG_FOLDS - 1)
    if budget is None:
        return price, None
    limit = max(LONG_FIT_SHARE * budget, LONG_FIT_MIN_S)
    if price <= limit:
        return price, None
    return price, (
        f"a bag of {BAG_FOLDS} fold fits costs {price:.1f} s by the nominal rule ({BAG_FOLDS - 1} refits of "
        f"{single_refit_seconds:.1f} s) > max({LONG_FIT_SHARE:.0%} of the {budget:g} s budget, "
        f"{LONG_FIT_MIN_S:g} s) = {limit:.1f} s: one refit on train + validation instead"
    )


def bagged(base: str) -> bool:
    return base in BAGGED


def any_bagged(base: str, settings: dict[str, Any]) -> bool:
    """Whether a bag of this candidate differs from one refit: some part of it is a boosted model."""
    return any(bagged(m.base) for m in settings.get("members") or []) or (
        not settings.get("members") and bagged(base)
    )


def fold_bag(
    name: str,
    base: str,
    schema: InputSchema,
    frame: pd.DataFrame,
    target: np.ndarray,
    seed: int,
    rows: int,
    settings: dict[str, Any],
    k: int = BAG_FOLDS,
) -> tuple[Any, FoldBag]:
    """The bag of `name`'s k fold fits on train + validation (`frame`, `target`), fit here.
    `rows`: the training rows the candidates were sized by. `settings`: CandidateResult.settings();
    an ensemble's members are bagged one by one (a member not in BAGGED refit on all rows),
    flattened into one weighted vote."""
    from ml_expert.tools.selection.ensemble_candidate import prefit_ensemble

    folds = fold_ids(schema.task, target, seed, k)
    members: list[EnsembleMember] = list(settings.get("members") or [])
    threshold = settings.get("threshold")
    parts = members or [
        EnsembleMember(
            name=name,
            base=base,
            weight=1.0,
            params=dict(settings.get("params") or {}),
            balanced=bool(settings.get("balanced")),
            log_target=bool(settings.get("log_target")),
        )
    ]
    fitted: list[tuple[str, Any]] = []
    weights: list[float] = []
    for part in parts:
        build = dict(params=part.params or None, balanced=part.balanced, log_target=part.log_target)
        if not bagged(part.base):
            pipeline = make_pipeline(part.base, schema, seed, rows=rows, **build)
            fit(pipeline, frame, target)  # one OpenMP thread on small data, as every candidate fit
            fitted.append((part.name, pipeline))
            weights.append(part.weight)
            continue
        for fold in range(k):
            held = folds == fold
            pipeline = make_pipeline(part.base, schema, seed, rows=rows, **build)
            fit(pipeline, frame[~held], target[~held])
            fitted.append((f"{part.name}_fold{fold}", pipeline))
            weights.append(part.weight / k)
    model = prefit_ensemble(fitted, weights, schema.task)
    if threshold is not None and schema.task == "classification":
        model = _prefit_threshold(model, threshold)
    kept = [p.name for p in parts if not bagged(p.base)]
    rule = (
        f"{k} fits of "
        + (f"each of its {len(parts)} members" if members else name)
        + f", each on all of train + validation but one of {k} folds ({k - 1}/{k} of the rows), blended"
        " with equal weights"
        + (f"; {', '.join(kept)} refit on train + validation (stable, or already a bag)" if kept else "")
    )
    return model, FoldBag(folds=k, members=[n for n, _ in fitted], rule=rule)


def _prefit_threshold(model: Any, threshold: float) -> Any:
    """FixedThresholdClassifier around an already fitted model, without fitting it again."""
    from sklearn.model_selection import FixedThresholdClassifier

    wrapped = FixedThresholdClassifier(model, threshold=threshold, response_method="predict_proba")
    wrapped.estimator_ = model
    return wrapped
