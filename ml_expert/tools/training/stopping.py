"""The rows early stopping watches: carved from the training split, never the validation split.

The validation split is where the network is compared with the best candidate (noise.py). Had
early stopping chosen the network's epoch on those same rows, its validation score would be the
best of many looks at them, biased upwards against candidates that never saw them: a network
could win validation by luck and lose on unseen rows. So a stratified share of the training rows
decides when to stop, and the validation rows stay unseen until the comparison.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel

STOPPING_SHARE = 0.15  # of the training rows; the rest is what the network learns from
MIN_STOPPING_ROWS = 20  # fewer rows than this cannot tell one epoch from the next


class StoppingSplit(BaseModel):
    """Which training rows the network learns from and which decide when it stops."""

    fit_rows: list[int]
    stop_rows: list[int]
    on_validation: bool  # True: too few training rows to carve; early stopping watches validation
    rule: str

    @property
    def watching(self) -> str:
        """The decision's words: which rows early stopping watches."""
        return "validation rows" if self.on_validation else "held-back training rows"

    def arrays(
        self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x_fit, y_fit, x_stop, y_stop): what the network learns from and what stops it."""
        if self.on_validation:
            return x_train, y_train, x_val, y_val
        fit, stop = self.fit_rows, self.stop_rows
        return x_train[fit], y_train[fit], x_train[stop], y_train[stop]


def stopping_split(y: np.ndarray, task: str, seed: int, share: float = STOPPING_SHARE) -> StoppingSplit:
    """A seeded share of `y`'s rows (stratified by class for classification) for early stopping."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    rows = np.arange(n)
    n_stop = int(round(share * n))
    classes, counts = np.unique(y, return_counts=True) if task == "classification" else (None, None)
    stratify = y if counts is not None and counts.min() >= 2 and n_stop >= len(classes) else None
    if n_stop < MIN_STOPPING_ROWS or n - n_stop < MIN_STOPPING_ROWS:
        return StoppingSplit(
            fit_rows=rows.tolist(),
            stop_rows=[],
            on_validation=True,
            rule=(
                f"{share:.0%} of {n} training rows is under {MIN_STOPPING_ROWS}: early stopping watches "
                "the validation split, so the network's validation score is the best of its epochs there"
            ),
        )
    fit, stop = train_test_split(rows, test_size=n_stop, random_state=seed, stratify=stratify)
    return StoppingSplit(
        fit_rows=np.sort(fit).tolist(),
        stop_rows=np.sort(stop).tolist(),
        on_validation=False,
        rule=(
            f"early stopping watches {n_stop} of the {n} training rows ({share:.0%}"
            f"{', stratified by class' if stratify is not None else ''}, seed {seed}); the network learns "
            f"from the other {n - n_stop}, and the validation rows stay unseen until it is compared"
        ),
    )


GIVE_UP_ROWS = 10_000  # of the rows early stopping watches, scored each epoch for the give-up rule


class GiveUpRule(BaseModel):
    """What the network must reach to be worth its remaining epochs: the best candidate's figure in
    the user's metric, which the network must beat on the validation split to be chosen."""

    metric: str
    baseline: float
    baseline_name: str
    baseline_rows: str = "validation"  # words: where the baseline's figure was measured
    patience: int  # early stopping's: the window of epochs whose improvements are extrapolated
    max_epochs: int
    watching: str  # words: the rows the network is scored on each epoch


class GaveUp(BaseModel):
    """The figures of a network stopped because it cannot reach the best candidate in its epochs."""

    epoch: int
    network: float  # its best metric so far on the watched rows
    baseline: float
    gap: float  # how far its best is from the baseline, in the metric's units (> 0)
    rate: float  # its best's gain per epoch over the last `patience` epochs
    remaining: int  # planned epochs left
    scores: list[float | None]  # its metric on the watched rows after each epoch (None: not finite)
    reason: str


def cannot_win(scores: list[float], rule: GiveUpRule, epoch: int | None = None) -> GaveUp | None:
    """Stop the network when, once its early-stopping patience has elapsed, its best metric is still
    further from the best candidate's than its recent gain per epoch, kept up for every planned epoch
    left, could close; else None.

    The recent gain is that of its best score over the last `patience` epochs (early stopping's own
    window: the first epochs' gains from random weights say nothing about the end of training),
    divided by `patience`. Extrapolating it in a straight line is optimistic for the network, whose
    gains shrink as it learns. A count rule (epochs and metric values, never the clock), so a seeded
    run stops at the same epoch on any machine. Keras's `EarlyStopping(baseline=...)` does not fit:
    it stops a network that has not passed the baseline after `patience` epochs however fast it is
    still closing in. `epoch`: the epoch just ended, when training resumed from a backup (the scores
    then start there); by default, one score per epoch from the first."""
    from ml_expert.tools.scoring import sign

    epoch = len(scores) if epoch is None else epoch
    remaining = rule.max_epochs - epoch
    if len(scores) <= rule.patience or remaining <= 0:
        return None
    s = sign(rule.metric)
    best: list[float] = []  # the best so far, oriented so that greater is better
    for value in scores:
        oriented = s * value if math.isfinite(value) else -math.inf
        best.append(max(best[-1], oriented) if best else oriented)
    then = best[-1 - rule.patience]
    if not math.isfinite(then):
        return None  # nothing finite to extrapolate from: divergence has its own rules
    gap = s * rule.baseline - best[-1]
    rate = (best[-1] - then) / rule.patience
    if gap <= 0 or rate * remaining >= gap:
        return None
    network = s * best[-1]
    reason = (
        f"{rule.metric} {network:.4f} at best on {rule.watching} after {epoch} of {rule.max_epochs} epochs, "
        f"{rule.baseline_name} {rule.baseline:.4f} on {rule.baseline_rows}: the gap {gap:.4f} is more than "
        f"its gain per epoch over the last {rule.patience} (early stopping's patience) {rate:.5f} x the "
        f"{remaining} epochs left = {rate * remaining:.4f}"
    )
    return GaveUp(
        epoch=epoch,
        network=round(network, 6),
        baseline=rule.baseline,
        gap=round(gap, 6),
        rate=round(rate, 6),
        remaining=remaining,
        scores=[round(v, 6) if math.isfinite(v) else None for v in scores],
        reason=reason,
    )
