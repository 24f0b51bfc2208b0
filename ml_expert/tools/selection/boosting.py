"""How many boosting rounds LightGBM grows: early stopping in k-fold CV on the training rows.

LightGBM's defaults (100 rounds at learning rate 0.1) are a guess that fits no data in particular:
too many rounds overfit a few hundred rows, too few underfit tens of thousands. Every AutoML system
early-stops its boosting; here `lightgbm.cv` grows the folds side by side at learning rate 0.05 and
stops PATIENCE rounds after the mean held-out loss last improved. The count is then fixed in the
candidate's params, so the validation score, the cross-validation on train + validation and the
refit all fit the same model. Only training rows are read: validation and test stay unseen.

The round cap is a count from the budget by a nominal cost per row and round (never a measured
time), so a seeded run grows the same trees on any machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.pipeline import Pipeline
from sklearn.utils.class_weight import compute_sample_weight

from ml_expert.tools.data.schema import InputSchema

if TYPE_CHECKING:
    from ml_expert.tools.selection.kernel import KernelPlan

LEARNING_RATE = 0.05
PATIENCE = 50
MAX_ROUNDS = 1000
# Fewer affordable rounds than this at LEARNING_RATE would learn less than the defaults
# (100 rounds at 0.1): the defaults are kept.
MIN_ROUNDS = 200
SEARCH_SHARE = 0.15  # of the budget, planned for the search
ROUND_ROW_S = 2e-7  # nominal seconds per training row and round on one busy core (set pessimistic)
SMALL_ROWS = 10_000  # below: 5 folds, else 3


class BoostingRounds(BaseModel):
    params: dict[str, Any]  # over LightGBM's defaults: {} when the defaults are kept
    rule: str


def folds_for(rows: int) -> int:
    return 5 if rows < SMALL_ROWS else 3


def round_cap(rows: int, budget: float | None) -> int:
    """The most rounds the search may grow: the budget's share / the nominal cost of one round."""
    if budget is None:
        return MAX_ROUNDS
    per_round = folds_for(rows) * rows * ROUND_ROW_S
    return int(min(MAX_ROUNDS, SEARCH_SHARE * budget / max(per_round, 1e-9)))


