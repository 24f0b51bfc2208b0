"""Code counts: how many training rows share a row's code (a ticket, a postcode, a product id).

One-hot encoding keeps a high-cardinality column's most frequent categories only (MAX_CATEGORIES);
an ID-like code is dropped whole. How common a code is often still predicts (a party travelling on
one ticket, a busy shop): the count carries that without storing which code is which row's.

Privacy (privacy.py): a code is stored with its count only when MIN_CATEGORY_COUNT training rows
share it; rarer codes, and codes never seen in training, count 0, in training and serving alike,
so a training row's feature means what a new row's means. Counts come from the training rows
only; the serving runtime looks them up in the schema (runtime/inference.py: code_count).
"""

from __future__ import annotations

import pandas as pd
from pydantic import BaseModel

from ml_expert.runtime.inference import category_text
from ml_expert.tools.data.preprocessing import MAX_CATEGORIES
from ml_expert.tools.data.privacy import MIN_CATEGORY_COUNT
from ml_expert.tools.data.schema import ColumnSpec

MAX_STORED_CODES = 10_000  # the most frequent codes kept in the schema; the rest count 0
MIN_SHARED_SHARE = 0.05  # of the training rows whose code is stored: less, and the count is ~constant 0


class CodeCounts(BaseModel):
    """The count columns found on the training rows and whether they stay (one verdict for all)."""

    columns: list[ColumnSpec]
    rules: dict[str, str]  # per column: why it is a candidate
    kept: bool
    rule: str  # the with/without comparison and its margin


def find_count_columns(frame: pd.DataFrame, names: list[str]) -> tuple[list[ColumnSpec], dict[str, str]]:
    """Count columns for the codes among `names` (training rows only) that one-hot encoding cannot
    hold whole and that enough rows share, with the reason for each."""
    specs: list[ColumnSpec] = []
    rules: dict[str, str] = {}
    for name in names:
        codes = frame[name].map(category_text)
        codes = codes[codes != ""]
        counts = codes.value_counts()
        if len(counts) <= MAX_CATEGORIES:
            continue  # one-hot encoding holds every category already
        stored = counts[counts >= MIN_CATEGORY_COUNT].head(MAX_STORED_CODES)
        share = float(stored.sum() / len(frame)) if len(frame) else 0.0
        if len(stored) < 2 or share < MIN_SHARED_SHARE:
            continue
        table = {str(code): int(n) for code, n in stored.items()}
        specs.append(ColumnSpec(name=name, kind="numeric", derive="count", counts=table))
        rules[name] = (
            f"{len(counts)} distinct codes (> {MAX_CATEGORIES} one-hot columns); {len(stored)} are shared by "
            f">= {MIN_CATEGORY_COUNT} training rows, which hold {share:.0%} of the rows"
            + (f" (the {MAX_STORED_CODES} most frequent stored)" if len(stored) == MAX_STORED_CODES else "")
            + "; rarer and unseen codes count 0"
        )
    return specs, rules
