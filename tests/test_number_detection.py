"""The vectorised reading of formatted numbers (tools/data/numbers.py) decides exactly what reading
each value with the runtime's `number_parts` / `formatted_number` decided, on awkward columns.

`per_value_format` and `per_value_read` are the per-value rules as they were before the column
was read in one regex pass: the reference the fast path must equal, value for value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml_expert.runtime.inference import formatted_number, number_parts
from ml_expert.tools.data.numbers import (
    MIN_READABLE_SHARE,
    SAMPLE_VALUES,
    SYMBOLS,
    NumberFormat,
    column_parts,
    detect_number_format,
    read_formatted,
    read_formatted_columns,
)


def per_value_format(column: pd.Series) -> NumberFormat | None:
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return None
    values = column.dropna()
    values = values[values.map(lambda v: isinstance(v, str))].astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return None
    sample = values.head(SAMPLE_VALUES)
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
        return None
    currency = next(iter(symbols), None)
    return NumberFormat(
        currency=currency, percent=percent, example=f"{currency or ''}1,234.56" + ("%" if percent else "")
    )


def per_value_read(column: pd.Series, number_format: NumberFormat) -> tuple[list[float], int]:
    read = [formatted_number(v, number_format.model_dump()) for v in column]
    return [math.nan if v is None else v for v in read], sum(v is None for v in read)


def _share(readable: list[str], other: list[str], n: int, share: float) -> list[str]:
    """n values, `share` of them cycled from `readable`, the rest from `other`, interleaved."""
    k = round(n * share)
    values = [readable[i % len(readable)] for i in range(k)] + [other[i % len(other)] for i in range(n - k)]
    return list(np.random.default_rng(n).permutation(np.array(values, dtype=object)))


DOLLARS = ["$1,234.56", "$ 12", "-$5", "$-7.25", "($1,200.50)", "12.5", "1,000,000", " $3 "]
AWKWARD = [
    "",
    "   ",
    "\t",
    "n/a",
    "call us",
    "€5",
    "5%",
    "$5%",
    "$5€",
    "(-5)",
    "--5",
    "1,5",
    "1.234,56",
    "1 234",
    "1.2k",
    "USD 5",
    "−5",  # unicode minus: not read
    "$\u22125",
    "\u00a0$5\u00a0",  # no-break spaces: Python's strip and \s take them
    "$\u00a05",
    "\u0661\u0662\u0663",  # Arabic-Indic digits: Python's \d and float() read them
    "$\u0665,\u0660\u0660\u0660",
    "\u2007(5)",
    "(5",
    "5)",
    "( 5 )",
    "((5))",
    "1e5",
    "nan",
    "inf",
    "-0",
    "(0)",
    ".5%",
    "5.",
    "1,23",
    "12,345,678.9",
    "+$5",
    "$+5",
    "-$-5",
    "9" * 401,
    "$" + "9" * 399,
    "123456789012345678901234567890.123456789",
    "0.1000000000000000055511151231257827",
    "\x1c5\x1f",
]


def _columns() -> dict[str, pd.Series]:
    n = 400
    cols = {
        "dollars": _share(DOLLARS, ["x"], n, 1.0),
        "dollars 96%": _share(DOLLARS, ["call us", "", "N/A "], n, 0.96),
        "dollars 94%": _share(DOLLARS, ["call us", "€5"], n, 0.94),
        "dollars 95% exactly": _share(DOLLARS, ["call us"], n, 0.95),
        "accounting": _share(["(1,234)", "1,234", "(12)", "5,000.5"], ["-"], n, 1.0),
        "percent": _share(["45%", "4.5 %", ".5%", "100%", "12"], ["?"], n, 0.97),
        "percent and dollars": _share(["45%", "$5"], ["?"], n, 1.0),
        "two currencies": _share(["$5", "€5", "5 €"], ["?"], n, 1.0),
        "euros after": _share(["12 €", "1,234.5€", "(3 €)"], ["?"], n, 1.0),
        "plain numbers": _share(["1", "2.5", "-3", "1e5"], ["?"], n, 1.0),
        "plain with a comma or two": _share(["1", "2.5", "-3"], ["1,234"], n, 0.97),
        "commas 96%": _share(["1,234", "12", "3,000,000.25"], ["1,5", "1.234,56"], n, 0.96),
        "unicode digits and spaces": _share(AWKWARD[17:24], ["$5"], n, 0.5),
        "awkward": _share(AWKWARD, DOLLARS, n, 0.5),
        "text": _share(["red", "blue car", "12 apples"], ["$5"], n, 0.9),
        "blank": _share(["", " "], ["x"], n, 1.0),
    }
    out = {name: pd.Series(values, dtype=object, name=name) for name, values in cols.items()}
    with_missing = out["dollars 96%"].copy()
    with_missing.iloc[::7] = None
    with_missing.iloc[3::11] = np.nan
    out["dollars with NaN and None"] = with_missing
    mixed_types = out["dollars"].copy()
    mixed_types.iloc[::5] = 7
    mixed_types.iloc[1::9] = 2.5
    mixed_types.iloc[2::13] = True
    out["dollars with numbers, booleans"] = mixed_types
    out["str dtype"] = out["dollars 96%"].astype("str")
    out["str dtype with missing"] = with_missing.astype("str")
    return out


@pytest.mark.parametrize("name", list(_columns()))
def test_detection_and_reading_equal_the_per_value_rule(name: str) -> None:
    column = _columns()[name]
    found = detect_number_format(column)
    assert found == per_value_format(column), name
    formats = [found, NumberFormat(currency="$", example="$1"), NumberFormat(percent=True, example="1%")]
    for fmt in [f for f in formats if f is not None]:
        numbers, unreadable = read_formatted(column, fmt)
        expected, expected_unreadable = per_value_read(column, fmt)
        assert unreadable == expected_unreadable, (name, fmt)
        np.testing.assert_array_equal(numbers.to_numpy(), np.array(expected, dtype="float64"))
        assert list(numbers.index) == list(column.index)


def test_the_fast_reading_of_each_value_is_number_parts() -> None:
    """Each awkward value, and 20,000 random strings over the format's characters, read as
    `number_parts` reads it: readable or not, value (bit for bit, -0.0 included), symbol, percent."""
    rng = np.random.default_rng(0)
    alphabet = list("0123456789,.()$€£%-+ \t") + ["\u00a0", "\u2212", "\u0661"]
    fuzz = ["".join(rng.choice(alphabet, size=rng.integers(1, 12))) for _ in range(20_000)]
    # pieces that make readable values likelier
    shaped = list("()-+ $€%") + ["1", "12", "1,234", ".5", "1.25", "1,000,000.5", "\u00a0"]
    fuzz += ["".join(rng.choice(shaped, size=rng.integers(1, 6))) for _ in range(20_000)]
    digits = [f"{rng.uniform(0, 10.0 ** rng.integers(1, 20)):,.{rng.integers(0, 18)}f}" for _ in range(5_000)]
    values = AWKWARD + DOLLARS + fuzz + digits + ["$" + d for d in digits]
    parts = column_parts(pd.Series(values, dtype=object))
    for i, text in enumerate(values):
        expected = number_parts(text) if len(text) <= 400 else None
        assert parts.readable[i] == (expected is not None), repr(text)
        if expected is not None:
            assert math.copysign(1, parts.number[i]) == math.copysign(1, expected[0]), repr(text)
            symbol = SYMBOLS[parts.symbol[i]] or None
            assert (parts.number[i], symbol, parts.percent[i]) == expected, repr(text)
    assert parts.readable.sum() > 5_000  # the fuzz does reach readable values


def test_plain_reading_reads_no_value_with_a_symbol_comma_percent_or_parenthesis() -> None:
    """The detection runs pandas.to_numeric only on values without those characters: the count it
    compares is the same only if to_numeric reads none of them."""
    rng = np.random.default_rng(1)
    alphabet = list("0123456789.eE-+ ") + list(",%()$€£¥₹")
    fuzz = ["".join(rng.choice(alphabet, size=rng.integers(1, 8))) for _ in range(20_000)]
    marked = pd.Series([v for v in fuzz if any(c in v for c in ",%()$€£¥₹")] + ["1,234", "(5)", "5%", "$5"])
    assert pd.to_numeric(marked, errors="coerce").isna().all()


def test_a_lone_surrogate_is_read_one_by_one() -> None:
    """Text pyarrow cannot hold (no UTF-8 form) is read value by value, as before."""
    column = pd.Series(["$5", "$6", "\ud800", "$7"] * 30, dtype=object)
    fmt = NumberFormat(currency="$", example="$1")
    numbers, unreadable = read_formatted(column, fmt)
    assert unreadable == 30 and numbers.iloc[0] == 5.0


def test_a_column_with_a_lone_surrogate_is_text() -> None:
    """#17: a value with no UTF-8 form made detection raise UnicodeEncodeError (pandas' string dtype
    is Arrow's); the column is text, whatever its other values are, and nothing raises."""
    numbers = pd.Series(["$1,234", "$5", "\ud800", "$7"] * 100, dtype=object)
    words = pd.Series(["red", "\ud800", "blue"] * 10, dtype=object)
    assert detect_number_format(numbers) is None
    assert detect_number_format(words) is None
    frame = pd.DataFrame({"price": numbers, "colour": pd.Series(["red"] * 400, dtype=object)})
    read, readings = read_formatted_columns(frame, ["price", "colour"])
    assert readings == {} and read["price"].iloc[2] == "\ud800"
