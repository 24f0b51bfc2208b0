"""Whether derived feature columns earn their place: the same model with and without them,
k-fold cross-validated on the training rows, must gain more than the noise margin
(tools/selection/noise.py), like every escalation. Feature work an expert tries (composite-code
parts, code counts) stays only when this says it measurably helps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_expert.tools.data.schema import ColumnSpec, InputSchema, to_model_frame

MEASURE_ROWS = 20_000  # training rows the with/without comparison uses at most (seeded sample)
MEASURE_FOLDS = 5
MEASURE_MODEL = "hist_gradient_boosting"


def measure_added_columns(
    frame: pd.DataFrame,
    y: np.ndarray,
    without: InputSchema,
    added: list[ColumnSpec],
    metric: str,
    seed: int,
    what: str,
) -> tuple[bool, str]:
    """(kept, rule): whether boosting with `added` beats boosting without them by the noise margin.

    `frame`: the raw training rows; `y`: their encoded target."""
    from ml_expert.tools.scoring import predict_scores
    from ml_expert.tools.selection.baselines import fit
    from ml_expert.tools.selection.candidates import make_pipeline
    from ml_expert.tools.selection.crossval import fold_ids
    from ml_expert.tools.selection.noise import escalation

    with_added = without.with_columns(added)
    if len(y) > MEASURE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), MEASURE_ROWS, replace=False))
        frame, y = frame.iloc[rows], y[rows]
    folds = fold_ids(without.task, y, seed, k=MEASURE_FOLDS)
    predictions = []
    for schema in (without, with_added):
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
        simple=f"without {what}",
        candidate=f"with {what}",
    )
    how = f"{MEASURE_FOLDS}-fold CV of {MEASURE_MODEL} on {len(y)} training rows"
    return verdict.wins, f"{how}: {verdict.rule}"
