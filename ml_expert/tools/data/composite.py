"""Composite codes: a high-cardinality string column whose values are parts joined by one separator
(a cabin `B/0/P`, a passenger id `0001_01`) is split into its parts, each a categorical or numeric
column of its own, the way an expert reads such a file.

Found on the training rows only; the split itself is stateless (schema.composite_part, mirrored by
the serving runtime), so it replays identically at serving. The parts stay only when they
measurably help (tools/data/measure.py).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ml_expert.tools.data.measure import measure_added_columns
from ml_expert.tools.data.preprocessing import MAX_CATEGORIES
from ml_expert.tools.data.profiling import ID_UNIQUE_RATIO
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, composite_part

SEPARATORS = ("/", "_", "-", ":", "|")
MIN_SHARE = 0.9  # of the non-missing training values that split into the same number of parts
MAX_PARTS = 4
NUMERIC_SHARE = 0.95  # of a part's non-missing values that parse as numbers: a numeric part


class CompositeColumn(BaseModel):
    name: str
    separator: str
    parts: int
    share: float  # of the training values with exactly `parts` parts
    kept_parts: list[ColumnSpec]  # the parts worth a column (not constant, not ID-like)
    rule: str


class CompositeDecision(BaseModel):
    columns: list[CompositeColumn]
    kept: bool
    rule: str  # the with/without comparison and its margin


def find_composites(frame: pd.DataFrame, names: list[str]) -> list[CompositeColumn]:
    """Columns among `names` whose training values are composite codes, with their useful parts."""
    found = []
    for name in names:
        values = frame[name].dropna().astype(str).str.strip()
        values = values[values != ""]
        distinct = values.nunique()
        if len(values) < 20 or distinct <= MAX_CATEGORIES:
            continue
        best: tuple[float, str, int] | None = None
        for separator in SEPARATORS:
            counts = values.str.count(re.escape(separator))
            modal = int(counts.mode().iloc[0])
            share = float((counts == modal).mean())
            if 1 <= modal < MAX_PARTS and share >= MIN_SHARE and (best is None or share > best[0]):
                best = (share, separator, modal + 1)
        if best is None:
            continue
        share, separator, n_parts = best
        kept: list[ColumnSpec] = []
        notes: list[str] = []
        for position in range(n_parts):
            pieces = values.map(lambda v, p=position, s=separator: composite_part(v, s, p)).dropna()
            unique = pieces.nunique()
            numeric = (
                pd.to_numeric(pieces, errors="coerce").notna().mean() >= NUMERIC_SHARE
                if len(pieces)
                else False
            )
            if unique <= 1:
                notes.append(f"part {position + 1} constant: skipped")
                continue
            if not numeric and unique >= ID_UNIQUE_RATIO * len(pieces):
                notes.append(f"part {position + 1} unique per row: skipped")
                continue
            kind = "numeric" if numeric else "categorical"
            kept.append(
                ColumnSpec(name=name, kind=kind, derive="part", position=position, separator=separator)
            )
            notes.append(f"part {position + 1} {kind} ({unique} distinct)")
        if not kept:
            continue
        found.append(
            CompositeColumn(
                name=name,
                separator=separator,
                parts=n_parts,
                share=round(share, 4),
                kept_parts=kept,
                rule=(
                    f"{distinct} distinct values; {share:.0%} of the training values split at {separator!r} "
                    f"into {n_parts} parts (>= {MIN_SHARE:.0%}): " + "; ".join(notes)
                ),
            )
        )
    return found


def measure_composites(
    frame: pd.DataFrame,
    y: np.ndarray,
    without: InputSchema,
    composites: list[CompositeColumn],
    metric: str,
    seed: int,
) -> CompositeDecision:
    """Keep the parts only when boosting with them beats boosting without them by the noise margin."""
    parts = [spec for c in composites for spec in c.kept_parts]
    kept, rule = measure_added_columns(frame, y, without, parts, metric, seed, "the parts")
    return CompositeDecision(columns=composites, kept=kept, rule=rule)
