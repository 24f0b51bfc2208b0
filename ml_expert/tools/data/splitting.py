"""Seeded train/validation/test split, stratified for classification, and the sizes it recorded.

The phase results import SplitSizes from here: scikit-learn is imported by split_frame only."""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ml_expert.errors import DataError
from ml_expert.tools.data.schema import Task

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_PER_CLASS = 3


class SplitSizes(BaseModel):
    """Rows in each split (after cleaning): the data result, the report, the package's manifest and
    the registry (whose comparison of two runs reads them) keep them as `{"train", "val", "test"}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: int
    val: int
    test: int

    @property
    def total(self) -> int:
        """Rows kept in the three splits."""
        return self.train + self.val + self.test


def split_frame(
    frame: pd.DataFrame, target: str, task: Task, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if task == "classification":
        counts = frame[target].value_counts()
        rare = counts[counts < MIN_PER_CLASS]
        if len(rare):
            listed = ", ".join(f"{k!r}: {v}" for k, v in rare.items())
            raise DataError(
                f"too few rows of some class to split into train/validation/test ({listed}); "
                f"each class needs at least {MIN_PER_CLASS} rows: add rows or drop that class"
            )
    if len(frame) < 20:
        raise DataError(
            f"only {len(frame)} usable rows (after removing duplicates and rows without a target); "
            "at least 20 are needed to train, validate and test: add rows"
        )
    from sklearn.model_selection import train_test_split

    stratify = frame[target] if task == "classification" else None
    rest, test = train_test_split(frame, test_size=TEST_FRACTION, random_state=seed, stratify=stratify)
    stratify_rest = rest[target] if task == "classification" else None
    train, val = train_test_split(
        rest, test_size=VAL_FRACTION / (1 - TEST_FRACTION), random_state=seed, stratify=stratify_rest
    )
    return train, val, test
