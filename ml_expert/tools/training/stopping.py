"""The rows early stopping watches: carved from the training split, never the validation split.

The validation split is where the network is compared with the best candidate (noise.py). Had
early stopping chosen the network's epoch on those same rows, its validation score would be the
best of many looks at them, biased upwards against candidates that never saw them: a network
could win validation by luck and lose on unseen rows. So a stratified share of the training rows
decides when to stop, and the validation rows stay unseen until the comparison.
"""

from __future__ import annotations

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
