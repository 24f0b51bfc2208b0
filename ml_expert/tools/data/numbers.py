"""Numbers written for people ("$1,234.56", "45%", "(1,234)") read as numbers, column by column.

A column is read this way only when (nearly) all its non-missing values are in one unambiguous
format: one currency symbol or none, a "%" or none, comma thousands with a "." decimal, accounting
negatives in parentheses. The value-level rule is `number_parts` in the serving runtime
(runtime/inference.py, copied into every deployment package), so training and serving read a value
the same way; the column's format is recorded in its ColumnSpec (`number_format`) for serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from ml_expert.runtime.inference import CURRENCY_SYMBOLS, formatted_number, number_parts

MIN_READABLE_SHARE = 0.95
"""Share of a column's non-missing values that must read in its format (as for plain numbers)."""
SAMPLE_VALUES = 2000
"""The first values looked at before the whole column (a text column is set aside on these)."""
_NOT_PLAIN = "[,%()" + CURRENCY_SYMBOLS + "]"


class NumberFormat(BaseModel):
    """How a numeric column's values are written (the runtime reads each value through it)."""

    currency: str | None = Field(default=None, description="the column's currency symbol, may be omitted")
    percent: bool = Field(default=False, description="values carry a '%' (kept as written: 45% is 45.0)")
    example: str = Field(description="a made-up value in this format (never a value of the data)")


class NumberReading(BaseModel):
    """A column read as formatted numbers: its format and how many values could not be read."""

    format: NumberFormat
    unreadable: int = Field(description="non-missing values not in the format, made missing")


_W = r"[ \t\n\r\f\v]*"  # ASCII whitespace: Python's str.strip and \s take these (and more)
_Y = "[" + CURRENCY_SYMBOLS + "]"
_D = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_UNSIGNED = f"(?:{_Y}{_W}{_D}|{_D}{_W}{_Y}|{_D}(?:{_W}%)?)"
READABLE_ASCII = f"^{_W}(?:\\({_W}{_UNSIGNED}{_W}\\)|(?:[-+]{_W})?{_UNSIGNED}|{_Y}{_W}[-+]{_W}{_D}){_W}$"
"""The values `number_parts` reads, spelt with ASCII digits and whitespace only: one symbol before
or after the digits or a "%", at most one sign (before or after a leading symbol), or the unsigned
form in parentheses. No capture groups, so pyarrow's RE2 runs it as a DFA over a whole column; the
parts of a value it matches are found by plain substring tests (each of its characters can be in
one place only). A value it does not match (unicode digits or spaces, anything unreadable) goes
through `number_parts` itself. The tests check both ways agree value for value."""
_AROUND = "()+-% \t\n\r\f\v" + CURRENCY_SYMBOLS
SYMBOLS = ("", *CURRENCY_SYMBOLS)
"""Currency symbols by code (0: none), as column_parts gives them."""


@dataclass
class Parts:
    """`number_parts` of each value of a column, as arrays."""

    readable: np.ndarray  # bool: number_parts gives a reading
    symbol: np.ndarray  # int8: the currency symbol's code in SYMBOLS, 0 for none
    percent: np.ndarray  # bool
    number: np.ndarray | None  # float64, NaN where unreadable (None when not asked for)


def column_parts(values: pd.Series, numbers: bool = True) -> Parts:
    """`number_parts(v) if len(v) <= 400 else None` for each of `values` (strings), as arrays: the
    values READABLE_ASCII matches read by a few vectorised passes, the others one by one."""
    n = len(values)
    readable = np.zeros(n, dtype=bool)
    symbol = np.zeros(n, dtype="int8")
    percent = np.zeros(n, dtype=bool)
    number = np.full(n, np.nan) if numbers else None
    rest = np.ones(n, dtype=bool)
    array = _arrow_strings(values)
    if array is not None and n:

        def hits(found: Any) -> np.ndarray:
            return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)

        ok = hits(pc.match_substring_regex(array, READABLE_ASCII))
        ok &= np.asarray(pc.utf8_length(array).fill_null(0).to_numpy(zero_copy_only=False)) <= 400
        readable |= ok
        for code, sign in enumerate(SYMBOLS[1:], start=1):
            symbol[ok & hits(pc.match_substring(array, sign))] = code
        percent |= ok & hits(pc.match_substring(array, "%"))
        if number is not None:
            negative = hits(pc.match_substring(array, "-")) | hits(pc.match_substring(array, "("))
            # one run of digits: the commas inside dropped, what is around it trimmed
            digits = pc.utf8_trim(pc.replace_substring(array.filter(pa.array(ok)), ",", ""), _AROUND)
            magnitude = np.asarray(pc.cast(digits, pa.float64()).to_numpy(zero_copy_only=False))
            number[ok] = np.where(negative[ok], -magnitude, magnitude)
        rest = ~ok
    positions = np.flatnonzero(rest)
    for i, text in zip(positions, values.iloc[positions].to_numpy(dtype=object), strict=True):
        parts = number_parts(text) if len(text) <= 400 else None
        if parts is not None:
            readable[i], symbol[i], percent[i] = True, SYMBOLS.index(parts[1] or ""), parts[2]
            if number is not None:
                number[i] = parts[0]
    return Parts(readable=readable, symbol=symbol, percent=percent, number=number)


