"""Phase 1 as one deterministic tool: load, profile, validate, clean, split, fit preprocessing.

Writes the cleaned splits and the preprocessed arrays under `data_dir` and returns a summary
that holds figures only, never rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ml_expert.errors import DataError, UsageError
from ml_expert.hashing import sha256_file
from ml_expert.tools.data.cleaning import OutlierReport, drop_outliers
from ml_expert.tools.data.composite import CompositeDecision, find_composites, measure_composites
from ml_expert.tools.data.counts import CodeCounts, find_count_columns
from ml_expert.tools.data.loading import LoadInfo, load_source
from ml_expert.tools.data.measure import measure_added_columns
from ml_expert.tools.data.modality import SequenceColumns, detect_modality
from ml_expert.tools.data.numbers import (
    NumberReading,
    detect_number_format,
    read_formatted,
    read_formatted_columns,
)
from ml_expert.tools.data.numbers import describe as describe_reading
from ml_expert.tools.data.preprocessing import (
    MAX_CATEGORIES,
    MIN_CATEGORY_COUNT,
    build_preprocessor,
    fitted_categories,
    transform,
)
from ml_expert.tools.data.profiling import (
    column_roles,
    correlated_pairs,
    date_order,
    imbalance_ratio,
    leakage_suspects,
    profile_table,
)
from ml_expert.tools.data.schema import ColumnSpec, InputSchema, datetime_part, to_model_frame
from ml_expert.tools.data.splits import read_frame, write_array, write_frame
from ml_expert.tools.data.splitting import SplitSizes, split_frame
from ml_expert.tools.data.task import detect_task
from ml_expert.tools.data.text import (
    MAX_WORDS,
    SEQUENCE_MAX_WORDS,
    VOCABULARY_EXCESS_LIMIT,
    TokenShare,
    VocabularyCheck,
    VocabularyExtension,
    extended_vocabulary,
    fit_vocabulary,
    sequence_length,
    text_figures,
    token_share,
    vocabulary_extension,
)
from ml_expert.tools.mapping import MapFn, sequential_map
from ml_expert.tools.scoring import DEFAULT_METRIC

TARGET_COLUMN = "__target__"
DEFAULT_TARGET = "target"
NO_TARGET = "__no_target__"
"""Clustering: the constant placeholder standing in for a target inside preparation only."""
TASKS = ("auto", "classification", "regression", "clustering")


class PreparedData(BaseModel):
    source: str
    fingerprint: str
    task: str
    task_reason: str
    modality: str
    modality_reason: str
    image_shape: list[int] | None
    input_schema: InputSchema
    profile: dict[str, Any]
    dropped_columns: dict[str, str]
    leakage_suspects: dict[str, str]
    rows_in: int
    duplicates_removed: int
    rare_classes_dropped: dict[str, int] | None = Field(
        default=None, description="classes on fewer than RARE_CLASS_ROWS rows, dropped: how many, their rows"
    )
    nonfinite_values: dict[str, int] = Field(
        default_factory=dict, description="numeric column -> infinite or out-of-range values made missing"
    )
    rows_without_target: int
    split_sizes: SplitSizes
    splits_disjoint: bool
    n_features_out: int
    files: dict[str, str]
    file_hashes: dict[str, str] = Field(
        default_factory=dict, description="SHA-256 of each file in `files`, checked before every read"
    )
    load: LoadInfo | None = None
    outliers: OutlierReport = Field(default_factory=OutlierReport)
    datetime_columns: dict[str, list[str]] = Field(default_factory=dict)
    sequence: SequenceColumns | None = Field(
        default=None,
        description="modality text: the column read word by word, its length and vocabulary size",
    )
    findings: list[dict[str, Any]] = Field(default_factory=list)
    composite_codes: CompositeDecision | None = Field(
        default=None, description="composite code columns found on training rows; whether their parts stay"
    )
    code_counts: CodeCounts | None = Field(
        default=None, description="code count columns found on training rows; whether they stay"
    )
    kept_columns: dict[str, str] = Field(
        default_factory=dict,
        description="columns a heuristic would have dropped, kept because the user said so (--keep)",
    )
    target_spellings_merged: int = Field(
        default=0,
        description="target labels rewritten: surrounding spaces stripped, or a spelling that differs "
        "from a more frequent one only in case ('Yes ' and 'YES' -> 'yes') changed to it",
    )
    formatted_numbers: dict[str, NumberReading] = Field(
        default_factory=dict,
        description="columns (the target too) of numbers written as text ($1,234.56, 45%): their "
        "format and how many values could not be read (made missing)",
    )
    vocabulary_check: VocabularyCheck | None = Field(
        default=None,
        description="--from a release that reads text: its vocabulary's unknown training tokens per "
        "column, and whether the run reads the text with it",
    )


# A class needs this many rows: the stratified 70/15/15 split then leaves it at least MIN_PER_CLASS
# training rows (the data gate's minimum) and a row for validation and test.
RARE_CLASS_ROWS = 5
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _nonfinite_as_missing(frame: pd.DataFrame, features: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """±inf and numbers beyond float32's range in numeric features become missing (every model
    computes in float32 or float64 through float32 exports): counted per column."""
    counts: dict[str, int] = {}
    replaced: dict[str, pd.Series] = {}
    for column in features:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        numbers = values.astype("float64")
        bad = numbers.notna() & ~(numbers.abs() <= FLOAT32_MAX)
        if bad.any():
            counts[str(column)] = int(bad.sum())
            replaced[column] = numbers.mask(bad)
    return (frame.assign(**replaced) if replaced else frame), counts


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of the table (values and column names), independent of the file's bytes."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def prepare_data(
    source: str | None,
    target: str,
    seed: int,
    data_dir: Path,
    modality: str = "auto",
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
    metric: str | None = None,
    task: str = "auto",
    drop_outliers_rows: bool = False,
    read_budget: int | None = None,
    map_fn: MapFn = sequential_map,
    released: InputSchema | None = None,
    released_name: str = "the release",
    released_network: bool = False,
) -> PreparedData:
    """`keep` names columns no heuristic may drop (leakage suspect, ID-like, constant); `drop`
    names feature columns removed before anything looks at them. The user's word wins.
    `metric`: the user's (None: the task's default); it judges whether derived features stay.
    `task`: auto (from the target column), classification, regression or clustering; with auto,
    no target given (the default name) and no `target` column, the rows are clustered.
    `drop_outliers_rows`: drop training rows with |z| > 3 (default: flag and keep them).
    `read_budget`: bytes the loaded table may take; a Parquet dataset larger than that is read as
    a seeded sample that fits, its files read through `map_fn` (None: read whole, as given).
    `released`: the schema of the model `--from` continues (`released_name`, its version): a text
    column it reads is measured against its vocabulary and read with it within the rule
    (_released_text); past it, a released network (`released_network`: it reads the word ids
    through an embedding) has its vocabulary extended by the new words where the rule allows."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    frame, path, info = load_source(source, target, seed=seed, budget_bytes=read_budget, map_fn=map_fn)
    forced_task: tuple[str, str] | None = None
    if task == "auto" and target == DEFAULT_TARGET and target not in frame.columns:
        task = "clustering"
        forced_task = (task, f"no target given and the file has no {DEFAULT_TARGET!r} column: clustering")
    elif task != "auto":
        forced_task = (task, f"asked for (task {task})")
    label_held_aside: str | None = None
    if task == "clustering":
        # No label to learn: a column named as the target is held aside (never a feature), and a
        # constant placeholder keeps the one code path (fingerprint taken before it is added).
        label_held_aside = target if target in frame.columns else None
        frame = frame.drop(columns=[target]) if label_held_aside else frame
        data_fingerprint = fingerprint(frame)
        target = NO_TARGET
        frame = frame.assign(**{NO_TARGET: 0.0})
    if target not in frame.columns:
        stripped = {str(c).strip().lower(): c for c in frame.columns}
        hint = f" (did you mean {stripped[target.lower()]!r}?)" if target.lower() in stripped else ""
        raise DataError(
            f"target column {target!r} not found{hint}; the columns are: "
            f"{_listed(frame.columns)}. Pass --target NAME"
        )
    for flag, names in (("--keep", keep), ("--drop", drop)):
        unknown = [n for n in names if n not in frame.columns or n == target]
        if unknown:
            raise DataError(
                f"{flag} {', '.join(map(repr, unknown))}: not a feature column; the columns are: "
                f"{_listed(c for c in frame.columns if c != target)}"
            )
    rows_in = len(frame)
    if task != "clustering":
        data_fingerprint = fingerprint(frame)  # of the data as given, before the user's --drop
    frame = frame.drop(columns=list(drop))
    raw = frame  # the values as a caller sends them (val_raw below): "$1,234.56" stays text there
    frame, formatted = _read_formatted_target(frame, target, task)
    frame, spellings = _merge_label_spellings(frame, target, task)
    no_target = int(frame[target].isna().sum())
    if no_target == rows_in:
        raise DataError(
            f"target column {target!r} is entirely missing; choose a column with labels (--target)"
        )
    frame = frame[frame[target].notna()]
    features = [c for c in frame.columns if c != target]
    if not features:
        raise DataError("no feature columns: the table holds only the target; add the columns to learn from")
    frame, formatted_features = read_formatted_columns(frame, features)
    formatted.update(formatted_features)
    frame, nonfinite = _nonfinite_as_missing(frame, features)
    if frame[features].isna().all().all():
        raise DataError("every feature value is missing; the rows with a target have no feature values")
    task, task_reason = forced_task or detect_task(frame[target])  # type: ignore[assignment]
    if label_held_aside:
        task_reason += f"; column {label_held_aside!r} is held aside, not clustered on"
    if task == "classification":
        n_classes = frame[target].nunique()
        if n_classes < 2:
            raise DataError(
                f"the target {target!r} has one class only; a classifier needs at least two: "
                "add rows of another class or choose another --target"
            )
        if n_classes == len(frame) and len(frame) > 2:
            raise DataError(
                f"the target {target!r} is unique on every row ({n_classes} values); it is an ID, not a "
                "class label: choose another --target"
            )
    if info.image_shape is not None and modality != "tabular":
        h, w, c = info.image_shape
        kind, image_shape = "image", info.image_shape
        modality_reason = (
            f"{info.format} of {h}x{w}x{c} images; pixels kept as {h * w * c} columns in row-major order"
        )
    else:
        kind, image_shape, modality_reason = detect_modality(frame, target, modality)
    before = len(frame)
    frame = frame.drop_duplicates()
    duplicates = before - len(frame)

    # A class on fewer than RARE_CLASS_ROWS rows cannot be learnt and judged: it is dropped (as
    # AutoGluon drops such classes) when two or more classes remain, else refused below. Only counts
    # are recorded: a class seen on a few rows names those rows.
    rare_rows = rare_count = 0
    if task == "classification":
        counts = frame[target].value_counts()
        rare = counts[counts < RARE_CLASS_ROWS]
        if len(rare) and len(counts) - len(rare) >= 2:
            rare_rows, rare_count = int(rare.sum()), len(rare)
            frame = frame[~frame[target].isin(rare.index)]

    classes: list[Any] | None = None
    y_all = frame[target]
    if task == "classification":
        classes = sorted({_plain(v) for v in y_all.unique()}, key=lambda v: (str(type(v)), v))
        index = {c: i for i, c in enumerate(classes)}
        y_all = y_all.map(lambda v: index[_plain(v)]).astype("int64")
    else:
        y_all = pd.to_numeric(y_all, errors="coerce")
        if y_all.isna().any():
            raise DataError(f"the regression target {target!r} holds non-numeric values; clean or drop them")
        y_all = y_all.astype("float64")

    # Split first: every decision about the columns (ID-like, constant, leakage, dates) is then
    # taken on the training rows only, like every fitted statistic.
    labels = pd.DataFrame({TARGET_COLUMN: y_all.to_numpy()}, index=frame.index)
    train_rows, val_rows, test_rows = (part.index for part in split_frame(labels, TARGET_COLUMN, task, seed))
    fit_rows = frame.loc[train_rows]
    if kind in ("image", "sequence"):
        # Pixels (steps) are all features: a border pixel that is always 0 is still part of the image.
        kinds, dropped = {c: "numeric" for c in frame.columns if c != target}, {}
        suspects: dict[str, str] = {}
    else:
        kinds, dropped = column_roles(fit_rows, target)
        # clustering has no target a feature could leak
        suspects = {} if task == "clustering" else leakage_suspects(fit_rows, target, kinds, task)
    kept: dict[str, str] = {}
    for name, why in suspects.items():
        if name in keep:
            kept[name] = f"leakage suspect: {why}"
            continue
        kinds.pop(name, None)
        dropped[name] = f"leakage suspect: {why}"
    for name in [n for n in dropped if n in keep]:
        kept[name] = dropped.pop(name)
        kinds[name] = _kept_kind(fit_rows[name])
    dropped.update({name: "dropped by the user (--drop)" for name in drop})
    if not kinds:
        raise DataError(
            "no usable feature columns: "
            + "; ".join(f"{k}: {v}" for k, v in dropped.items())
            + ". Add informative feature columns"
        )
    profile = profile_table(frame, target, task)
    if task == "clustering":
        profile["column_profiles"].pop(NO_TARGET, None)
        profile.pop("target_stats", None)
        profile["columns"] -= 1

    columns, datetimes, texts = _column_specs(fit_rows, kinds, formatted)
    vocabularies: dict[str, list[str]] = {}
    sequence: SequenceColumns | None = None
    if kind == "text":
        columns, vocabularies, sequence = _sequence_specs(fit_rows, kinds, columns)
    elif kind == "sequence":
        sequence = SequenceColumns(
            column=None,
            length=len(columns),
            rule=f"the {len(columns)} numeric columns, in file order, are the steps of one sequence",
        )
    vocabulary_check: VocabularyCheck | None = None
    if released is not None:
        vocabulary_check, columns, vocabularies, sequence = _released_text(
            fit_rows, kinds, columns, vocabularies, sequence, released, released_name, released_network
        )
    for name in kinds.keys() - {c.name for c in columns}:
        # a text column none of whose words is on MIN_CATEGORY_COUNT training rows
        kinds.pop(name)
        dropped[name] = (
            f"free text without a word on >= {MIN_CATEGORY_COUNT} training rows: nothing to learn from "
            "that may be stored"
        )
    if not columns:
        raise DataError(
            "no usable feature columns: "
            + "; ".join(f"{k}: {v}" for k, v in dropped.items())
            + ". Add informative feature columns"
        )
    schema = InputSchema(
        task=task,
        target=(label_held_aside or "") if task == "clustering" else target,
        columns=columns,
        classes=classes,
        vocabularies=vocabularies,
    )
    composites = code_counts = None
    if kind == "tabular" and task != "clustering":  # derived code features stay only if they help predict y
        codes = [n for n, k in kinds.items() if k == "categorical"]
        codes += [n for n, why in dropped.items() if why.startswith("ID-like") and n not in suspects]
        y_fit = y_all.loc[train_rows].to_numpy()
        found = find_composites(fit_rows, codes)
        if found:
            composites = measure_composites(
                fit_rows, y_fit, schema, found, metric or DEFAULT_METRIC[task], seed
            )
            if composites.kept:
                schema = schema.with_columns([spec for c in found for spec in c.kept_parts])
        counted, why = find_count_columns(fit_rows, codes)
        if counted:
            helps, rule = measure_added_columns(
                fit_rows, y_fit, schema, counted, metric or DEFAULT_METRIC[task], seed, "the code counts"
            )
            code_counts = CodeCounts(columns=counted, rules=why, kept=helps, rule=rule)
            if helps:
                schema = schema.with_columns(counted)
    work = to_model_frame(frame, schema)
    work[TARGET_COLUMN] = y_all.to_numpy()
    train, val, test = work.loc[train_rows], work.loc[val_rows], work.loc[test_rows]
    if kind in ("image", "sequence"):
        outliers = OutlierReport(
            action=f"not applied to {'pixels' if kind == 'image' else 'sequence steps'} "
            "(a peak is part of the signal, not an error)"
        )
    else:
        measured = [c.key for c in schema.columns if c.kind == "numeric" and not c.derive]
        train, outliers = drop_outliers(train, measured, TARGET_COLUMN, task, apply=drop_outliers_rows)
        if classes:
            labels = [classes[i] for i in outliers.rare_classes]
            outliers = outliers.model_copy(update={"rare_classes": labels})

    preprocessor = build_preprocessor(schema, scale=True)
    preprocessor.fit(train[schema.keys])
    categories = fitted_categories(preprocessor, schema)
    schema = schema.model_copy(
        update={
            "columns": [c.model_copy(update={"categories": categories.get(c.key)}) for c in schema.columns]
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for name, part in (("train", train), ("val", val), ("test", test)):
        file = data_dir / f"{name}.parquet"
        hashes[name] = write_frame(part, file)
        files[name] = str(file)
    # Validation rows as a caller would send them (raw names, dates as text): the package is
    # timed and checked on these. Never the test rows, and never copied into the package.
    raw_names = list(dict.fromkeys(schema.names))
    hashes["val_raw"] = write_frame(
        _sendable(raw.loc[val_rows, raw_names], work.loc[val_rows], schema), data_dir / "val_raw.parquet"
    )
    files["val_raw"] = str(data_dir / "val_raw.parquet")
    if released is not None and vocabulary_check is not None and not vocabulary_check.adopted:
        # The test rows as the release reads them (its text vocabulary, new words unknown): the
        # release gate still scores it on the same new test rows as the model that learnt the new
        # vocabulary or the release extended by it.
        seen = work.loc[test_rows]
        as_released = to_model_frame(frame.loc[test_rows], released)[released.keys]
        as_released[TARGET_COLUMN] = seen[TARGET_COLUMN].to_numpy()
        hashes["test_released"] = write_frame(as_released, data_dir / "test_released.parquet")
        files["test_released"] = str(data_dir / "test_released.parquet")
    for name, part in (("train", train), ("val", val)):
        file = data_dir / f"X_{name}.npy"
        hashes[f"X_{name}"] = write_array(transform(preprocessor, part[schema.keys]), file)
        files[f"X_{name}"] = str(file)
    joblib.dump(preprocessor, data_dir / "preprocessor.joblib")
    files["preprocessor"] = str(data_dir / "preprocessor.joblib")
    hashes["preprocessor"] = sha256_file(data_dir / "preprocessor.joblib")
    (data_dir / "schema.json").write_text(schema.model_dump_json(indent=2))
    files["schema"] = str(data_dir / "schema.json")

    index_sets = [set(train.index), set(val.index), set(test.index)]
    disjoint = sum(map(len, index_sets)) == len(set().union(*index_sets))
    split_sizes = SplitSizes(train=len(train), val=len(val), test=len(test))
    numeric_raw = [n for n, k in kinds.items() if k == "numeric"] if kind == "tabular" else []
    pairs = correlated_pairs(frame, numeric_raw)
    profile["correlated_pairs"] = pairs
    if task == "classification":
        # It picks the metric and the class weights, a decision: the rows the models train on only.
        profile["imbalance_ratio"] = imbalance_ratio(train[TARGET_COLUMN])
        profile["imbalance_ratio_rows"] = "train"
    coerced = {
        c.name: int(pd.to_numeric(frame[c.name], errors="coerce").isna().sum() - frame[c.name].isna().sum())
        for c in schema.columns
        if c.kind == "numeric" and not c.derive and not pd.api.types.is_numeric_dtype(frame[c.name])
    }
    findings = _findings(
        profile,
        coerced,
        task,
        kind,
        info,
        dropped,
        suspects,
        duplicates,
        no_target,
        datetimes,
        texts,
        pairs,
        outliers,
        schema,
    )
    if spellings:
        findings.append(
            {
                "finding": "target labels spelt several ways",
                "figure": spellings,
                "action": "surrounding spaces stripped and case variants merged into the most frequent "
                "spelling ('Yes ' and 'YES' -> 'yes'): one class each",
            }
        )
    for column, reading in formatted.items():
        findings.append(
            {
                "finding": "numbers written as text",
                "figure": {"format": reading.format.example, "unreadable": reading.unreadable},
                "action": describe_reading(column, reading)
                + ("" if column in (target, *kinds) else f"; then dropped: {dropped.get(column, 'unused')}"),
                "column": column,
            }
        )
    for column, count in nonfinite.items():
        findings.append(
            {
                "finding": "infinite or out-of-range numbers",
                "figure": count,
                "action": f"treated as missing (imputed like a blank): beyond float32's range, "
                f"{FLOAT32_MAX:.3g}, no model can use them",
                "column": column,
            }
        )
    if rare_count:
        findings.append(
            {
                "finding": f"classes with fewer than {RARE_CLASS_ROWS} rows",
                "figure": {"classes": rare_count, "rows": rare_rows},
                "action": "their rows are dropped: a class needs rows in train, validation and test",
            }
        )
    profile["findings"] = findings
    profile["load"] = info.model_dump(exclude_none=True)
    return PreparedData(
        source=str(path),
        fingerprint=data_fingerprint,
        task=task,
        task_reason=task_reason,
        modality=kind,
        modality_reason=modality_reason,
        image_shape=image_shape,
        input_schema=schema,
        profile=profile,
        dropped_columns=dropped,
        leakage_suspects=suspects,
        rows_in=rows_in,
        duplicates_removed=duplicates,
        rare_classes_dropped={"classes": rare_count, "rows": rare_rows} if rare_count else None,
        nonfinite_values=nonfinite,
        rows_without_target=no_target,
        split_sizes=split_sizes,
        splits_disjoint=disjoint,
        n_features_out=int(np.load(files["X_train"], mmap_mode="r", allow_pickle=False).shape[1]),
        files=files,
        file_hashes=hashes,
        load=info,
        outliers=outliers,
        datetime_columns=datetimes,
        sequence=sequence,
        findings=findings,
        composite_codes=composites,
        code_counts=code_counts,
        kept_columns=kept,
        formatted_numbers=formatted,
        target_spellings_merged=spellings,
        vocabulary_check=vocabulary_check,
    )


def _merge_label_spellings(frame: pd.DataFrame, target: str, task: str) -> tuple[pd.DataFrame, int]:
    """Text labels that differ only in surrounding spaces or case are one class, spelt as its most
    frequent spelling: 'yes', 'Yes ' and ' YES' in a hand-kept sheet are not three classes.
    Returns the frame and how many labels were rewritten (a blank label is missing)."""
    if task in ("regression", "clustering") or target not in frame.columns:
        return frame, 0
    labels = frame[target]
    if not (pd.api.types.is_object_dtype(labels) or pd.api.types.is_string_dtype(labels)):
        return frame, 0
    text = labels.map(lambda v: v.strip() if isinstance(v, str) else v)
    text = text.mask(text.map(lambda v: isinstance(v, str) and not v))
    is_text = text.map(lambda v: isinstance(v, str))
    counts = text[is_text].value_counts()
    spelling: dict[str, str] = {}
    for label in sorted(counts.index, key=lambda v: (-counts[v], v)):  # most frequent spelling first
        spelling.setdefault(label.casefold(), label)
    merged = text.where(~is_text, text.map(lambda v: spelling[v.casefold()] if isinstance(v, str) else v))
    changed = int((merged.astype(object) != labels.astype(object))[labels.notna()].sum())
    return (frame.assign(**{target: merged}) if changed else frame), changed


def _sendable(raw: pd.DataFrame, model_frame: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """Raw rows as a caller may send them: a numeric field whose text training read as missing
    ("unknown", a price "call us") is sent as missing, since the runtime refuses such text (the
    package's latency is measured on these rows: one such value stopped the run with a traceback)."""
    unreadable: dict[str, pd.Series] = {}
    for col in schema.columns:
        if col.kind == "numeric" and not col.derive and col.name not in unreadable:
            bad = raw[col.name].notna() & model_frame[col.key].isna()
            if bad.any():
                unreadable[col.name] = raw[col.name].astype(object).mask(bad, None)
    return raw.assign(**unreadable) if unreadable else raw


def _read_formatted_target(
    frame: pd.DataFrame, target: str, task: str
) -> tuple[pd.DataFrame, dict[str, NumberReading]]:
    """A target of numbers written as text ("1,234", "$12.50") read as numbers when the task is
    regression (asked for, or detected on the numbers); a classification target keeps its labels
    as written ("10%" stays the class "10%")."""
    if task in ("classification", "clustering") or target not in frame.columns:
        return frame, {}
    found = detect_number_format(frame[target])
    if found is None:
        return frame, {}
    numbers, unreadable = read_formatted(frame[target], found)
    if task == "auto" and (numbers.isna().all() or detect_task(numbers.dropna())[0] != "regression"):
        return frame, {}
    return frame.assign(**{target: numbers}), {target: NumberReading(format=found, unreadable=unreadable)}


def _kept_kind(column: pd.Series) -> str:
    """The kind of a column the user kept although a heuristic dropped it: numbers or categories."""
    values = column.dropna()
    if pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column) or (
        not values.empty and pd.to_numeric(values.astype(str), errors="coerce").notna().mean() >= 0.95
    ):
        return "numeric"
    return "categorical"


def _column_specs(
    frame: pd.DataFrame, kinds: dict[str, str], formatted: dict[str, NumberReading] | None = None
) -> tuple[list[ColumnSpec], dict[str, list[str]], dict[str, dict[str, Any]]]:
    """One spec per column; a date column becomes numeric features computed statelessly from its text,
    a free-text column one 0/1 feature per vocabulary word (vocabulary from the training rows)."""
    columns: list[ColumnSpec] = []
    datetimes: dict[str, list[str]] = {}
    texts: dict[str, dict[str, Any]] = {}
    for name, k in kinds.items():
        if k == "text":
            vocabulary = fit_vocabulary(frame[name])
            texts[name] = {**text_figures(frame[name]), "words_kept": len(vocabulary)}
            columns.extend(ColumnSpec(name=name, kind="numeric", derive="word", word=w) for w in vocabulary)
            continue
        if k != "datetime":
            reading = (formatted or {}).get(name) if k == "numeric" else None
            number_format = reading.format if reading else None
            columns.append(ColumnSpec(name=name, kind=k, number_format=number_format))  # type: ignore[arg-type]
            continue
        parts = ["year", "month", "day", "weekday", "epoch_days"]
        order = date_order(frame[name])
        hours = {datetime_part(v, "hour", order) for v in frame[name].dropna().astype(str)}
        if len(hours - {0.0}) > 0:
            parts.insert(4, "hour")
        datetimes[name] = parts
        columns.extend(
            ColumnSpec(name=name, kind="numeric", derive=p, date_order=order)  # type: ignore[arg-type]
            for p in parts
        )
    return columns, datetimes, texts


def _sequence_specs(
    frame: pd.DataFrame, kinds: dict[str, str], columns: list[ColumnSpec]
) -> tuple[list[ColumnSpec], dict[str, list[str]], SequenceColumns]:
    """Modality text: the first free-text column also as word ids, position by position.

    The ids are what Keras' TextVectorization gives for the same vocabulary (words on >=
    MIN_CATEGORY_COUNT training rows, most frequent first); they are computed from the raw text
    by the schema, in training and in the serving runtime, so the network and every export of it
    take numbers only.
    """
    name = next((n for n, k in kinds.items() if k == "text"), None)
    if name is None:
        raise DataError(
            "modality text needs a free-text column, but the training rows have none: use --modality tabular"
        )
    vocabulary = fit_vocabulary(frame[name], max_words=SEQUENCE_MAX_WORDS)
    if not vocabulary:
        raise DataError(
            f"column {name!r} has no word on >= {MIN_CATEGORY_COUNT} training rows: nothing a sequence "
            "model may learn from; use --modality tabular"
        )
    length = sequence_length(frame[name])
    ids = [ColumnSpec(name=name, kind="numeric", derive="token", position=j) for j in range(length)]
    sequence = SequenceColumns(
        column=name,
        length=length,
        vocabulary_size=len(vocabulary),
        rule=f"words on >= {MIN_CATEGORY_COUNT} training rows (at most {SEQUENCE_MAX_WORDS}); "
        f"length = 95th percentile of the training texts' word counts within [4, 64] = {length}",
    )
    return [*columns, *ids], {name: vocabulary}, sequence


def _released_text(
    fit_rows: pd.DataFrame,
    kinds: dict[str, str],
    columns: list[ColumnSpec],
    vocabularies: dict[str, list[str]],
    sequence: SequenceColumns | None,
    released: InputSchema,
    parent: str,
    network: bool = False,
) -> tuple[VocabularyCheck | None, list[ColumnSpec], dict[str, list[str]], SequenceColumns | None]:
    """--from: each text column the release reads as text, its training tokens counted against the
    release's vocabulary (its sequence vocabulary, else its bag-of-words words) and against the one
    this run learnt from the same rows by the same rule. Within VOCABULARY_EXCESS_LIMIT the columns
    are read as the release reads them (its words, vocabulary and sequence length, so its features
    and word ids mean what they meant to it); above it, this run's own vocabulary stays (None: the
    release reads no text column of this data).

    `network`: the release reads the word ids through an embedding. Past the limit, when every
    column over it is one it reads as word ids and vocabulary_extension allows it, the columns are
    read as the release reads them except that its vocabulary is extended (new words appended after
    its ids): the run's models and the extended release then read the same features."""
    shares: list[TokenShare] = []
    for name, kind in kinds.items():
        release = released.vocabularies.get(name) or [
            c.word for c in released.columns if c.name == name and c.derive == "word" and c.word
        ]
        if kind != "text" or not release:
            continue
        own = vocabularies.get(name) or [
            c.word for c in columns if c.name == name and c.derive == "word" and c.word
        ]
        shares.append(token_share(name, fit_rows[name], release, own))
    if not shares:
        return None, columns, vocabularies, sequence
    adopted = all(s.excess <= VOCABULARY_EXCESS_LIMIT for s in shares)
    extensions: list[VocabularyExtension] = []
    if not adopted:
        over = [s.column for s in shares if s.excess > VOCABULARY_EXCESS_LIMIT]
        if network and all(name in released.vocabularies and name in vocabularies for name in over):
            found = [
                vocabulary_extension(name, released.vocabularies[name], vocabularies[name])
                for name in released.vocabularies
                if name in vocabularies
            ]
            extensions = [e for e in found if e is not None] if None not in found else []
    check = VocabularyCheck(parent=parent, columns=shares, adopted=adopted, extensions=extensions)
    if not adopted and not extensions:
        return check, columns, vocabularies, sequence
    text = {s.column for s in shares}

    def released_specs(name: str, derive: str) -> list[ColumnSpec]:
        return [c.model_copy() for c in released.columns if c.name == name and c.derive == derive]

    out: list[ColumnSpec] = []
    placed: set[tuple[str, str | None]] = set()
    for col in columns:
        if col.name in text and col.derive in ("word", "token"):
            if (col.name, col.derive) not in placed:  # the release's words (ids) where this run's were
                placed.add((col.name, col.derive))
                out.extend(released_specs(col.name, col.derive))
            continue
        out.append(col)
    own_vocabularies = vocabularies
    vocabularies = {**vocabularies, **{n: v for n, v in released.vocabularies.items() if n in vocabularies}}
    for extension in extensions:  # new words appended after the release's ids
        name = extension.column
        vocabularies[name] = extended_vocabulary(released.vocabularies[name], own_vocabularies[name])
    if sequence and sequence.column in text and sequence.column in released.vocabularies:
        name = sequence.column
        length = len(released_specs(name, "token"))
        sequence = sequence.model_copy(
            update={
                "length": length,
                "vocabulary_size": len(vocabularies[name]),
                "rule": f"{parent}'s vocabulary and length ({length}), read as it was trained to (--from)"
                + (
                    f", extended by {len(vocabularies[name]) - len(released.vocabularies[name])} new words"
                    if extensions
                    else ""
                ),
            }
        )
    return check, out, vocabularies, sequence


def _findings(
    profile: dict[str, Any],
    coerced: dict[str, int],
    task: str,
    modality: str,
    info: LoadInfo,
    dropped: dict[str, str],
    suspects: dict[str, str],
    duplicates: int,
    no_target: int,
    datetimes: dict[str, list[str]],
    texts: dict[str, dict[str, Any]],
    pairs: list[dict[str, Any]],
    outliers: OutlierReport,
    schema: InputSchema,
) -> list[dict[str, Any]]:
    """Every finding with its figure and what the pipeline did about it (aggregates only)."""
    out: list[dict[str, Any]] = []

    def add(finding: str, figure: Any, action: str, column: str | None = None) -> None:
        entry = {"finding": finding, "figure": figure, "action": action}
        if column is not None:
            entry["column"] = column
        out.append(entry)

    if info.sample_rows is not None:
        add(
            "dataset larger than the driver's memory budget",
            {
                "rows": info.rows_total,
                "estimated_bytes": info.estimated_bytes,
                "budget_bytes": info.budget_bytes,
            },
            f"a seeded sample of {info.sample_rows} rows is profiled, split and learned from",
        )
    if info.images_skipped:
        add("unreadable images", info.images_skipped, "skipped and counted; the other images are used")
    if info.image_resize:
        add("image size", info.image_shape, info.image_resize)
    if no_target:
        add("rows without a target", no_target, "removed before anything else (nothing to learn from them)")
    if duplicates:
        add("duplicate rows", duplicates, "removed before the split, so no row is in two splits")
    for name, why in dropped.items():
        if name in suspects:
            add("leakage suspect", why, "dropped from the features; reported by the data gate", name)
        elif why.startswith("ID-like"):
            add("ID-like column", why, "dropped", name)
        elif why.startswith("constant"):
            add("constant column", why, "dropped", name)
        elif why.startswith("dropped by the user"):
            add("column dropped by the user", why, "dropped (--drop)", name)
        else:
            add("unusable column", why, "dropped", name)
    for name, count in coerced.items():
        if count:
            add(
                "text in a numeric column",
                count,
                "read as missing, then imputed like any missing value",
                name,
            )
    for name, parts in datetimes.items():
        order = next((c.date_order for c in schema.columns if c.name == name and c.date_order), None)
        written = {
            "dmy": " (written day/month/year)",
            "mdy": " (written month/day/year)",
            "ymd": " (written year/month/day)",
        }.get(order or "", "")
        add("datetime column", parts, "turned into numeric features " + ", ".join(parts) + written, name)
    for name, figures in texts.items():
        if figures["words_kept"]:
            add(
                "free-text column",
                {k: round(v, 2) for k, v in figures.items()},
                f"bag of words: one 0/1 feature per word on >= {MIN_CATEGORY_COUNT} training rows "
                f"(at most {MAX_WORDS}, most frequent first); other words are ignored",
                name,
            )
    numeric = set(schema.numeric)
    for col in schema.columns:
        entry = profile["column_profiles"].get(col.name, {})
        if entry.get("missing") and not col.derive:
            how = "median" if col.key in numeric else "most frequent category"
            add("missing values", entry["missing"], f"imputed with the training split's {how}", col.name)
        if col.kind == "categorical" and not col.derive:
            distinct = entry.get("distinct", 0)
            kept = len(col.categories or [])
            action = f"one-hot encoded: {kept} categories with >= {MIN_CATEGORY_COUNT} training rows"
            if distinct > kept:
                action += (
                    f" (at most {MAX_CATEGORIES}); the other {distinct - kept} values and unseen ones share "
                    "one 'rare' column"
                )
            add("categorical column", {"distinct": distinct}, action, col.name)
    for pair in pairs:
        add(
            "highly correlated pair",
            pair,
            "both kept: tree models are unaffected and linear models are regularised",
        )
    if task == "classification":
        ratio = profile.get("imbalance_ratio")
        action = "stratified train/validation/test splits"
        if ratio and ratio > 1.5:
            action += "; class weights during training"
        add("class balance", {"classes": len(schema.classes or []), "imbalance_ratio": ratio}, action)
    if modality == "tabular":
        add("outliers (|z| > 3, training split)", outliers.flagged, outliers.action or "none")
    return out


def _listed(names: Any, limit: int = 20) -> str:
    names = [str(n) for n in names]
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _plain(value: Any) -> Any:
    """numpy scalars to Python, integral floats to int, so labels are JSON-stable."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def load_split(
    files: dict[str, str], name: str, schema: InputSchema, hashes: dict[str, str] | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """A split's features and target, read only once its SHA-256 matches the recorded one."""
    part = read_frame(files[name], hashes, name)
    return part[schema.keys], part[TARGET_COLUMN].to_numpy()
