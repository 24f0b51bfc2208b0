"""Composite codes: a high-cardinality string column whose values are parts joined by one separator
(a cabin `B/0/P`, a passenger id `0001_01`) is split into its parts, each a categorical or numeric
column of its own, the way an expert reads such a file.

Found on the training rows only; the split itself is stateless (schema.composite_part, mirrored by
the serving runtime), so it replays identically at serving. The parts stay only when they
measurably help: gradient boosting with and without them, k-fold cross-validated on the training
rows, must gain more than the noise margin (tools/selection/noise.py), like every escalation.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ml_expert.tools.data.preprocessing import MAX_CATEGORIES
from ml_expert.tools.data.profiling import ID_UNIQUE_RATIO
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, composite_part, to_model_frame

SEPARATORS = ("/", "_", "-", ":", "|")
MIN_SHARE = 0.9  # of the non-missing training values that split into the same number of parts
MAX_PARTS = 4
NUMERIC_SHARE = 0.95  # of a part's non-missing values that parse as numbers: a numeric part
MEASURE_ROWS = 20_000  # training rows the with/without comparison uses at most (seeded sample)
MEASURE_FOLDS = 5
MEASURE_MODEL = "hist_gradient_boosting"


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
    from ml_expert.tools.scoring import predict_scores
    from ml_expert.tools.selection.baselines import fit
    from ml_expert.tools.selection.candidates import make_pipeline
    from ml_expert.tools.selection.crossval import fold_ids
    from ml_expert.tools.selection.noise import escalation

    parts = [spec for c in composites for spec in c.kept_parts]
    with_parts = without.model_copy(update={"columns": [*without.columns, *parts]})
    with_parts = InputSchema.model_validate(with_parts.model_dump(exclude={"columns": {"__all__": {"key"}}}))
    if len(y) > MEASURE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), MEASURE_ROWS, replace=False))
        frame, y = frame.iloc[rows], y[rows]
    folds = fold_ids(without.task, y, seed, k=MEASURE_FOLDS)
    predictions = []
    for schema in (without, with_parts):
        model_frame = to_model_frame(frame, schema)
        out: np.ndarray | None = None
        for k in range(MEASURE_FOLDS):
            held = folds == k
            pipeline = make_pipeline(MEASURE_MODEL, schema, seed, rows=int((~held).sum()))
            fit(pipeline, model_frame[~held], y[~held])
            part = predict_scores(pipeline, model_frame[held])
            if out is None:
                out = np.zeros((len(y), *part.shape[1:]), dtype=np.float64)
            out[held] = part
        predictions.append(out)
    verdict = escalation(
        metric,
        y,
        predictions[0],
        predictions[1],
        folds=folds,
        seed=seed,
        simple="without the parts",
        candidate="with the parts",
    )
    return CompositeDecision(
        columns=composites,
        kept=verdict.wins,
        rule=f"{MEASURE_FOLDS}-fold CV of {MEASURE_MODEL} on {len(y)} training rows: {verdict.rule}",
    )
