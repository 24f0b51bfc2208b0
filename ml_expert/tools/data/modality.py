"""Decide whether a table is plain tabular data, flattened images, or free text."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ml_expert.errors import DataError
from ml_expert.tools.data.text import is_text

Modality = Literal["tabular", "image", "text", "sequence"]


class SequenceColumns(BaseModel):
    """What a network reads as one sequence: a text's column as word ids (modality text: the column,
    its length and vocabulary size) or the numeric columns in file order (modality sequence: no
    column, no vocabulary). Its record keeps the fields its producer set (prepare.py)."""

    model_config = ConfigDict(extra="forbid")

    column: str | None  # the free-text column (None: the numeric columns are the steps)
    length: int  # steps (word positions) per row
    vocabulary_size: int | None = None  # text only
    rule: str

    def written(self, mode: str = "python") -> dict[str, Any]:
        """The record with the keys its producer set (a sequence's has no vocabulary_size)."""
        return self.model_dump(mode=mode, exclude_unset=True)


REQUESTS = ("auto", "tabular", "image", "text", "sequence")
MIN_SEQUENCE_STEPS = 8
# Pixel column names seen in exported image sets: pixel_0_0, pixel12, px3, 1x1 (MNIST CSVs), 0..783.
_PIXEL_NAME = re.compile(r"(pixel|px)[_\-]?\d+([_x]\d+)*|\d+x\d+|\d+", re.IGNORECASE)
_RGB_NAME = re.compile(r"(pixel|px)_?\d+_\d+_[0-2]", re.IGNORECASE)


def _grid(n: int) -> tuple[int, int] | None:
    """(side, channels) when n pixel values form a square grey (side²) or RGB (3·side²) image."""
    side = math.isqrt(n)
    if side * side == n and side >= 4:
        return side, 1
    side = math.isqrt(n // 3)
    if n % 3 == 0 and side * side * 3 == n and side >= 4:
        return side, 3
    return None


def detect_modality(
    frame: pd.DataFrame, target: str, requested: str = "auto"
) -> tuple[Modality, list[int] | None, str]:
    """Return the modality, the image shape [h, w, c] when images, and the reason.

    Auto-detection calls a table images only when it is obvious: every feature is numeric, every
    name is a pixel name, and their count is a square (grey) or three squares (RGB, names
    ending in the channel), so a table of 64 measurements named f1..f64 stays tabular.
    """
    if requested not in REQUESTS:
        raise DataError(f"unknown modality {requested!r}; choose one of {', '.join(REQUESTS)}")
    features = [c for c in frame.columns if c != target]
    numeric = all(pd.api.types.is_numeric_dtype(frame[c]) for c in features)
    if requested == "tabular":
        return "tabular", None, "asked for tabular (--modality tabular)"
    if requested == "sequence":
        # Only on request: nothing in a table says its columns are ordered steps of one signal.
        if not (numeric and len(features) >= MIN_SEQUENCE_STEPS):
            raise DataError(
                f"--modality sequence needs at least {MIN_SEQUENCE_STEPS} numeric columns (the steps, in "
                f"order); got {len(features)} columns{'' if numeric else ' with non-numeric ones'}"
            )
        return (
            "sequence",
            None,
            f"asked for a sequence: {len(features)} numeric columns read in order by a 1-D convolution",
        )
    texts = [
        c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) and is_text(frame[c].dropna())
    ]
    if requested == "text":
        if not texts:
            raise DataError(
                "--modality text needs a free-text column (several words per value on average and more "
                "than 30 distinct values); none of the feature columns is one"
            )
        return "text", None, f"asked for text: a sequence model reads column {texts[0]!r} word by word"
    if texts and len(texts) == len(features):
        return "text", None, f"the only feature is free text ({texts[0]!r}): a sequence model reads it"
    if requested == "image":
        grid = _grid(len(features))
        if not (numeric and grid):
            raise DataError(
                f"--modality image needs numeric pixel columns whose count is a square (grey) or three "
                f"squares (RGB); got {len(features)} columns{'' if numeric else ' with non-numeric ones'}"
            )
        side, channels = grid
        return (
            "image",
            [side, side, channels],
            f"asked for images: {len(features)} pixel columns as {side}x{side}x{channels}",
        )
    names = [str(c) for c in features]
    grid = _grid(len(features))
    if not (numeric and grid and all(_PIXEL_NAME.fullmatch(n) for n in names)):
        return "tabular", None, "columns are ordinary features"
    side, channels = grid
    if channels == 3 and not all(_RGB_NAME.fullmatch(n) for n in names):
        return "tabular", None, "columns are ordinary features"
    if names[0].isdigit() and names != [str(i) for i in range(len(names))]:
        return "tabular", None, "numbered columns not in pixel order"
    kind = "grey" if channels == 1 else "RGB"
    return (
        "image",
        [side, side, channels],
        f"{len(features)} numeric pixel-named columns form a {side}x{side} {kind} image",
    )
