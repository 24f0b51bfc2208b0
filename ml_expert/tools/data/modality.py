"""Decide whether a table is plain tabular data or flattened images."""

from __future__ import annotations

import math
from typing import Literal

import pandas as pd

from ml_expert.errors import DataError

Modality = Literal["tabular", "image"]
REQUESTS = ("auto", "tabular", "image")


def detect_modality(
    frame: pd.DataFrame, target: str, requested: str = "auto"
) -> tuple[Modality, list[int] | None, str]:
    """Return the modality, the image shape [h, w, c] when images, and the reason."""
    if requested not in REQUESTS:
        raise DataError(f"unknown modality {requested!r}; choose one of {', '.join(REQUESTS)}")
    features = [c for c in frame.columns if c != target]
    numeric = all(pd.api.types.is_numeric_dtype(frame[c]) for c in features)
    side = math.isqrt(len(features))
    square = side * side == len(features) and side >= 4
    if requested == "tabular":
        return "tabular", None, "asked for tabular (--modality tabular)"
    if requested == "image":
        if not (numeric and square):
            raise DataError(
                f"--modality image needs a square number of numeric pixel columns; got {len(features)} "
                f"columns{'' if numeric else ' with non-numeric ones'}"
            )
        return "image", [side, side, 1], f"asked for images: {len(features)} pixel columns as {side}x{side}"
    named = sum(str(c).lower().startswith(("pixel", "px")) for c in features) == len(features)
    if numeric and square and named:
        return (
            "image",
            [side, side, 1],
            f"{len(features)} numeric columns named pixel* form a {side}x{side} image",
        )
    return "tabular", None, "columns are ordinary features"
