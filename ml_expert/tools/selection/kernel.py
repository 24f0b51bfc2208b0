"""Whether the kernel SVM joins the baselines: a count rule on the rows, features and budget.

An RBF-kernel SVM on standardised inputs is strong where the classes are separated by smooth
boundaries in many dense numeric features (handwritten digits: 0.981 in 5-fold CV against 0.973
for histogram boosting and 0.969 for the linear model), but its solver's work grows with the
square of the rows. It joins only when its nominal cost, every fit it would make counted, fits
SVM_SHARE of the budget: a count rule, so a seeded run decides the same on any machine.
"""

from __future__ import annotations

from pydantic import BaseModel

from ml_expert.tools.selection.candidates import CALIBRATION_FOLDS

SVM_SHARE = 0.1  # of the budget, at most, planned for the SVM's fits
MIN_CLASS_ROWS = 2 * CALIBRATION_FOLDS  # per class: its probabilities are calibrated on folds


class KernelPlan(BaseModel):
    """Whether an optional family joins the baselines, and the rule's figures in words."""

    include: bool
    rule: str


def plan_by_cost(
    family: str,
    train_rows: int,
    val_rows: int,
    features_out: int,
    classes: int | None,
    budget: float,
    folds: int | None,
    share: float,
    train_fits: int = 1,
    search: str = "",
) -> KernelPlan:
    """The optional families' count rule (the kernel SVM, CatBoost): the family joins when the
    nominal cost of every fit it would make (`train_fits` on the training rows, e.g. a search and
    the fit; k CV fits on (k-1)/k of train + validation) fits `share` of the budget. `search`:
    words for what the extra training fits are."""
    from ml_expert.tools.selection.tuning import nominal_fit_seconds

    def one(rows: int) -> float:
        return nominal_fit_seconds(family, rows, features_out, classes, at_defaults=True)

    cost = train_fits * one(train_rows)
    if folds:
        cost += folds * one((train_rows + val_rows) * (folds - 1) // folds)
    verdict = cost <= share * budget
    return KernelPlan(
        include=verdict,
        rule=(
            f"nominal cost of its fits {cost:.1f} s ({train_rows} training rows, {features_out} features"
            + (f", {folds}-fold CV" if folds else "")
            + (f", {search}" if search else "")
            + f") {'<=' if verdict else '>'} {share:.0%} of the {budget:g} s budget"
        ),
    )


def plan_svm(
    task: str,
    train_rows: int,
    val_rows: int,
    features_out: int,
    smallest_class_rows: int,
    budget: float,
    folds: int | None,
) -> KernelPlan:
    """`folds`: the CV plan's k (each candidate is fit k times on (k-1)/k of train + validation and
    once on train), or None (once on train)."""
    if task != "classification":
        return KernelPlan(include=False, rule="the kernel SVM classifies only")
    if smallest_class_rows < MIN_CLASS_ROWS:
        return KernelPlan(
            include=False,
            rule=f"the smallest class has {smallest_class_rows} training rows < {MIN_CLASS_ROWS}: "
            f"too few to calibrate its probabilities on {CALIBRATION_FOLDS} folds",
        )
    return plan_by_cost("svm", train_rows, val_rows, features_out, None, budget, folds, SVM_SHARE)
