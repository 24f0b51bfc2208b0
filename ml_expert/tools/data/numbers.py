"""Numbers written for people ("$1,234.56", "45%", "(1,234)") read as numbers, column by column.

A column is read this way only when (nearly) all its non-missing values are in one unambiguous
format: one currency symbol or none, a "%" or none, comma thousands with a "." decimal, accounting
negatives in parentheses. The value-level rule is `number_parts` in the serving runtime
(runtime/inference.py, copied into every deployment package), so training and serving read a value
the same way; the column's format is recorded in its ColumnSpec (`number_format`) for serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ml_expert.runtime.inference import formatted_number, number_parts

MIN_READABLE_SHARE = 0.95
"""Share of a column's non-missing values that must read in its format (as for plain numbers)."""
SAMPLE_VALUES = 2000
"""The first values looked at before the whole column (a text column is set aside on these)."""


class NumberFormat(BaseModel):
    """How a numeric column's values are written (the runtime reads each value through it)."""

    currency: str | None = Field(default=None, description="the column's currency symbol, may be omitted")
    percent: bool = Field(default=False, description="values carry a '%' (kept as written: 45% is 45.0)")
    example: str = Field(description="a made-up value in this format (never a value of the data)")


class NumberReading(BaseModel):
    """A column read as formatted numbers: its format and how many values could not be read."""

    format: NumberFormat
    unreadable: int = Field(description="non-missing values not in the format, made missing")


def detect_number_format(column: pd.Series) -> NumberFormat | None:
    """The one format a text column's numbers are written in, or None (not such a column).

    None also when plain `pandas.to_numeric` reads the column already (nothing to do), when two
    currency symbols are mixed (adding dollars to euros is a wrong answer), or when currency and
    percent are mixed."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return None  # numbers, booleans, dates, categories (Parquet) are typed already
    values = column.dropna()
    values = values[values.map(lambda v: isinstance(v, str))].astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return None
    sample = values.head(SAMPLE_VALUES)  # a cheap look first: most text columns are not numbers
    if sample.map(lambda v: len(v) <= 400 and number_parts(v) is not None).mean() < MIN_READABLE_SHARE - 0.05:
        return None
    parsed = values.map(lambda v: number_parts(v) if len(v) <= 400 else None)
    readable = parsed.dropna()
    if len(readable) < MIN_READABLE_SHARE * len(values):
        return None
    symbols = {p[1] for p in readable if p[1]}
    percent = any(p[2] for p in readable)
    if len(symbols) > 1 or (symbols and percent):
        return None
    if pd.to_numeric(values, errors="coerce").notna().sum() >= len(readable):
        return None  # the plain reading reads as much: it stands
    currency = next(iter(symbols), None)
    example = f"{currency or ''}1,234.56" + ("%" if percent else "")
    return NumberFormat(currency=currency, percent=percent, example=example)


def read_formatted(column: pd.Series, number_format: NumberFormat) -> tuple[pd.Series, int]:
    """The column as float64 through the runtime's own reading; values not in the format become
    missing, and are counted."""
    spec = number_format.model_dump()
    read = [formatted_number(v, spec) for v in column]  # a list: pandas would turn None into NaN
    unreadable = sum(v is None for v in read)
    numbers = np.array([np.nan if v is None else v for v in read], dtype="float64")
    return pd.Series(numbers, index=column.index, name=column.name), unreadable


def read_formatted_columns(
    frame: pd.DataFrame, columns: list[str]
) -> tuple[pd.DataFrame, dict[str, NumberReading]]:
    """`frame` with each of `columns` that holds formatted numbers read as float64."""
    readings: dict[str, NumberReading] = {}
    replaced: dict[str, Any] = {}
    for name in columns:
        found = detect_number_format(frame[name])
        if found is None:
            continue
        replaced[name], unreadable = read_formatted(frame[name], found)
        readings[name] = NumberReading(format=found, unreadable=unreadable)
    return (frame.assign(**replaced) if replaced else frame), readings


def describe(name: str, reading: NumberReading) -> str:
    """The decision in words: read price as a number ($1,234.56 -> 1234.56), 3 values unreadable."""
    fmt = reading.format
    shown = fmt.example
    value = "1234.56"
    what = f"read {name!r} as a number ({shown} -> {value}"
    if fmt.currency:
        what += f"; the {fmt.currency} sign is dropped"
    if fmt.percent:
        what += "; a percentage is kept as written, not divided by 100"
    what += "; comma thousands separators, (1,234) is -1234)"
    if reading.unreadable:
        n = reading.unreadable
        what += (
            f"; {n} value{'s' if n != 1 else ''} not in that format {'are' if n != 1 else 'is'} made missing"
        )
    return what