def _arrow_strings(values: pd.Series) -> Any:
    """`values` as a pyarrow string array (no copy when pandas holds them so already), or None for
    text with no UTF-8 form (a lone surrogate)."""
    try:
        array = pa.array(values.array) if isinstance(values.dtype, pd.StringDtype) else None
        if array is None or not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            array = pa.array(values.to_numpy(dtype=object), type=pa.string())
    except (pa.ArrowException, UnicodeError):
        return None
    return array


def detect_number_format(column: pd.Series) -> NumberFormat | None:
    """The one format a text column's numbers are written in, or None (not such a column).

    None also when plain `pandas.to_numeric` reads the column already (nothing to do), when two
    currency symbols are mixed (adding dollars to euros is a wrong answer), or when currency and
    percent are mixed. The same answer as reading each value with `number_parts` (column_parts)."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return None  # numbers, booleans, dates, categories (Parquet) are typed already
    values = column.dropna()
    if pd.api.types.infer_dtype(values, skipna=False) != "string":  # some values are not text
        values = values[values.map(lambda v: isinstance(v, str))]
    try:  # pandas' string dtype is Arrow's: UTF-8 only
        values = values.astype(str).str.strip()
    except UnicodeError:  # a value with no UTF-8 form (a lone surrogate, '\ud800') is no number: text
        return None
    values = values[values != ""]
    if values.empty:
        return None
    sample = values.head(SAMPLE_VALUES)  # a cheap look first: most text columns are not numbers
    if sample.map(lambda v: len(v) <= 400 and number_parts(v) is not None).mean() < MIN_READABLE_SHARE - 0.05:
        return None
    parts = column_parts(values, numbers=False)
    readable = int(parts.readable.sum())
    if readable < MIN_READABLE_SHARE * len(values):
        return None
    symbols = {SYMBOLS[code] for code in np.unique(parts.symbol[parts.readable]) if code}
    percent = bool(parts.percent[parts.readable].any())
    if len(symbols) > 1 or (symbols and percent):
        return None
    # pandas.to_numeric reads no value with a thousands comma, a symbol, "%" or parentheses
    plain = values[~values.str.contains(_NOT_PLAIN, regex=True)]
    if len(plain) >= readable and pd.to_numeric(plain, errors="coerce").notna().sum() >= readable:
        return None  # the plain reading reads as much: it stands
    currency = next(iter(symbols), None)
    example = f"{currency or ''}1,234.56" + ("%" if percent else "")
    return NumberFormat(currency=currency, percent=percent, example=example)


def read_formatted(column: pd.Series, number_format: NumberFormat) -> tuple[pd.Series, int]:
    """The column as float64 through the runtime's own reading (`formatted_number`: the same answer
    for each value); values not in the format become missing, and are counted."""
    spec = number_format.model_dump()
    numbers = np.full(len(column), np.nan)
    unreadable = 0

    def one_by_one(positions: np.ndarray) -> None:
        nonlocal unreadable
        for i, value in zip(positions, column.iloc[positions].to_numpy(dtype=object), strict=True):
            read = formatted_number(value, spec)
            unreadable += read is None
            numbers[i] = np.nan if read is None else read

    if pd.api.types.infer_dtype(column, skipna=True) == "string":
        text = column.notna().to_numpy()
    else:
        text = np.fromiter((isinstance(v, str) for v in column), dtype=bool, count=len(column))
    one_by_one(np.flatnonzero(~text))  # missing, numbers, anything else
    where = np.flatnonzero(text)
    parts = column_parts(column.iloc[where])
    assert parts.number is not None
    own = SYMBOLS.index(spec["currency"]) if spec.get("currency") in SYMBOLS else 0
    refused = ((parts.symbol != 0) & (parts.symbol != own)) | (parts.percent & (not spec.get("percent")))
    ok = parts.readable & ~refused
    numbers[where[ok]] = parts.number[ok]
    one_by_one(where[~ok])  # a blank is missing; anything else is not in the format
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