def _lgb_params(task: str, n_classes: int, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    if task == "regression":
        objective: dict[str, Any] = {"objective": "regression"}
    elif n_classes == 2:
        objective = {"objective": "binary"}
    else:
        objective = {"objective": "multiclass", "num_class": n_classes}
    return {
        **objective,
        "learning_rate": LEARNING_RATE,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
        **(extra or {}),  # a configuration's own (LARGE_LEAVES): LightGBM reads the sklearn names too
    }


def early_stopped_rounds(
    preprocessing: Pipeline,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    budget: float | None = None,
    balanced: bool = False,
    log_target: bool = False,
    config: dict[str, Any] | None = None,
) -> BoostingRounds:
    """`preprocessing`: the candidate's own (unfitted) steps before the model, fit here on train.
    `config`: a configuration's parameters over the defaults (LARGE_LEAVES), its learning rate
    included: the rounds are searched for that model."""
    import lightgbm as lgb

    rate = float((config or {}).get("learning_rate", LEARNING_RATE))

    frame, y = train
    rows = len(y)
    cap = round_cap(rows, budget)
    if cap < MIN_ROUNDS:
        return BoostingRounds(
            params={},
            rule=f"LightGBM's defaults (100 rounds at 0.1): the budget affords {cap} < {MIN_ROUNDS} rounds "
            f"of the search at {rate} ({folds_for(rows)} folds x {rows} rows x {ROUND_ROW_S:g} s)",
        )
    matrix = preprocessing.fit_transform(frame)
    classification = schema.task == "classification"
    labels = np.unique(y, return_inverse=True)[1] if classification else np.asarray(y, dtype=float)
    if log_target and not classification:
        labels = np.log1p(labels)
    weight = compute_sample_weight("balanced", labels) if balanced and classification else None
    n_classes = int(labels.max()) + 1 if classification else 0
    if classification and n_classes < 2:
        return BoostingRounds(params={}, rule="LightGBM's defaults: one class in the training rows")
    folds = folds_for(rows)
    history = lgb.cv(
        _lgb_params(schema.task, n_classes, seed, config),
        lgb.Dataset(matrix, label=labels, weight=weight, free_raw_data=True),
        num_boost_round=cap,
        nfold=folds,
        stratified=classification,
        shuffle=True,
        seed=seed,
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
    )
    rounds = len(next(iter(history.values())))
    stopped = "the cap" if rounds >= cap else f"early stopping ({PATIENCE} rounds without improvement)"
    return BoostingRounds(
        params={"learning_rate": rate, "n_estimators": int(rounds)},
        rule=f"{rounds} rounds at learning rate {rate}: {folds}-fold lightgbm.cv on the "
        f"{rows} training rows, stopped by {stopped}; cap {cap} = min({MAX_ROUNDS}, "
        f"{SEARCH_SHARE:g} x budget / ({folds} folds x {rows} rows x {ROUND_ROW_S:g} s))",
    )


CATBOOST_HOLDOUT = 0.2  # of the training rows, held out to stop CatBoost's iterations


def catboost_iterations(
    pipeline: Pipeline,
    schema: InputSchema,
    train: tuple[pd.DataFrame, np.ndarray],
    seed: int,
    balanced: bool = False,
    log_target: bool = False,
) -> BoostingRounds:
    """CatBoost's iteration count, the way LightGBM's rounds are found but cheaper: one fit on a
    seeded 80/20 split of the training rows, stopped PATIENCE iterations after the held-out loss
    last improved (cap MAX_ROUNDS at CatBoost's LEARNING_RATE). `pipeline`: the unfitted candidate
    (preprocessing + CatBoost model); only training rows are read."""
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    frame, y = train
    classification = schema.task == "classification"
    stratify = y if classification and np.unique(y, return_counts=True)[1].min() >= 2 else None
    fit_rows, held_rows = train_test_split(
        np.arange(len(y)), test_size=CATBOOST_HOLDOUT, random_state=seed, stratify=stratify
    )
    preprocessing = Pipeline(clone(pipeline).steps[:-1])
    model = clone(pipeline.steps[-1][1])
    x_fit = preprocessing.fit_transform(frame.iloc[fit_rows])
    x_held = preprocessing.transform(frame.iloc[held_rows])
    labels = np.asarray(y, dtype=float) if not classification else np.asarray(y)
    if log_target and not classification:
        labels = np.log1p(labels)
    if classification and len(np.unique(labels[fit_rows])) < 2:
        return BoostingRounds(params={}, rule="CatBoost's defaults: one class in the training rows")
    model.set_params(iterations=MAX_ROUNDS, od_type="Iter", od_wait=PATIENCE, use_best_model=True)
    model.fit(x_fit, labels[fit_rows], eval_set=(x_held, labels[held_rows]))
    iterations = int(model.get_best_iteration()) + 1
    rate = model.get_params()["learning_rate"]
    return BoostingRounds(
        params={"iterations": iterations},
        rule=f"{iterations} iterations at learning rate {rate}: early stopping "
        f"({PATIENCE} iterations without improvement, cap {MAX_ROUNDS}) on a seeded "
        f"{1 - CATBOOST_HOLDOUT:.0%}/{CATBOOST_HOLDOUT:.0%} split of the {len(y)} training rows",
    )


LARGE_LEAVES: dict[str, Any] = {
    "num_leaves": 128,
    "learning_rate": 0.03,
    "colsample_bytree": 0.9,
    "min_child_samples": 3,
}
"""A second LightGBM configuration with larger trees: AutoGluon's "GBMLarge", a fixed member of its
default portfolio (a configuration chosen across many data sets, not for these). 128 leaves of at
least 3 rows need rows to fill them, so it joins only on data of CV_MAX_ROWS (10,000) rows or more
(where candidates are compared on validation, crossval.plan_cv) and its fits fit their share of
the budget (plan_large_leaves); its rounds are searched for it (early_stopped_rounds with this
configuration)."""
LARGE_LEAVES_NAME = "lightgbm_large"
LARGE_LEAVES_SHARE = 0.25


def plan_large_leaves(
    train_rows: int, val_rows: int, features_out: int, classes: int | None, budget: float
) -> KernelPlan:
    """Whether the larger-trees LightGBM (LARGE_LEAVES) joins the candidates: a count rule, like the
    optional families'. Not on small data (under CV_MAX_ROWS train + validation rows, whether compared
    by cross-validation or, when the budget cannot afford it, on validation), where leaves of 3 rows
    fit noise and its search costs many times its nominal price (digits, 1,005 training rows and 10
    classes: about 30 s for 804 rounds of 128 leaves in 5 folds, priced 6.6 s, and it lost). Priced
    as LightGBM's defaults, whose figure includes the round search: several times the measured fit
    on large data (diamonds: 9.99 s nominal, 0.75 s measured, busy 2 cores), where the larger trees
    measured 1.5-2x the default's fit with a similar number of rounds."""
    from ml_expert.tools.selection.crossval import CV_MAX_ROWS
    from ml_expert.tools.selection.kernel import KernelPlan, plan_by_cost

    if train_rows + val_rows < CV_MAX_ROWS:  # cross-validation is only ever planned below it
        return KernelPlan(
            include=False,
            rule=f"{train_rows + val_rows} train + validation rows < {CV_MAX_ROWS}: leaves of "
            f"{LARGE_LEAVES['min_child_samples']} rows fit noise on small data",
        )
    return plan_by_cost(
        "lightgbm", train_rows, val_rows, features_out, classes, budget, None, LARGE_LEAVES_SHARE,
        search="its round search",
    )  # fmt: skip


# Of the budget, at most, planned for CatBoost's fits (as much as the ensemble's refit may take):
# at the nominal 1000 iterations its 7 fits on a small CV cost about 37 s, so it joins from a budget
# of about 150 s; diamonds' one fit + search (no CV) about 30 s, from about 125 s.
CATBOOST_SHARE = 0.25


def plan_catboost(
    train_rows: int,
    val_rows: int,
    features_out: int,
    classes: int | None,
    budget: float,
    folds: int | None,
    installed: bool = True,
) -> KernelPlan:
    """Whether CatBoost joins the baselines: a count rule, like the kernel SVM's.

    Measured (benchmarks/families_catboost.py, nine datasets, seeds 0 and 1), CatBoost alone never
    beat both HGB and LightGBM by more than the noise, but as one more member of the greedy ensemble
    it did on diamonds (both seeds), titanic and diabetes; its fits cost 3-40x LightGBM's. It joins
    when the nominal cost of every fit it would make (its iteration search, k CV folds, the fit on
    train) fits CATBOOST_SHARE of the budget, so a seeded run decides the same on any machine.
    `folds`: the CV plan's k, or None."""
    from ml_expert.tools.selection.kernel import KernelPlan, plan_by_cost

    if not installed:
        return KernelPlan(include=False, rule="catboost is not installed")
    return plan_by_cost(
        "catboost", train_rows, val_rows, features_out, classes, budget, folds, CATBOOST_SHARE,
        train_fits=2, search="its iteration search",
    )  # fmt: skip
