"""The input schema: which raw columns a model takes and how they are typed.

The same schema drives training, every export, `schema.json` in the deployment package and
the serving-time validation, so a column cannot change meaning between them.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from ml_expert.runtime.inference import category_text, code_count, composite_part, iso_date_text
from ml_expert.tools.data.numbers import NumberFormat, read_formatted
from ml_expert.tools.data.text import token_ids, vocabulary_index, words

SCHEMA_FORMAT = "ml-expert-schema/1"
Task = Literal["classification", "regression", "clustering"]
DatetimePart = Literal["year", "month", "day", "weekday", "hour", "epoch_days"]
DATETIME_PARTS: tuple[str, ...] = ("year", "month", "day", "weekday", "hour", "epoch_days")
DATETIME_REGEX = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"  # date
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # time, zone ignored
)
_EPOCH = _dt.date(1970, 1, 1).toordinal()


class ColumnSpec(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    key: str = Field(default="", description="identifier-safe name used inside the model and its ONNX inputs")
    categories: list[str] | None = Field(
        default=None, description="categories seen in training (categorical columns only)"
    )
    derive: DatetimePart | Literal["word", "token", "part", "count"] | None = Field(
        default=None,
        description="numeric feature computed from the raw text in column `name`: a part of an ISO "
        "date/time; (`word`) 1.0 when the text holds `word`, else 0.0; or (`token`) the id of the "
        "text's word at `position` in the schema's vocabulary for `name` (the serving runtime "
        "computes each the same way); or (`part`) the text's `position`-th part when split at `separator` "
        "(a composite code such as B/0/P), numeric or categorical by `kind`; or (`count`) how many "
        "training rows share the code, from `counts`",
    )
    word: str | None = Field(
        default=None, description="the vocabulary word this feature flags (derive == 'word' only)"
    )
    position: int | None = Field(
        default=None, description="the word's position (derive 'token'), the part's position (derive 'part')"
    )
    separator: str | None = Field(default=None, description="what splits a composite code (derive 'part')")
    counts: dict[str, int] | None = Field(
        default=None,
        description="training rows per code, for codes at least MIN_CATEGORY_COUNT rows share (derive "
        "'count'); any other code counts 0",
    )
    date_order: Literal["dmy", "mdy", "ymd"] | None = Field(
        default=None,
        description="a date column written 31/12/2024 (dmy), 12/31/2024 (mdy) or 2024/12/31 (ymd): the "
        "order of day and month, read before the date parts are taken; None: ISO dates",
    )
    number_format: NumberFormat | None = Field(
        default=None,
        description="a numeric column whose values are written for people ($1,234.56, 45%, (1,234)): "
        "how to read them (the runtime's `formatted_number`); None: plain numbers",
    )


class InputSchema(BaseModel):
    format: str = SCHEMA_FORMAT
    task: Task
    target: str
    columns: list[ColumnSpec]
    classes: list[Any] | None = Field(
        default=None, description="original class labels; the model predicts their index"
    )
    vocabularies: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per text column fed to a sequence model: word i has id i + 2 (1 unknown, 0 padding)",
    )

    @model_validator(mode="after")
    def _assign_keys(self) -> InputSchema:
        """Column names such as "mean radius" are not valid ONNX input names: give each a safe key."""
        taken: set[str] = set()
        for col in self.columns:
            if col.derive == "word":
                key = col.key or safe_key(f"{col.name}__w_{col.word}")
            elif col.derive == "token":
                key = col.key or safe_key(f"{col.name}__t{col.position}")
            elif col.derive == "part":
                key = col.key or safe_key(f"{col.name}__p{col.position}")
            elif col.derive == "count":
                key = col.key or safe_key(f"{col.name}__count")
            else:
                key = col.key or safe_key(f"{col.name}__{col.derive}" if col.derive else col.name)
            base, n = key, 1
            while key in taken:
                n += 1
                key = f"{base}_{n}"
            taken.add(key)
            col.key = key
        return self

    def with_columns(self, added: list[ColumnSpec]) -> InputSchema:
        """This schema with `added` columns after its own (keys kept, the new ones assigned)."""
        dumped = self.model_dump()
        return InputSchema.model_validate(
            {**dumped, "columns": [*dumped["columns"], *(c.model_dump() for c in added)]}
        )

    @property
    def numeric(self) -> list[str]:
        """Keys of the numeric columns that are measurements (token ids excluded)."""
        return [c.key for c in self.columns if c.kind == "numeric" and c.derive != "token"]

    @property
    def token_ids(self) -> list[str]:
        """Keys of the word-id columns of a sequence model, in position order."""
        return [c.key for c in self.columns if c.derive == "token"]

    @property
    def categorical(self) -> list[str]:
        return [c.key for c in self.columns if c.kind == "categorical"]

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]

    @property
    def names(self) -> list[str]:
        """The raw column names a caller sends (a date column feeding several features, once)."""
        return list(dict.fromkeys(c.name for c in self.columns))


def safe_key(name: str) -> str:
    key = re.sub(r"[^0-9A-Za-z_]", "_", str(name)) or "col"
    return key if key[0].isalpha() or key[0] == "_" else f"c_{key}"


def to_model_frame(frame: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """Coerce rows to the dtypes the pipeline and its ONNX export take, columns renamed to keys.

    Numeric columns become float64 (unparseable text becomes NaN; a column with a `number_format`
    is read through it, "$1,234.56" -> 1234.56); categorical columns become
    strings with missing as "" (skl2onnx cannot impute NaN in string tensors). This is a pure
    function of the schema, with no statistics, so it is safe to apply anywhere.
    """
    out: dict[str, Any] = {}
    word_sets: dict[str, list[set[str]]] = {}
    sequences: dict[str, np.ndarray] = {}
    for col in schema.columns:
        values = frame[col.name] if col.name in frame.columns else frame[col.key]
        if col.derive == "token":
            if col.name not in sequences:
                length = sum(1 for c in schema.columns if c.derive == "token" and c.name == col.name)
                index = vocabulary_index(schema.vocabularies.get(col.name, []))
                sequences[col.name] = np.array(
                    [token_ids(v, index, length) for v in values], dtype="float64"
                ).reshape(len(values), length)
            out[col.key] = sequences[col.name][:, col.position]
        elif col.derive == "part":
            parts = [composite_part(v, col.separator or "", col.position or 0) for v in values]
            if col.kind == "numeric":
                numeric = pd.to_numeric(pd.Series(parts, dtype=object), errors="coerce").astype("float64")
                out[col.key] = numeric.replace([np.inf, -np.inf], np.nan).to_numpy()
            else:  # missing is "" as for every categorical column (a list: pandas would make None NaN)
                out[col.key] = np.array(["" if p is None else p for p in parts], dtype=object)
        elif col.derive == "count":
            out[col.key] = np.array([code_count(v, col.counts or {}) for v in values], dtype="float64")
        elif col.derive == "word":
            if col.name not in word_sets:
                word_sets[col.name] = [set(words(v)) for v in values]
            out[col.key] = np.array([col.word in row for row in word_sets[col.name]], dtype="float64")
        elif col.derive:
            out[col.key] = np.array(
                [datetime_part(v, col.derive, col.date_order) for v in values], dtype="float64"
            )
        elif col.kind == "numeric" and col.number_format is not None:
            numeric, _ = read_formatted(values, col.number_format)
            out[col.key] = numeric.replace([np.inf, -np.inf], np.nan)
        elif col.kind == "numeric":
            numeric = pd.to_numeric(values, errors="coerce").astype("float64")
            out[col.key] = numeric.replace([np.inf, -np.inf], np.nan)
        else:
            out[col.key] = values.map(category_text).astype(object)
    return pd.DataFrame(out, index=frame.index)


def datetime_part(value: Any, part: str, order: str | None = None) -> float:
    """One numeric feature of an ISO date/time text ("2024-03-05", "2024-03-05 13:45:00"); NaN if not one.
    With `order` (dmy or mdy) a text such as 05/03/2024 is read in that order first.

    A plain function of the value (no time zones, no locale), mirrored line for line in
    runtime/inference.py so training and serving compute the same number.
    """
    value = iso_date_text(value, order)
    if isinstance(value, _dt.datetime):  # also pandas Timestamp; NaT gives "NaT", no match
        value = value.isoformat(" ")
    elif isinstance(value, _dt.date):
        value = value.isoformat()
    if not isinstance(value, str):
        return math.nan
    match = DATETIME_REGEX.fullmatch(value.strip())
    if not match:
        return math.nan
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = int(match[4] or 0), int(match[5] or 0), int(match[6] or 0)
    try:
        date = _dt.date(year, month, day)
    except ValueError:
        return math.nan
    if hour > 23 or minute > 59 or second > 59:
        return math.nan
    if part == "year":
        return float(year)
    if part == "month":
        return float(month)
    if part == "day":
        return float(day)
    if part == "weekday":
        return float(date.weekday())
    if part == "hour":
        return float(hour)
    return float(date.toordinal() - _EPOCH) + (hour * 3600 + minute * 60 + second) / 86400.0


def to_onnx_feed(frame: pd.DataFrame, schema: InputSchema) -> dict[str, np.ndarray]:
    """One [N, 1] tensor per column: float32 for numeric, string for categorical."""
    model_frame = to_model_frame(frame, schema)
    feed: dict[str, np.ndarray] = {}
    for col in schema.columns:
        values = model_frame[col.key].to_numpy()
        if col.kind == "numeric":
            feed[col.key] = values.astype(np.float32).reshape(-1, 1)
        else:
            feed[col.key] = values.astype(object).reshape(-1, 1)
    return feed
